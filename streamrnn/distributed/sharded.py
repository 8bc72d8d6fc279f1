"""``ShardedBank``: a :class:`~streamrnn.ModelBank` of key-seeded models
spread over Ray actors by key group, with checkpoints, recovery after a
shard's failure and rescaling, each exact."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Set

import numpy as np

from ..bank import ModelBank
from ..checks import check_integer, unmasked
from ..keys import batch_keys
from .checkpoint import FORMAT, FORMAT_VERSION, MANIFEST, read_manifest, stale_files
from .groups import GroupIndex, compact, group_ranges, merge_snapshots, split_snapshot
from .shard import Shard
from .storage import Storage

__all__ = ["ShardedBank"]

MAX_GROUPS = 99_999


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError('ShardedBank runs on Ray: pip install "streamrnn[ray]"') from None
    return ray


class ShardedBank:
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

    max_recoveries = 3  # attempts to restart a shard before giving up

    def __init__(self, n_shards: int = 2, n_groups: int = 256, seed: int | None = None,
                 max_idle: int | None = None, device: str = "cpu", threads: int | None = None,
                 actor_options: dict | None = None, address: str | None = None, **config):
        check_integer("n_groups", n_groups)
        if n_groups > MAX_GROUPS:
            raise ValueError(f"n_groups must be at most {MAX_GROUPS}, got {n_groups}")
        check_integer("n_shards", n_shards)
        check_integer("threads", threads, none_ok=True)
        seed = secrets.randbits(63) if seed is None else seed
        self._template = ModelBank(seed=seed, max_idle=max_idle, capacity=1, seed_by_key=True, **config)
        self.seed, self.max_idle, self.device, self.config = seed, max_idle, device, dict(config)
        self.n_groups, self.threads = n_groups, threads
        self.actor_options = dict(actor_options or {})
        self._bounds = group_ranges(n_groups, n_shards)
        self._index = GroupIndex(n_groups)
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=address)
        self._remote = ray.remote(Shard).options(max_restarts=0, **self.actor_options)
        self._actors = [self._start() for _ in range(n_shards)]
        self._batch = 0  # learn_many batches seen (the shards' banks count them too)
        self._log: list = []  # operations since the base state
        self._base: tuple = ("empty",)  # what recovery restarts from
        self.recoveries = 0  # shards restarted so far

    def _start(self):
        args = dict(seed=self.seed, max_idle=self.max_idle, device=self.device, **self.config)
        return self._remote.remote(args, self.n_groups, self.threads)

    def close(self) -> None:
        """End the shard actors (their models are gone: :meth:`checkpoint`
        first to keep them)."""
        ray = _ray()
        for actor in self._actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        self._actors = []

    def __reduce__(self):
        raise TypeError("a ShardedBank is not picklable (it holds Ray actors): use checkpoint() and restore()")

    @property
    def n_shards(self) -> int:
        return len(self._actors)

    # ------------------------------------------------------------- routing

    def _shard_of(self, groups: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._bounds, groups, side="right") - 1

    def _split(self, keys) -> list:
        """Each shard's rows of a batch (``None``: all of them)."""
        groups = self._index.of(keys)  # (refuses keys without a stable hash)
        if self.n_shards == 1:
            return [None]
        shard = self._shard_of(groups)
        order = np.argsort(shard, kind="stable")
        ends = np.cumsum(np.bincount(shard, minlength=self.n_shards))
        return np.split(order, ends[:-1])

    @staticmethod
    def _take(keys, rows):
        if rows is None:
            return keys
        if isinstance(keys, np.ndarray):
            return keys[rows]
        return [keys[i] for i in rows.tolist()]

    def _rows(self, keys, X, size: int, name: str):
        keys = batch_keys(keys)
        X = unmasked(X)
        if X.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
        if X.ndim == 1 and size == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape != (len(keys), size):
            raise ValueError(f"{name} must have shape ({len(keys)}, {size}), got {X.shape}")
        return keys, np.ascontiguousarray(X, dtype=self._template._dtype)

    # ---------------------------------------------------- calls and recovery

    def _call(self, calls: dict, logged: bool) -> dict:
        """Run ``{shard: (method, args)}`` on all shards at once; a shard
        that died is recovered and (unless the call is the last logged
        operation, which the replay runs) asked again."""
        ray = _ray()
        refs = {s: getattr(self._actors[s], m).remote(*a) for s, (m, a) in calls.items()}
        results, failed, error = {}, [], None
        for s, ref in refs.items():  # (every call awaited, even after an error: none left running)
            try:
                results[s] = ray.get(ref)
            except ray.exceptions.RayActorError:
                failed.append(s)
            except Exception as e:  # the shard's own error (the bank's, raised there)
                error = error or e
        for s in failed:
            results[s] = self._recover(s, None if logged else calls[s])
        if error is not None:
            raise error
        return results

    def _recover(self, s: int, call):
        """A new actor for shard ``s``, its groups loaded from the base state
        and the logged operations replayed; returns the answer to ``call``
        (or the replay's last learn predictions)."""
        ray = _ray()
        for _ in range(self.max_recoveries):
            try:
                ray.kill(self._actors[s], no_restart=True)
            except Exception:  # already gone
                pass
            actor = self._actors[s] = self._start()
            try:
                ray.get(self._load_base(actor, s))
                result = ray.get(actor.replay.remote(self._ops_for(s)))
                if call is not None:
                    result = ray.get(getattr(actor, call[0]).remote(*call[1]))
            except ray.exceptions.RayActorError:
                continue
            self.recoveries += 1
            return result
        raise RuntimeError(f"shard {s} died {self.max_recoveries} times in a row while it was being recovered")

    def _owned(self, s: int, groups) -> dict:
        lo, hi = self._bounds[s], self._bounds[s + 1]
        return {g: v for g, v in groups.items() if lo <= g < hi}

    def _load_base(self, actor, s: int):
        kind = self._base[0]
        if kind == "checkpoint":
            _, storage, manifest = self._base
            files = self._owned(s, {g: name for g, name, _ in manifest["groups"]})
            return actor.read_groups.remote(storage, files, manifest["batch"])
        if kind == "snapshot":
            _, parts, batch = self._base
            return actor.put_groups.remote(self._owned(s, parts), batch)
        return actor.keys.remote()  # (a fresh bank: nothing to load)

    def _ops_for(self, s: int) -> list:
        """The logged operations restricted to shard ``s``'s keys."""
        ops = []
        for op in self._log:
            rows = self._split(op[1])[s]
            if op[0] == "learn":
                ops.append(("learn", self._take(op[1], rows), *(a if rows is None else a[rows] for a in op[2:])))
            else:
                ops.append(("evict", self._take(op[1], rows)))
        return ops

    # ------------------------------------------------------------- batches

    def learn_many(self, keys, X, Y) -> np.ndarray:
        """Learn each row ``(keys[i], X[i], Y[i])`` on its key's model; returns
        the predictions made before each update, shape ``(n, output_size)``
        (as :meth:`ModelBank.learn_many <streamrnn.ModelBank.learn_many>`)."""
        t = self._template
        keys, X = self._rows(keys, X, t._input_size, "X")
        _, Y = self._rows(keys, Y, t._output_size, "Y")
        parts = self._split(keys)
        self._log.append(("learn", keys, X, Y))
        self._batch += 1
        calls = {s: ("learn_many", (self._take(keys, rows), *(a if rows is None else a[rows] for a in (X, Y))))
                 for s, rows in enumerate(parts)}
        return self._gather(parts, self._call(calls, logged=True), (len(keys), t._output_size))

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

    def evict(self, keys) -> None:
        """Forget these keys' models (all known: ``KeyError`` otherwise, and
        none is forgotten)."""
        if isinstance(keys, str | bytes | Set | Mapping):
            raise ValueError(f"keys must be a list of keys, got the {type(keys).__name__} {keys!r}"[:300])
        keys = list(dict.fromkeys(keys))
        parts = self._split(keys)
        calls = {s: ("missing", (self._take(keys, rows),)) for s, rows in enumerate(parts)}
        for missing in self._call(calls, logged=False).values():
            if missing:
                raise KeyError(missing[0])
        self._log.append(("evict", keys))
        self._call({s: ("evict", (self._take(keys, rows),)) for s, rows in enumerate(parts)}, logged=True)

    # --------------------------------------------------------------- keys

    def _everywhere(self, method: str, *args) -> list:
        results = self._call({s: (method, args) for s in range(self.n_shards)}, logged=False)
        return [results[s] for s in range(self.n_shards)]

    @property
    def keys(self) -> list:
        """The keys held, shard by shard (each shard's in its bank's order)."""
        return [k for part in self._everywhere("keys") for k in part]

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key) -> bool:
        s = int(self._shard_of(self._index.of([key]))[0])
        return not self._call({s: ("missing", ([key],))}, logged=False)[s]

    def model(self, key):
        """A copy of ``key``'s model as a standalone :class:`~streamrnn.OnlineRNN`
        (``KeyError`` if the bank does not hold it)."""
        if key not in self:
            raise KeyError(key)
        s = int(self._shard_of(self._index.of([key]))[0])
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
        _ray().get([bank._load_base(a, s) for s, a in enumerate(bank._actors)])
        return bank

    # ---------------------------------------------------------- checkpoints

    def checkpoint(self, path, offset=None) -> dict:
        """Save every key group's models (one file per group holding keys,
        each written whole or not at all) and then a manifest naming them,
        with ``offset`` (plain JSON data: the stream position to replay from
        after :meth:`restore`, a Kafka offset or a row number). A checkpoint
        interrupted before its manifest leaves the earlier one in ``path``
        whole; the files of earlier checkpoints go once the manifest is
        written. The operations kept for recovery are dropped. Returns the
        manifest."""
        try:
            json.dumps(offset, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"offset must be plain JSON data (a number, a string, ...): {e}") from None
        storage = Storage(path)
        storage.make()
        storage.clean()
        previous = read_manifest(storage)
        number = 1 if previous is None else previous["checkpoint"] % 999_999 + 1
        written = {}
        for part in self._everywhere("write_groups", storage, number):
            written.update(part)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "checkpoint": number, "offset": offset,
            "n_groups": self.n_groups, "n_shards": self.n_shards, "batch": self._batch,
            "bank": {"seed": self.seed, "max_idle": self.max_idle, "device": self.device, "config": self.config},
            "groups": [[g, name, n] for g, (name, n) in sorted(written.items())],
        }
        manifest = json.loads(json.dumps(manifest, allow_nan=False))  # (as it reads back: tuples as lists)
        storage.write_json(MANIFEST, manifest)
        for name in stale_files(storage, manifest):
            storage.remove(name)
        self._base, self._log = ("checkpoint", storage, manifest), []
        return manifest

    @classmethod
    def restore(cls, path, n_shards: int | None = None, **options) -> tuple[ShardedBank, object]:
        """The bank saved by the last complete :meth:`checkpoint` in
        ``path``, on ``n_shards`` shards (default: as many as it had), and
        the offset given to that checkpoint: replay the stream from there.
        ``options`` as the constructor's."""
        storage = Storage(path)
        manifest = read_manifest(storage)
        if manifest is None:
            raise FileNotFoundError(f"{storage.path}: no checkpoint ({MANIFEST} not found)")
        args = manifest["bank"]
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in args["config"].items()}  # (JSON: lists)
        try:
            bank = cls(n_shards=n_shards or manifest["n_shards"], n_groups=manifest["n_groups"], seed=args["seed"],
                       max_idle=args.get("max_idle"), **{"device": args.get("device", "cpu"), **options}, **config)
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"{storage.path}: the checkpoint's bank arguments are invalid ({e})") from None
        bank._batch = manifest["batch"]
        bank._base = ("checkpoint", storage, manifest)
        _ray().get([bank._load_base(a, s) for s, a in enumerate(bank._actors)])
        return bank, manifest["offset"]

    # ------------------------------------------------------------- rescaling

    def rescale(self, n_shards: int) -> None:
        """Spread the key groups over ``n_shards`` shards: whole groups move
        between actors (snapshot, forget, load); every model stays exact."""
        check_integer("n_shards", n_shards)
        ray = _ray()
        new_bounds = group_ranges(self.n_groups, n_shards)
        old = self.n_shards
        moving = {}
        takes = {}
        for s in range(old):
            lo, hi = self._bounds[s], self._bounds[s + 1]
            keep = (new_bounds[s], new_bounds[s + 1]) if s < n_shards else (0, 0)
            groups = [g for g in range(lo, hi) if not keep[0] <= g < keep[1]]
            if groups:
                takes[s] = ("take_groups", (groups,))
        for part in self._call(takes, logged=False).values():
            moving.update(part)
        for s in range(n_shards, old):
            ray.kill(self._actors[s], no_restart=True)
        self._actors = self._actors[:n_shards] + [self._start() for _ in range(old, n_shards)]
        self._bounds = new_bounds
        puts = {}
        for s in range(n_shards):
            parts = self._owned(s, moving)
            if parts or s >= old:
                puts[s] = ("put_groups", (parts, self._batch))
        self._call(puts, logged=True)  # (a shard recovered now is loaded with its new groups)
