"""What the sharded models share: the routing of rows to the shard actors
by key group, calls to all shards at once, the log of the operations that
change models and the recovery of a dead shard by replaying it,
checkpoints, restores and rescaling."""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Mapping, Set

import numpy as np

from ..checks import check_integer
from .checkpoint import FORMAT, FORMAT_VERSION, MANIFEST, read_manifest, stale_files
from .groups import GroupIndex, group_ranges
from .storage import Storage

__all__ = ["LOCAL_SYSTEM_CONFIG", "MAX_GROUPS", "ShardedBase", "ray_module", "start_ray"]

MAX_GROUPS = 99_999


def ray_module():
    """Ray, imported now (a clear error where it is not installed)."""
    try:
        import ray
    except ImportError:
        raise ImportError('the sharded models run on Ray: pip install "streamrnn[ray]"') from None
    return ray


#: Ray settings of the local clusters started here: the shard actors run at
#: the driver's priority. (Ray lowers its workers' priority to niceness 15 by
#: default: then any busy process on the machine, the driver's own work
#: included, takes the cores from the shards, whose every batch waits on the
#: slowest; measured under load, a shard's batch took 1.5x its in-process
#: time at niceness 15 and 1.0x at 0.)
LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}


def start_ray(address: str | None = None, **options):
    """Ray, initialised if it is not yet: joining the cluster at ``address``
    (or ``RAY_ADDRESS``), else starting a local one with
    :data:`LOCAL_SYSTEM_CONFIG`; ``options`` go to ``ray.init``. Returns the
    ``ray`` module.

    An existing cluster keeps its own settings: start it with
    ``RAY_worker_niceness=0`` in the environment of ``ray start`` for the
    same priority."""
    ray = ray_module()
    if not ray.is_initialized():
        if address in (None, "local") and not os.environ.get("RAY_ADDRESS"):
            options["_system_config"] = {**LOCAL_SYSTEM_CONFIG, **options.get("_system_config", {})}
        ray.init(address=address, **options)
    return ray


def take(rows, values):
    """The entries ``rows`` (an index array, or None: all) of a batch's
    column: a numpy array or a list."""
    if rows is None:
        return values
    if isinstance(values, np.ndarray):
        return values[rows]
    return [values[i] for i in rows.tolist()]


class InFlight:
    """A logged operation sent to the shards and not yet collected (as
    :meth:`ShardedBank.learn_many_async <streamrnn.distributed.ShardedBank.learn_many_async>`
    returns it): :meth:`result` waits for it."""

    def __init__(self, owner, index: int, calls: dict, refs: dict, finish=None):
        self._owner, self.index, self.calls, self.refs, self._finish = owner, index, calls, refs, finish
        self._done, self._value, self._error = False, None, None

    def _finished(self, results: dict, error) -> None:
        self._done, self._error = True, error
        if error is None:
            self._value = results if self._finish is None else self._finish(results)
        self.calls = self.refs = None  # (their arrays: memory back)

    def done(self) -> bool:
        """Whether the results have been collected."""
        return self._done

    def result(self):
        """The operation's result, once it and every operation sent before
        it have run (a shard that died meanwhile is recovered, as for a
        call that waits); the shards' error if it failed."""
        while not self._done:
            self._owner._collect_next()
        if self._error is not None:
            raise self._error
        return self._value


