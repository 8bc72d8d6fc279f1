"""``Shard``: the keyed models of a range of key groups, in one process (a
Ray actor's, or the caller's for tests). It holds them in one
:class:`~streamrnn.ModelBank` with key-derived seeds, so a batch of its rows
is one kernel call, and cuts that bank by group to checkpoint or move them."""

from __future__ import annotations

import numpy as np

from ..bank import ModelBank
from .groups import GroupIndex, merge_snapshots, split_snapshot
from .storage import Storage

__all__ = ["Shard", "group_file", "replay"]


def group_file(group: int, checkpoint: int) -> str:
    """The name of a group's file in a checkpoint.

    >>> group_file(17, 3)
    'group-00017-000003.npz'
    """
    return f"group-{group:05d}-{checkpoint:06d}.npz"


def replay(shard, ops: list):
    """Apply logged operations to ``shard`` in turn, each ``(method, keys,
    columns, extra)`` run as ``shard.method(keys, *columns, *extra)``;
    returns the last one's result."""
    out = None
    for method, keys, columns, extra in ops:
        if method not in type(shard).replayed:
            raise ValueError(f"{method!r} is not an operation a {type(shard).__name__} replays")
        out = getattr(shard, method)(keys, *columns, *extra)
    return out


class Shard:
    """The models of the keys of some key groups.

    Parameters
    ----------
    bank_args
        :class:`~streamrnn.ModelBank` arguments (``seed``, ``max_idle``,
        ``device`` and the models' configuration); the bank seeds by key.
    n_groups
        The number of key groups of the whole bank.
    threads
        Numba threads of this process (None: Numba's default).
    """

    replayed = frozenset({"learn_many", "evict"})  # the operations a log holds

    def __init__(self, bank_args: dict, n_groups: int, threads: int | None = None):
        if threads is not None:
            import numba

            numba.set_num_threads(threads)
        self.bank_args = dict(bank_args)
        self.bank = ModelBank(**self.bank_args, seed_by_key=True)
        self.index = GroupIndex(n_groups)

    # ---------------------------------------------------------- the bank's calls

    def learn_many(self, keys, X, Y) -> np.ndarray:
        return self.bank.learn_many(keys, X, Y)

    def predict_many(self, keys, X) -> np.ndarray:
        return self.bank.predict_many(keys, X)

    def forecast_many(self, keys, horizon: int, X0) -> np.ndarray:
        return self.bank.forecast_many(keys, horizon, X0)

    def evict(self, keys) -> None:
        self.bank.evict(keys)
        self.index.forget(keys)

    def missing(self, keys) -> list:
        """Those of ``keys`` this shard does not hold."""
        return [k for k in keys if k not in self.bank]

    def keys(self) -> list:
        return self.bank.keys

    def model(self, key):
        return self.bank.model(key)

    def snapshot(self) -> dict:
        return self.bank.snapshot()

    def replay(self, ops: list):
        """Apply logged operations in turn, each ``(method, keys, columns,
        extra)`` run as ``method(keys, *columns, *extra)``; returns the last
        one's result."""
        return replay(self, ops)

    # --------------------------------------------------------------- groups

    def _groups_of_keys(self) -> np.ndarray:
        return self.index.of(self.bank.keys)

    def group_snapshots(self, groups=None) -> dict[int, dict]:
        """A snapshot of each group this shard holds keys of (or of those of
        ``groups`` it does)."""
        parts = split_snapshot(self.bank.snapshot(copy=False), self._groups_of_keys())  # (copies each group)
        if groups is None:
            return parts
        wanted = set(groups)
        return {g: p for g, p in parts.items() if g in wanted}

    def take_groups(self, groups) -> dict[int, dict]:
        """Snapshots of these groups' models, which this shard then forgets."""
        parts = self.group_snapshots(groups)
        self.evict([k for p in parts.values() for k in p["meta"]["keys"]])
        return parts

    def put_groups(self, parts: dict, batch: int | None = None) -> None:
        """Add the models of these group snapshots (groups this shard does
        not hold); ``batch`` sets the bank's batch count (a fresh shard's)."""
        snapshot = self.bank.snapshot(copy=False)  # (split copies each group before the bank is replaced)
        if batch is not None:
            snapshot["meta"]["batch"] = batch
        live = split_snapshot(snapshot, self._groups_of_keys())
        merged = merge_snapshots([*live.values(), *parts.values()], snapshot)
        self.bank = ModelBank.restore(merged, device=snapshot["meta"].get("device", "cpu"))

    def write_groups(self, storage: Storage, checkpoint: int) -> dict[int, tuple[str, int]]:
        """Each group's models saved (:func:`streamrnn.save`, whole or not at
        all) as ``group_file(group, checkpoint)``, on disk when this returns;
        returns ``{group: (file name, number of keys)}``."""
        written = {}
        for group, part in self.group_snapshots().items():
            name = group_file(group, checkpoint)
            storage.save(name, ModelBank.restore(part), durable=False)
            written[group] = (name, len(part["meta"]["keys"]))
        storage.flush()
        return written

    def read_groups(self, storage: Storage, files: dict, batch: int) -> int:
        """Add the groups saved in ``files`` (``{group: file name}``) with
        the bank's batch count ``batch``; returns the number of keys."""
        parts = {}
        for group, name in files.items():
            bank = storage.load(name)
            if not isinstance(bank, ModelBank) or not bank.seed_by_key:
                raise ValueError(f"{name} does not hold a bank of key-seeded models")
            if (bank.config, bank.seed, bank.max_idle) != (self.bank.config, self.bank.seed, self.bank.max_idle):
                raise ValueError(f"{name} holds models of another configuration, seed or max_idle than the bank's")
            part = bank.snapshot(copy=False)  # (the loaded bank is dropped: its buffers are the part's)
            got = self.index.of(part["meta"]["keys"])
            if len(got) and not (got == group).all():
                raise ValueError(f"{name} holds keys of other groups than {group}")
            parts[group] = part
        self.put_groups(parts, batch)
        return sum(len(p["meta"]["keys"]) for p in parts.values())
