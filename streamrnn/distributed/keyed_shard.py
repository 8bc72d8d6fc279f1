"""``KeyedShard``: the per-key River estimators of a range of key groups in
one process (a Ray actor's, or the caller's for tests), held in one keyed
wrapper (:class:`~streamrnn.keyed.KeyedForecaster` or
:class:`~streamrnn.keyed.KeyedDetector`) with key-derived seeds, and cut by
group to checkpoint or move them.

Every call carries the position of its rows in the whole stream (the count
of samples learned by all shards, which ``max_idle`` counts): the shard's
wrapper first evicts the keys idle at that count, so each key's model is
evicted exactly when one in-process wrapper would evict it."""

from __future__ import annotations

import copy
from collections import OrderedDict

from .groups import GroupIndex
from .shard import group_file, replay
from .storage import Storage

__all__ = ["KeyedShard", "merge_wrappers", "split_wrapper"]


def empty_like(wrapper, clock: int = 0):
    """A wrapper of the same class and arguments without models, its count of
    samples ``clock``."""
    empty = type(wrapper)(wrapper.template, seed=wrapper.seed, max_idle=wrapper.max_idle,
                          seed_by_key=wrapper.seed_by_key)
    empty._clock = clock
    return empty


def split_wrapper(wrapper, groups) -> dict:
    """A keyed wrapper cut into one wrapper per key group: ``groups`` holds
    the group of each of its keys (in the order of ``wrapper.keys``). Each
    part holds its keys' models (the same objects) and last samples, in the
    wrapper's order; its count of samples is the wrapper's."""
    parts: dict = {}
    last_seen = wrapper._last_seen or {}
    for key, group in zip(wrapper.keys, groups.tolist()):
        part = parts.get(group)
        if part is None:
            part = parts[group] = empty_like(wrapper, wrapper._clock)
        part._models[key] = wrapper._models[key]
        if key in last_seen:
            part._last_seen[key] = last_seen[key]
    for part in parts.values():
        part._last_seen = OrderedDict(sorted(part._last_seen.items(), key=lambda item: item[1]))
        part._n_created = len(part._models)
    return parts


def merge_wrappers(parts: list, like, clock: int | None = None):
    """One wrapper holding the models of all ``parts`` (wrappers of one
    configuration holding distinct keys), in turn, with the arguments of
    ``like`` (whose models it does not take); its keys' last samples in the
    order they came, its count of samples ``clock`` (default: ``like``'s)."""
    merged = empty_like(like, like._clock if clock is None else clock)
    seen = []
    for part in parts:
        merged._models.update(part._models)
        seen.extend((part._last_seen or {}).items())
    merged._last_seen = OrderedDict(sorted(seen, key=lambda item: item[1]))
    merged._n_created = sum(p._n_created for p in parts)
    return merged