class ShardedBase:
    """Keyed models over ``n_shards`` Ray actors of class ``shard_class``,
    shard ``i`` owning a contiguous range of the ``n_groups`` key groups.

    Subclasses give the actors' arguments (:meth:`_shard_args`), the kind
    and arguments written to a checkpoint's manifest (``kind``,
    :meth:`_manifest_args`, :meth:`_from_manifest`) and the operations.
    An operation that changes models is logged as ``(method, keys, columns,
    extra)``: the shard's ``method(keys, *columns, *extra)`` restricted to
    its rows (``columns``: one entry per row).
    """

    max_recoveries = 3  # attempts to restart a shard before giving up
    kind = "bank"  # a checkpoint's kind of models
    shard_class: type

    def _setup(self, n_shards: int, n_groups: int, threads: int | None, actor_options: dict | None,
               address: str | None) -> None:
        check_integer("n_groups", n_groups)
        if n_groups > MAX_GROUPS:
            raise ValueError(f"n_groups must be at most {MAX_GROUPS}, got {n_groups}")
        check_integer("n_shards", n_shards)
        check_integer("threads", threads, none_ok=True)
        self.n_groups, self.threads = n_groups, threads
        self.actor_options = dict(actor_options or {})
        self._bounds = group_ranges(n_groups, n_shards)
        self._index = GroupIndex(n_groups)
        ray = start_ray(address)
        self._remote = ray.remote(self.shard_class).options(max_restarts=0, **self.actor_options)
        self._actors = [self._start() for _ in range(n_shards)]
        self._batch = 0  # the count the shards' models keep (a bank's batches, a wrapper's samples)
        self._log: list = []  # operations since the base state
        self._in_flight: deque = deque()  # logged operations sent and not yet collected, oldest first
        self._base: tuple = ("empty",)  # what recovery restarts from
        self.recoveries = 0  # shards restarted so far

    #: With more operations than this kept for recovery, the next learning
    #: call first copies every model to the driver and starts the log
    #: afresh (None: the log grows until :meth:`checkpoint`).
    max_log: int | None = None

    def _shard_args(self) -> tuple:
        raise NotImplementedError

    def _group_state_call(self) -> tuple:
        """The shard method (and its arguments) that returns the state of
        each group a shard holds, as its ``put_groups`` takes it back."""
        raise NotImplementedError

    def _rebase(self) -> dict:
        """Every group's models copied here as the state recovery starts
        from, the log emptied; returns them."""
        parts = {}
        for part in self._everywhere(*self._group_state_call()):
            parts.update(part)
        self._base, self._log = ("snapshot", parts, self._batch), []
        return parts

    def _bound_log(self) -> None:
        """Before a learning call: keep at most :attr:`max_log` operations."""
        if self.max_log is not None and len(self._log) >= self.max_log:
            self._rebase()

    def _manifest_args(self, storage: Storage, number: int) -> dict:
        raise NotImplementedError

    @classmethod
    def _from_manifest(cls, storage: Storage, manifest: dict, n_shards: int, options: dict):
        raise NotImplementedError

    def _start(self):
        return self._remote.remote(*self._shard_args(), self.n_groups, self.threads)

    def close(self) -> None:
        """End the shard actors (their models are gone: :meth:`checkpoint`
        first to keep them)."""
        ray = ray_module()
        for actor in self._actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        self._actors = []

    def __reduce__(self):
        raise TypeError(f"a {type(self).__name__} is not picklable (it holds Ray actors): use checkpoint() "
                        "and restore()")

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
        return take(rows, keys)

    # ---------------------------------------------------- calls and recovery

    def _call(self, calls: dict, logged: bool) -> dict:
        """Run ``{shard: (method, args)}`` on all shards at once (after the
        logged operations still in flight); a shard that died is recovered
        and (unless the call is the last logged operation, which the replay
        runs) asked again."""
        self._drain()
        ray = ray_module()
        refs = {s: getattr(self._actors[s], m).remote(*a) for s, (m, a) in calls.items()}
        results, failed, error = {}, [], None
        for s, ref in refs.items():  # (every call awaited, even after an error: none left running)
            try:
                results[s] = ray.get(ref)
            except ray.exceptions.RayActorError:
                failed.append(s)
            except Exception as e:  # the shard's own error (the models', raised there)
                error = error or e
        for s in failed:
            results[s] = self._recover(s, None if logged else calls[s])
        if error is not None:
            raise error
        return results

    def _logged(self, method: str, keys, columns: tuple = (), extra: tuple = (), parts=None,
                everywhere: bool = True) -> dict:
        """Log the operation, then run it on every shard (on its rows; only
        on the shards that have rows unless ``everywhere``); returns
        ``{shard: result}``."""
        return self._submit(method, keys, columns, extra, parts, everywhere).result()

    def _submit(self, method: str, keys, columns: tuple = (), extra: tuple = (), parts=None,
                everywhere: bool = True, finish=None) -> InFlight:
        """Log the operation and send it to the shards as :meth:`_logged`
        does, without waiting: the shards run it after the operations
        already sent, and the :class:`InFlight` returned collects the
        results (``finish(results)``, else the ``{shard: result}`` dict)."""
        parts = self._split(keys) if parts is None else parts
        self._log.append((method, keys, columns, extra))
        calls = {s: (method, (self._take(keys, rows), *(take(rows, c) for c in columns), *extra))
                 for s, rows in enumerate(parts) if everywhere or rows is None or len(rows)}
        refs = {s: getattr(self._actors[s], m).remote(*a) for s, (m, a) in calls.items()}
        flight = InFlight(self, len(self._log) - 1, calls, refs, finish)
        self._in_flight.append(flight)
        return flight

    def _drain(self) -> None:
        """Collect every logged operation in flight (their errors are kept
        for their own :meth:`InFlight.result`)."""
        while self._in_flight:
            self._collect_next()

    def _collect_next(self) -> None:
        """Collect the oldest logged operation in flight: a shard that died
        is recovered to the state before it and sent it (and the ones after
        it) again."""
        ray = ray_module()
        flight = self._in_flight[0]
        results, error = {}, None
        for s in flight.refs:  # (every call awaited, even after an error: none left running)
            while True:
                try:
                    results[s] = ray.get(flight.refs[s])
                except ray.exceptions.RayActorError:
                    self._restart_in_flight(s)
                    continue
                except Exception as e:  # the shard's own error (the models', raised there)
                    error = error or e
                break
        self._in_flight.popleft()
        flight._finished(results, error)

    def _restart_in_flight(self, s: int) -> None:
        """A new actor for shard ``s``: its groups loaded from the base state,
        the logged operations before the oldest in flight replayed, and the
        operations in flight sent to it again, in order."""
        ray = ray_module()
        first = self._in_flight[0].index

        def resend(actor):
            ray.get(actor.replay.remote(self._ops_for(s, first)))
            for flight in self._in_flight:
                if s in flight.calls:
                    method, args = flight.calls[s]
                    flight.refs[s] = getattr(actor, method).remote(*args)

        self._restart(s, resend)

    def _recover(self, s: int, call):
        """A new actor for shard ``s``, its groups loaded from the base state
        and the logged operations replayed; returns the answer to ``call``
        (or the replay's last operation's)."""
        ray = ray_module()

        def replay(actor):
            result = ray.get(actor.replay.remote(self._ops_for(s)))
            return result if call is None else ray.get(getattr(actor, call[0]).remote(*call[1]))

        return self._restart(s, replay)

    def _restart(self, s: int, then):
        """Replace shard ``s``'s actor by a new one holding its groups of the
        base state, then run ``then(actor)`` and return its result; all
        again (at most :attr:`max_recoveries` times) if the new actor dies
        meanwhile."""
        ray = ray_module()
        for _ in range(self.max_recoveries):
            try:
                ray.kill(self._actors[s], no_restart=True)
            except Exception:  # already gone
                pass
            actor = self._actors[s] = self._start()
            try:
                ray.get(self._load_base(actor, s))
                result = then(actor)
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
        return actor.keys.remote()  # (fresh models: nothing to load)

    def _ops_for(self, s: int, end: int | None = None) -> list:
        """The logged operations (the first ``end`` of them) restricted to
        shard ``s``'s keys."""
        ops = []
        for method, keys, columns, extra in self._log[:end]:
            rows = self._split(keys)[s]
            ops.append((method, self._take(keys, rows), tuple(take(rows, c) for c in columns), extra))
        return ops

    def _everywhere(self, method: str, *args) -> list:
        results = self._call({s: (method, args) for s in range(self.n_shards)}, logged=False)
        return [results[s] for s in range(self.n_shards)]

    # --------------------------------------------------------------- keys

    def evict(self, keys) -> None:
        """Forget these keys' models (all known: ``KeyError`` otherwise, and
        none is forgotten)."""
        if isinstance(keys, str | bytes | Set | Mapping):
            raise ValueError(f"keys must be a list of keys, got the {type(keys).__name__} {keys!r}"[:300])
        keys = list(dict.fromkeys(keys))
        parts = self._split(keys)
        calls = {s: ("missing", (self._take(keys, rows), *self._now())) for s, rows in enumerate(parts)}
        for missing in self._call(calls, logged=False).values():
            if missing:
                raise KeyError(missing[0])
        self._logged("evict", keys, extra=self._now(), parts=parts)

    def _now(self) -> tuple:
        """Extra arguments of the calls that read or evict keys (none here)."""
        return ()

    @property
    def keys(self) -> list:
        """The keys held, shard by shard (each shard's in its own order)."""
        return [k for part in self._everywhere("keys", *self._now()) for k in part]

    def __len__(self) -> int:
        return len(self.keys)

    def _home(self, key) -> int:
        return int(self._shard_of(self._index.of([key]))[0])

    def __contains__(self, key) -> bool:
        s = self._home(key)
        return not self._call({s: ("missing", ([key], *self._now()))}, logged=False)[s]

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
        for part in self._everywhere("write_groups", storage, number, *self._now()):
            written.update(part)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "checkpoint": number, "offset": offset,
            "n_groups": self.n_groups, "n_shards": self.n_shards, "batch": self._batch,
            **self._manifest_args(storage, number),
            "groups": [[g, name, n] for g, (name, n) in sorted(written.items())],
        }
        manifest = json.loads(json.dumps(manifest, allow_nan=False))  # (as it reads back: tuples as lists)
        storage.write_json(MANIFEST, manifest)
        for name in stale_files(storage, manifest):
            storage.remove(name)
        self._base, self._log = ("checkpoint", storage, manifest), []
        return manifest

    @classmethod
    def restore(cls, path, n_shards: int | None = None, **options):
        """The models saved by the last complete :meth:`checkpoint` in
        ``path``, on ``n_shards`` shards (default: as many as it had), and
        the offset given to that checkpoint: replay the stream from there.
        ``options`` as the constructor's."""
        storage = Storage(path)
        manifest = read_manifest(storage)
        if manifest is None:
            raise FileNotFoundError(f"{storage.path}: no checkpoint ({MANIFEST} not found)")
        kind = manifest.get("kind", "bank")
        if kind != cls.kind:
            raise ValueError(f"{storage.path}: a checkpoint of a sharded {kind}, not of a {cls.__name__}")
        sharded = cls._from_manifest(storage, manifest, n_shards or manifest["n_shards"], options)
        sharded._batch = manifest["batch"]
        sharded._base = ("checkpoint", storage, manifest)
        ray_module().get([sharded._load_base(a, s) for s, a in enumerate(sharded._actors)])
        return sharded, manifest["offset"]

    # ------------------------------------------------------------- rescaling

    def rescale(self, n_shards: int) -> None:
        """Spread the key groups over ``n_shards`` shards: whole groups move
        between actors (snapshot, forget, load); every model stays exact."""
        check_integer("n_shards", n_shards)
        ray = ray_module()
        new_bounds = group_ranges(self.n_groups, n_shards)
        old = self.n_shards
        moving = {}
        takes = {}
        for s in range(old):
            lo, hi = self._bounds[s], self._bounds[s + 1]
            keep = (new_bounds[s], new_bounds[s + 1]) if s < n_shards else (0, 0)
            groups = [g for g in range(lo, hi) if not keep[0] <= g < keep[1]]
            if groups:
                takes[s] = ("take_groups", (groups, *self._now()))
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
