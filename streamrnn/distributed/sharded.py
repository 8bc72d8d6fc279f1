"""``ShardedBank``: a :class:`~streamrnn.ModelBank` of key-seeded models
spread over Ray actors by key group, with checkpoints, recovery after a
shard's failure and rescaling, each exact."""

from __future__ import annotations

import secrets

import numpy as np

from ..bank import ModelBank, batch_rows
from ..checks import check_integer
from .base import MAX_GROUPS, InFlight, ShardedBase, ray_module
from .groups import compact, merge_snapshots, split_snapshot
from .shard import Shard

__all__ = ["ShardedBank"]

class ShardedBank(ShardedBase):
    """Keyed models (one :class:`~streamrnn.OnlineRNN` per key, as in a
    :class:`~streamrnn.ModelBank`) spread over ``n_shards`` Ray actors.

    A key belongs to one of ``n_groups`` key groups (a stable hash of the
    key, :func:`streamrnn.keys.key_group`); shard ``i`` owns a contiguous
    range of groups and holds their keys' models in one bank. Each key's
    model is seeded from ``seed`` and the key (``ModelBank(seed_by_key=True)``),
    so the results equal one such ``ModelBank``'s bit for bit whatever the
    number of shards. A batch is split by shard with NumPy, sent to all
    shards at once, and its outputs come back in the input's row order.

    The bank keeps the operations that change models (``learn_many``,
    ``evict``) since the last :meth:`checkpoint`. When a shard's process
    dies, the next call that reaches it starts a new actor, loads its groups
    from the last checkpoint (or the state the bank started from) and
    replays those operations, then answers: the caller sees no error, and
    every model is as if nothing had failed (outputs of the failed call are
    computed again: at-least-once).

    Parameters
    ----------
    n_shards
        Number of shard actors.
    n_groups
        Number of key groups, fixed for the life of the bank and its
        checkpoints: the most shards it can have, and the number of files
        of a checkpoint (each costs a few milliseconds to write and to
        load besides its models' bytes); at most 99,999.
    seed
        Seed of the models (None: one drawn now, kept, so that recovery
        replays give the same models).
    max_idle
        As :class:`~streamrnn.ModelBank`'s: keys not seen in this many
        ``learn_many`` batches are evicted.
    device
        ``"cpu"`` or ``"cuda"`` (each shard's bank on its actor's GPU: give
        ``actor_options={"num_gpus": 1}``).
    threads
        Numba threads of each shard's process (None: Numba's default).
    actor_options
        Options of the shard actors (``ray.remote(...).options``:
        ``num_cpus``, ``num_gpus``, ``resources``, ...).
    address
        The Ray cluster to join when Ray is not initialised yet (None: a
        local one).
    **config
        :class:`~streamrnn.OnlineRNN` arguments of every model.
    """

    kind = "bank"
    shard_class = Shard

    def __init__(self, n_shards: int = 2, n_groups: int = 256, seed: int | None = None,
                 max_idle: int | None = None, device: str = "cpu", threads: int | None = None,
                 actor_options: dict | None = None, address: str | None = None, **config):
        check_integer("n_groups", n_groups)
        if n_groups > MAX_GROUPS:
            raise ValueError(f"n_groups must be at most {MAX_GROUPS}, got {n_groups}")
        seed = secrets.randbits(63) if seed is None else seed
        self._template = ModelBank(seed=seed, max_idle=max_idle, capacity=1, seed_by_key=True, **config)
        self.seed, self.max_idle, self.device, self.config = seed, max_idle, device, dict(config)
        self._setup(n_shards, n_groups, threads, actor_options, address)

    def _group_state_call(self) -> tuple:
        return ("group_snapshots",)

    def _shard_args(self) -> tuple:
        return (dict(seed=self.seed, max_idle=self.max_idle, device=self.device, **self.config),)

    def _manifest_args(self, storage, number: int) -> dict:
        return {"bank": {"seed": self.seed, "max_idle": self.max_idle, "device": self.device, "config": self.config}}

    @classmethod
    def _from_manifest(cls, storage, manifest: dict, n_shards: int, options: dict) -> ShardedBank:
        args = manifest["bank"]
        if not isinstance(args, dict) or not isinstance(args.get("config"), dict):
            raise ValueError(f"{storage.path}: not a valid checkpoint: no bank arguments")
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in args["config"].items()}  # (JSON: lists)
        try:
            return cls(n_shards=n_shards, n_groups=manifest["n_groups"], seed=args["seed"],
                       max_idle=args.get("max_idle"), **{"device": args.get("device", "cpu"), **options}, **config)
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"{storage.path}: the checkpoint's bank arguments are invalid ({e})") from None

    def _rows(self, keys, X, size: int, name: str):
        return batch_rows(keys, X, size, name, self._template._dtype)

    # ------------------------------------------------------------- batches

    def learn_many(self, keys, X, Y) -> np.ndarray:
        """Learn each row ``(keys[i], X[i], Y[i])`` on its key's model; returns
        the predictions made before each update, shape ``(n, output_size)``
        (as :meth:`ModelBank.learn_many <streamrnn.ModelBank.learn_many>`)."""
        return self.learn_many_async(keys, X, Y).result()

    def learn_many_async(self, keys, X, Y) -> InFlight:
        """:meth:`learn_many` without waiting: the batch is checked, logged
        and sent to the shards, which run it after the batches already sent;
        ``.result()`` of the returned :class:`~streamrnn.distributed.base.InFlight`
        gives what :meth:`learn_many` returns. Send the next batch before
        collecting this one and the shards never wait for the driver
        (splitting, sending, gathering). Any other call first collects
        every batch in flight; a shard that dies meanwhile is recovered
        and sent them again, so the results are those of waiting calls."""
        t = self._template
        keys, X = self._rows(keys, X, t._input_size, "X")
        _, Y = self._rows(keys, Y, t._output_size, "Y")
        parts = self._split(keys)
        self._bound_log()
        self._batch += 1
        shape = (len(keys), t._output_size)
        return self._submit("learn_many", keys, (X, Y), parts=parts,
                            finish=lambda results: self._gather(parts, results, shape))

    def _gather(self, parts, results, shape) -> np.ndarray:
        if len(parts) == 1:
            return results[0]
        out = np.empty(shape, dtype=self._template._dtype)
        for s, rows in enumerate(parts):
            out[rows] = results[s]
        return out

    def _query(self, method: str, keys, X, extra=(), shape=()) -> np.ndarray:
        parts = self._split(keys)
        calls = {s: (method, (self._take(keys, rows), *extra, X if rows is None else X[rows]))
                 for s, rows in enumerate(parts) if rows is None or len(rows)}
        results = self._call(calls, logged=False)
        if len(parts) == 1:
            return results[0]
        out = np.empty((len(keys), *shape), dtype=self._template._dtype)
        for s, rows in enumerate(parts):
            if len(rows):
                out[rows] = results[s]
        return out

    def predict_many(self, keys, X) -> np.ndarray:
        """Predictions for the rows from each key's carried state (an unseen
        key's by the model it would get); changes nothing."""
        keys, X = self._rows(keys, X, self._template._input_size, "X")
        return self._query("predict_many", keys, X, shape=(self._template._output_size,))

    def forecast_many(self, keys, horizon: int, X0) -> np.ndarray:
        """Forecast ``horizon`` steps for each key from its carried state (as
        :meth:`ModelBank.forecast_many <streamrnn.ModelBank.forecast_many>`);
        changes nothing."""
        t = self._template
        if t._input_size != t._output_size:
            raise ValueError("forecast_many needs models with as many outputs as inputs")
        check_integer("horizon", horizon)
        keys, X0 = self._rows(keys, X0, t._input_size, "X0")
        return self._query("forecast_many", keys, X0, extra=(horizon,), shape=(horizon, t._output_size))

    # --------------------------------------------------------------- keys

    def model(self, key):
        """A copy of ``key``'s model as a standalone :class:`~streamrnn.OnlineRNN`
        (``KeyError`` if the bank does not hold it)."""
        if key not in self:
            raise KeyError(key)
        s = self._home(key)
        return self._call({s: ("model", (key,))}, logged=False)[s]

    # ------------------------------------------------------------ snapshots

    def snapshot(self) -> dict:
        """The state of every model as one :meth:`ModelBank.snapshot
        <streamrnn.ModelBank.snapshot>` (``ModelBank.restore`` makes a bank
        that continues exactly as this one; :meth:`from_snapshot` a sharded
        one)."""
        parts = [compact(p) for p in self._everywhere("snapshot")]
        merged = merge_snapshots(parts, parts[0])
        merged["meta"]["batch"] = self._batch
        return merged

    @classmethod
    def from_snapshot(cls, snapshot: dict, n_shards: int = 2, n_groups: int = 256, **options) -> ShardedBank:
        """A sharded bank holding the models of a key-seeded
        :class:`~streamrnn.ModelBank`'s :meth:`~streamrnn.ModelBank.snapshot`;
        ``options`` as the constructor's (``threads``, ``actor_options``...)."""
        meta = snapshot["meta"]
        if not meta.get("seed_by_key"):
            raise ValueError("a ShardedBank holds key-seeded models: the snapshot must be of a "
                             "ModelBank(seed_by_key=True)")
        restored = ModelBank.restore(snapshot, device="cpu")  # (checks the snapshot)
        snapshot = restored.snapshot()
        bank = cls(n_shards=n_shards, n_groups=n_groups, seed=meta["seed"], max_idle=meta["max_idle"],
                   device=meta.get("device", "cpu"), **options, **meta["config"])
        keys = [snapshot["meta"]["keys"][s] for s in snapshot["meta"]["order"]]
        parts = split_snapshot(snapshot, bank._index.of(keys))
        bank._batch = int(meta["batch"])
        bank._base = ("snapshot", parts, bank._batch)
        ray_module().get([bank._load_base(a, s) for s, a in enumerate(bank._actors)])
        return bank