class KeyedShard:
    """The keyed models of some key groups.

    Parameters
    ----------
    wrapper
        A keyed wrapper without models, ``seed_by_key=True``: the template,
        seed and ``max_idle`` of every model.
    n_groups
        The number of key groups of the whole set of models.
    threads
        Numba threads of this process (None: Numba's default).
    """

    replayed = frozenset({"learn_many", "ask_learn_many", "learn_ask_many", "evict"})  # operations a log holds

    def __init__(self, wrapper, n_groups: int, threads: int | None = None):
        if threads is not None:
            import numba

            numba.set_num_threads(threads)
        if not wrapper.seed_by_key or len(wrapper):
            raise ValueError("a KeyedShard starts from a key-seeded wrapper without models")
        self.wrapper = copy.deepcopy(wrapper)  # (arrays sent by Ray are read-only)
        self.index = GroupIndex(n_groups)

    def _at(self, clock: int | None) -> None:
        """Bring the wrapper to ``clock`` samples of the whole stream,
        evicting the keys idle by then."""
        if clock is not None:
            self.wrapper._clock = int(clock)
            self.wrapper._evict_idle()

    # ---------------------------------------------------------- the wrapper's calls

    def _learn(self, key, args: tuple, clock) -> str | None:
        self._at(clock - 1)
        new = key not in self.wrapper
        try:
            self.wrapper.learn_one(key, *args)
        except ValueError as error:  # a sample the model refuses: reported, the others learned
            return str(error)
        self._made += new
        return None

    def _rows(self, keys, clocks, learn_args: list, ask_args: list | None, ask: str | None, first: bool):
        """Learn each row (the ``clocks[i]``-th sample of the stream), asking
        ``wrapper.<ask>(key, *ask_args[i])`` before (``first``) or after it;
        returns the answers, the errors of the refused rows (``[(row,
        message)]``) and the number of keys made."""
        self._made = 0
        answers, errors = [], []
        method = getattr(self.wrapper, ask) if ask else None
        for i, (k, c) in enumerate(zip(keys, clocks.tolist())):
            if method is not None and first:
                self._at(c - 1)
                answers.append(method(k, *ask_args[i]))
            error = self._learn(k, learn_args[i], c)
            if error is not None:
                errors.append((i, error))
            if method is not None and not first:
                answers.append(method(k, *ask_args[i]))
        return answers, errors, self._made

    def learn_many(self, keys, args: list, clocks) -> tuple[list, list, int]:
        """Learn each row (``learn_one(key, *args[i])``, the ``clocks[i]``-th
        sample of the stream); returns no answers, the errors of the refused
        rows (``[(row, message)]``) and the number of keys made."""
        return self._rows(keys, clocks, args, None, None, True)

    def ask_many(self, keys, args: list, ask: str, clock: int) -> list:
        """``wrapper.<ask>(key, *args[i])`` for each row, at ``clock``."""
        self._at(clock)
        method = getattr(self.wrapper, ask)
        return [method(k, *a) for k, a in zip(keys, args)]

    def ask_learn_many(self, keys, ask_args: list, learn_args: list, clocks, ask: str) -> tuple[list, list, int]:
        """For each row: ask (``wrapper.<ask>(key, *ask_args[i])``), then
        learn; returns as :meth:`learn_many` with the answers."""
        return self._rows(keys, clocks, learn_args, ask_args, ask, True)

    def learn_ask_many(self, keys, learn_args: list, ask_args: list, clocks, ask: str) -> tuple[list, list, int]:
        """For each row: learn, then ask; returns as :meth:`ask_learn_many`."""
        return self._rows(keys, clocks, learn_args, ask_args, ask, False)

    def evict(self, keys, clock: int | None = None) -> None:
        self._at(clock)
        self.wrapper.evict(keys)
        self.index.forget(keys)

    def missing(self, keys, clock: int | None = None) -> list:
        """Those of ``keys`` this shard does not hold."""
        self._at(clock)
        return [k for k in keys if k not in self.wrapper]

    def keys(self, clock: int | None = None) -> list:
        self._at(clock)
        return self.wrapper.keys

    def model(self, key, clock: int | None = None):
        self._at(clock)
        return self.wrapper[key]

    def replay(self, ops: list):
        """Apply logged operations in turn, each ``(method, keys, columns,
        extra)`` run as ``method(keys, *columns, *extra)``; returns the last
        one's result."""
        return replay(self, ops)

    # --------------------------------------------------------------- groups

    def group_parts(self, groups=None, clock: int | None = None) -> dict:
        """A wrapper for each group this shard holds keys of (or for those
        of ``groups`` it does), at ``clock``."""
        self._at(clock)
        parts = split_wrapper(self.wrapper, self.index.of(self.wrapper.keys))
        if groups is None:
            return parts
        wanted = set(groups)
        return {g: p for g, p in parts.items() if g in wanted}

    def take_groups(self, groups, clock: int | None = None) -> dict:
        """These groups' wrappers, whose keys this shard then forgets."""
        parts = self.group_parts(groups, clock)
        self.evict([k for p in parts.values() for k in p.keys])
        self.wrapper._n_created -= sum(p._n_created for p in parts.values())
        return parts

    def put_groups(self, parts: dict, batch: int | None = None) -> None:
        """Add the models of these groups' wrappers (groups this shard does
        not hold); ``batch`` sets the count of samples of the stream."""
        clock = self.wrapper._clock if batch is None else batch
        parts = copy.deepcopy(parts)  # (arrays sent by Ray are read-only)
        self.wrapper = merge_wrappers([self.wrapper, *parts.values()], self.wrapper, clock)
        self._at(clock)

    def write_groups(self, storage: Storage, checkpoint: int, clock: int | None = None) -> dict:
        """Each group's wrapper saved (:func:`streamrnn.save`, whole or not
        at all) as ``group_file(group, checkpoint)``, on disk when this
        returns; returns ``{group: (file name, number of keys)}``."""
        written = {}
        for group, part in self.group_parts(None, clock).items():
            name = group_file(group, checkpoint)
            storage.save(name, part, durable=False)
            written[group] = (name, len(part))
        storage.flush()
        return written

    def read_groups(self, storage: Storage, files: dict, batch: int) -> int:
        """Add the groups saved in ``files`` (``{group: file name}``) at the
        count of samples ``batch``; returns the number of keys."""
        parts = {}
        mine = self.wrapper
        for group, name in files.items():
            part = storage.load(name)
            if type(part) is not type(mine) or not part.seed_by_key:
                raise ValueError(f"{name} does not hold a key-seeded {type(mine).__name__}")
            if (part.seed, part.max_idle, type(part.template), part.template._get_params()) != (
                    mine.seed, mine.max_idle, type(mine.template), mine.template._get_params()):
                raise ValueError(f"{name} holds models of another template, seed or max_idle than the shard's")
            got = self.index.of(part.keys)
            if len(got) and not (got == group).all():
                raise ValueError(f"{name} holds keys of other groups than {group}")
            parts[group] = part
        self.put_groups(parts, batch)
        return sum(len(p) for p in parts.values())
