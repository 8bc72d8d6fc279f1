"""``ShardedKeyedForecaster`` and ``ShardedKeyedDetector``: per-key River
estimators (:class:`~streamrnn.keyed.KeyedForecaster`,
:class:`~streamrnn.keyed.KeyedDetector`) spread over Ray actors by key
group, with checkpoints, recovery and rescaling, each exact."""

from __future__ import annotations

import copy
import secrets

import numpy as np

from ..keyed import KeyedDetector, KeyedForecaster
from ..keys import batch_keys
from .base import ShardedBase, ray_module, take
from .checkpoint import wrapper_file
from .keyed_shard import KeyedShard, empty_like, merge_wrappers, split_wrapper

__all__ = ["ShardedKeyedDetector", "ShardedKeyedForecaster"]


class _ShardedKeyed(ShardedBase):
    """Per-key River estimators (one clone of ``template`` per key, as in a
    keyed wrapper with ``seed_by_key=True``) spread over ``n_shards`` Ray
    actors.

    A key belongs to one of ``n_groups`` key groups (a stable hash of the
    key, :func:`streamrnn.keys.key_group`); shard ``i`` owns a contiguous
    range of groups and holds their keys' models in one keyed wrapper. Each
    key's model is seeded from ``seed`` and the key, and every call carries
    the position of its rows in the stream (``max_idle`` counts the samples
    of all keys), so the results equal one in-process wrapper's (with
    ``seed_by_key=True``) bit for bit whatever the number of shards. A batch
    is split by shard, sent to all shards at once, and its outputs come
    back in the input's row order; within a shard its rows run in turn.

    The operations that change models are kept since the last
    :meth:`checkpoint`: when a shard's process dies, the next call that
    reaches it starts a new actor, loads its groups from the last checkpoint
    (or the state it started from) and replays them, then answers; the
    caller sees no error and every model is as if nothing had failed.

    A sample a model refuses (``ValueError``: a value it cannot learn) is
    skipped and reported once the whole batch is done (``ValueError`` naming
    its row); it still counts as a sample of the stream for ``max_idle``,
    unlike in the in-process wrapper, except in single-row calls
    (``learn_one``), which count it as that wrapper does.

    Parameters
    ----------
    template
        The estimator each key's model is cloned from.
    seed
        Seed of the models (None: one drawn now, kept, so that recovery
        replays give the same models).
    max_idle
        As the keyed wrapper's: a key not learned from in the last
        ``max_idle`` samples of the stream (all keys') is evicted.
    n_shards
        Number of shard actors.
    n_groups
        Number of key groups, fixed for the life of the models and their
        checkpoints: the most shards there can be, and the most files of a
        checkpoint; at most 99,999.
    threads
        Numba threads of each shard's process (None: Numba's default).
    actor_options
        Options of the shard actors (``ray.remote(...).options``).
    address
        The Ray cluster to join when Ray is not initialised yet (None: a
        local one).
    """

    kind = "keyed"
    shard_class = KeyedShard
    wrapper_class: type
    def __init__(self, template, seed: int | None = None, max_idle: int | None = None, n_shards: int = 2,
                 n_groups: int = 256, threads: int | None = None, actor_options: dict | None = None,
                 address: str | None = None):
        seed = secrets.randbits(63) if seed is None else seed
        self._empty = self.wrapper_class(template, seed=seed, max_idle=max_idle, seed_by_key=True)
        if "seed" not in template._get_params():
            raise ValueError(f"the template must have a seed parameter (a {type(template).__name__} has none)")
        self._setup(n_shards, n_groups, threads, actor_options, address)
        self._created = 0  # keys whose models were made (evicted ones counted), as one wrapper counts them

    @property
    def template(self):
        return self._empty.template

    @property
    def seed(self) -> int:
        return self._empty.seed

    @property
    def max_idle(self) -> int | None:
        return self._empty.max_idle

    def _shard_args(self) -> tuple:
        return (empty_like(self._empty),)

    def _now(self) -> tuple:
        return (self._batch,)

    def _manifest_args(self, storage, number: int) -> dict:
        name = wrapper_file(number)
        storage.save(name, empty_like(self._empty))
        return {"kind": self.kind, "wrapper": name, "created": self._created}

    @classmethod
    def _from_manifest(cls, storage, manifest: dict, n_shards: int, options: dict):
        name = manifest["wrapper"]  # (checked by read_manifest)
        empty = storage.load(name)
        if type(empty) is not cls.wrapper_class or not empty.seed_by_key:
            raise ValueError(f"{storage.path}: {name} does not hold a key-seeded {cls.wrapper_class.__name__}")
        sharded = cls(empty.template, seed=empty.seed, max_idle=empty.max_idle, n_shards=n_shards,
                      n_groups=manifest["n_groups"], **options)
        created = manifest.get("created", 0)
        sharded._created = created if type(created) is int and created >= 0 else 0
        return sharded

    # ------------------------------------------------------------ the wrapper

    @classmethod
    def from_keyed(cls, wrapper, n_shards: int = 2, n_groups: int = 256, **options):
        """Sharded models continuing exactly as ``wrapper`` (a keyed wrapper
        with ``seed_by_key=True`` and a seed); ``options`` as the
        constructor's (``threads``, ``actor_options``...)."""
        if type(wrapper) is not cls.wrapper_class or not wrapper.seed_by_key or wrapper.seed is None:
            raise ValueError(f"a {cls.__name__} holds key-seeded models: give a {cls.wrapper_class.__name__} "
                             "with seed_by_key=True and a seed")
        wrapper._evict_idle()
        sharded = cls(wrapper.template, seed=wrapper.seed, max_idle=wrapper.max_idle, n_shards=n_shards,
                      n_groups=n_groups, **options)
        sharded._batch = wrapper._clock
        sharded._created = wrapper._created()
        parts = split_wrapper(copy.deepcopy(wrapper), sharded._index.of(wrapper.keys))
        sharded._base = ("snapshot", parts, sharded._batch)
        ray_module().get([sharded._load_base(a, s) for s, a in enumerate(sharded._actors)])
        return sharded

    def to_keyed(self):
        """One in-process wrapper (``seed_by_key=True``) holding a copy of
        every model, continuing exactly as these. The operations kept for
        recovery are dropped: a shard that dies restarts from this state."""
        parts = self._rebase()
        merged = merge_wrappers(copy.deepcopy([parts[g] for g in sorted(parts)]), self._empty, self._batch)
        merged._n_created = self._created
        return merged

    def _group_state_call(self) -> tuple:
        return ("group_parts", None, self._batch)

    def model(self, key):
        """A copy of ``key``'s model (``KeyError`` if not held)."""
        s = self._home(key)
        return copy.deepcopy(self._call({s: ("model", (key, self._batch))}, logged=False)[s])  # (writable)

    def __getitem__(self, key):
        return self.model(key)

    # ------------------------------------------------------------- batches

    def _rows(self, keys, *columns) -> tuple[list, list]:
        keys = batch_keys(keys)
        for name, column in columns:
            if len(column) != len(keys):
                raise ValueError(f"{name} must have one entry per key: {len(keys)} keys, {len(column)} {name}")
        return keys, self._split(keys)

    @staticmethod
    def _in_order(parts, results, n: int) -> list:
        if len(parts) == 1:
            return list(results[0])
        out = [None] * n
        for s, rows in enumerate(parts):
            for i, answer in zip(rows.tolist(), results.get(s, ())):
                out[i] = answer
        return out

    def _learned(self, method: str, keys, parts, columns: tuple, extra: tuple = ()) -> dict:
        """Run a logged operation that learns every row (the stream's next
        ``len(keys)`` samples); raises ``ValueError`` for a refused row once
        all are done (a single row refused is not counted)."""
        self._bound_log()
        n = len(keys)
        clocks = np.arange(self._batch + 1, self._batch + n + 1, dtype=np.int64)
        self._batch += n
        results = self._logged(method, keys, (*columns, clocks), extra, parts=parts, everywhere=False)
        errors = []
        for s, (_, refused, made) in results.items():
            rows = parts[s]
            self._created += made
            errors.extend((i if rows is None else int(rows[i]), error) for i, error in refused)
        if errors:
            row, error = min(errors)
            if n == 1:  # the one sample refused: as the in-process wrapper, not counted
                self._batch -= 1
                self._log.pop()
            raise ValueError(error if n == 1 else f"row {row} of the batch: {error} (the other rows were learned)")
        return results

    def _learn_many(self, keys, args: list) -> None:
        keys, parts = self._rows(keys, ("values", args))
        self._learned("learn_many", keys, parts, (args,))

    def _ask_many(self, ask: str, keys, args: list) -> list:
        keys, parts = self._rows(keys, ("values", args))
        calls = {s: ("ask_many", (self._take(keys, rows), take(rows, args), ask, self._batch))
                 for s, rows in enumerate(parts) if rows is None or len(rows)}
        return self._in_order(parts, self._call(calls, logged=False), len(keys))

    def _combined(self, method: str, ask: str, keys, first: list, second: list) -> list:
        keys, parts = self._rows(keys, ("values", first), ("values", second))
        results = self._learned(method, keys, parts, (first, second), (ask,))
        return self._in_order(parts, {s: r[0] for s, r in results.items()}, len(keys))


