"""Key groups: the fixed partition of keys that shards own, and the split
and merge of a :class:`~streamrnn.ModelBank` snapshot by group.

A key belongs to group ``key_hash(key) % n_groups`` (a stable hash of its
canonical bytes, :func:`streamrnn.keys.key_hash`); a shard owns a contiguous
range of groups. Moving or checkpointing a group moves or writes the models
of its keys, whole.
"""

from __future__ import annotations

import numpy as np

from ..keys import array_lookup, factorize, key_hash

__all__ = ["GroupIndex", "compact", "group_ranges", "merge_snapshots", "split_snapshot"]


def group_ranges(n_groups: int, n_shards: int) -> np.ndarray:
    """The first group of each shard and the end: shard ``i`` owns groups
    ``bounds[i]`` to ``bounds[i + 1] - 1``, ranges of near-equal sizes.

    >>> group_ranges(4096, 3).tolist()
    [0, 1365, 2730, 4096]
    """
    if not 1 <= n_shards <= n_groups:
        raise ValueError(f"n_shards must be between 1 and n_groups ({n_groups}), got {n_shards}")
    return np.arange(n_shards + 1, dtype=np.int64) * n_groups // n_shards


class GroupIndex:
    """The group of each key, each key hashed once (a dict of the keys seen).

    >>> index = GroupIndex(16)
    >>> index.of(["a", "b", "a"]).tolist() == [key_hash("a") % 16, key_hash("b") % 16, key_hash("a") % 16]
    True
    """

    def __init__(self, n_groups: int):
        self.n_groups = n_groups
        self._group_of: dict = {}
        self._int_lookup = None  # integer keys' groups for numpy arrays of keys (None: to be made)

    def of(self, keys) -> np.ndarray:
        """The group of each key of a batch (a list or a 1-D numpy array), as
        int64; a key without a stable hash raises ``TypeError``."""
        known = array_lookup(self, self._group_of, keys)
        if known is not None:
            return known
        codes, uniques = factorize(keys)
        group_of, n = self._group_of, self.n_groups
        groups = np.empty(len(uniques), dtype=np.int64)
        for i, key in enumerate(uniques):
            g = group_of.get(key)
            if g is None:
                g = key_hash(key) % n
                group_of[key] = g
                self._int_lookup = None
            groups[i] = g
        return groups[codes]

    def forget(self, keys) -> None:
        """Drop these keys from the index (evicted: memory back)."""
        for key in keys:
            self._group_of.pop(key, None)
        self._int_lookup = None


def split_snapshot(snapshot: dict, groups: np.ndarray) -> dict[int, dict]:
    """A :meth:`ModelBank.snapshot <streamrnn.ModelBank.snapshot>` cut into
    one snapshot per key group: ``groups`` holds the group of each live key,
    in the order of ``snapshot["meta"]["order"]`` (the order of the bank's
    :attr:`~streamrnn.ModelBank.keys`). Each part holds its keys in that
    order, without free slots; the configuration and counters are the
    bank's."""
    meta = snapshot["meta"]
    live = np.asarray(meta["order"], dtype=np.int64)
    if len(groups) != len(live):
        raise ValueError(f"one group per live key: {len(live)} keys, {len(groups)} groups")
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(order) else np.zeros(0, np.int64)
    keys = meta["keys"]
    parts = {}
    for start, end in zip(starts, [*starts[1:], len(order)]):
        slots = live[order[start:end]]
        n = len(slots)
        parts[int(ordered[start])] = {
            "buf": snapshot["buf"][slots], "ctr": snapshot["ctr"][slots], "last_seen": snapshot["last_seen"][slots],
            "meta": {**meta, "keys": [keys[s] for s in slots.tolist()], "order": list(range(n)), "free": [],
                     "n_created": n},
        }
    return parts


def merge_snapshots(parts: list[dict], like: dict) -> dict:
    """One snapshot of the keys of all ``parts`` (snapshots of banks of one
    configuration holding distinct keys), in turn; its configuration and
    batch count those of the snapshot ``like`` (whose keys it does not
    hold)."""
    meta = like["meta"]
    keys = [k for p in parts for k in p["meta"]["keys"]]
    n = len(keys)
    arrays = {name: np.concatenate([like[name][:0], *(p[name] for p in parts)])  # (like: the width and dtype)
              for name in ("buf", "ctr", "last_seen")}
    return {
        **arrays,
        "meta": {**meta, "keys": keys, "order": list(range(n)), "free": [], "n_created": n},
    }


def compact(snapshot: dict) -> dict:
    """A snapshot of the same bank without its free slots, its keys in the
    bank's order (as each part of :func:`split_snapshot`)."""
    n = len(snapshot["meta"]["order"])
    return split_snapshot(snapshot, np.zeros(n, dtype=np.int64)).get(0) or merge_snapshots([], snapshot)