def _column(values, n: int, name: str) -> list:
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} must have one entry per key: {n} keys, {len(values)} {name}")
    return values


class ShardedKeyedForecaster(_ShardedKeyed):
    __doc__ = _ShardedKeyed.__doc__.replace("Per-key River estimators", "Per-key River forecasters", 1)
    wrapper_class = KeyedForecaster

    def learn_many(self, keys, ys, xs=None) -> None:
        """Learn each row: ``learn_one(keys[i], ys[i], xs[i])``."""
        ys = list(ys)
        self._learn_many(keys, list(zip(ys, _column(xs, len(ys), "xs"))))

    def learn_one(self, key, y: float, x: dict | None = None) -> None:
        self.learn_many([key], [y], [x])

    def forecast_many(self, keys, horizon: int, xs=None) -> list[list[float]]:
        """Each row's key's ``forecast(horizon, xs[i])`` (``xs[i]``: the
        features of the steps ahead, or None)."""
        keys = batch_keys(keys)
        return self._ask_many("forecast", keys, [(horizon, x) for x in _column(xs, len(keys), "xs")])

    def forecast(self, key, horizon: int, xs=None) -> list[float]:
        return self.forecast_many([key], horizon, [xs])[0]

    def forecast_interval_many(self, keys, horizon: int, coverage: float = 0.95, xs=None) -> list[tuple]:
        """Each row's key's ``forecast_interval(horizon, coverage, xs[i])``."""
        keys = batch_keys(keys)
        return self._ask_many("forecast_interval", keys,
                              [(horizon, coverage, x) for x in _column(xs, len(keys), "xs")])

    def forecast_interval(self, key, horizon: int, coverage: float = 0.95, xs=None) -> tuple[list, list]:
        return self.forecast_interval_many([key], horizon, coverage, [xs])[0]

    def learn_forecast_many(self, keys, ys, horizon: int, xs=None, future_xs=None) -> list[list[float]]:
        """For each row: learn ``(ys[i], xs[i])``, then forecast ``horizon``
        steps of its key (``future_xs[i]``: the steps' features, or None)."""
        ys = list(ys)
        n = len(ys)
        learn = list(zip(ys, _column(xs, n, "xs")))
        ask = [(horizon, f) for f in _column(future_xs, n, "future_xs")]
        return self._combined("learn_ask_many", "forecast", keys, learn, ask)


class ShardedKeyedDetector(_ShardedKeyed):
    __doc__ = _ShardedKeyed.__doc__.replace("Per-key River estimators", "Per-key River anomaly detectors", 1)
    wrapper_class = KeyedDetector

    def learn_many(self, keys, xs) -> None:
        """Learn each row: ``learn_one(keys[i], xs[i])``."""
        self._learn_many(keys, [(x,) for x in xs])

    def learn_one(self, key, x: dict) -> None:
        self.learn_many([key], [x])

    def score_many(self, keys, xs) -> list[float]:
        """Each row's key's ``score_one(xs[i])``; changes nothing."""
        return self._ask_many("score_one", keys, [(x,) for x in xs])

    def score_one(self, key, x: dict) -> float:
        return self.score_many([key], [x])[0]

    def score_learn_many(self, keys, xs) -> list[float]:
        """For each row: score it, then learn it; returns the scores."""
        rows = [(x,) for x in xs]
        return self._combined("ask_learn_many", "score_one", keys, rows, rows)
