"""``ModelBank``: many independent online recurrent models, one per key,
updated in one kernel call per batch."""

from __future__ import annotations

import copy

import numba
import numpy as np

from .checks import check_integer, unmasked
from .guard import Guarded, exclusive, without_guard
from .keys import array_lookup, batch_keys, factorize, holds_nan, key_bytes, key_seed, keys_to_evict
from .kernels import layout as L
from .kernels import recurrent as K
from .kernels.grouping import dense_groups, scatter_rows, table_slots
from .learner import OnlineRNN
from .network import aligned_zeros, counters_problem
from .workers import run_chunks

SNAPSHOT_VERSION = 1
DEVICES = ("cpu", "cuda")
_FLUSH_MODELS = 4096  # new models sent to the GPU at a time (bounds the host memory they take)


def _cuda_kernels():
    """:mod:`streamrnn.kernels.cuda`, once numba-cuda and a GPU (or the
    simulator) are known to be there."""
    from .kernels import cuda as KC

    KC.cuda_module()
    return KC


def bank_store(lay: np.ndarray, capacity: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """A bank's flat store (see :mod:`streamrnn.kernels.recurrent`, banks):
    the persistent parts of ``capacity`` models, then a scratch region for
    each of Numba's threads; and the ``(capacity, lay[L_PERSIST])`` view of
    the models' part, its rows 64-byte aligned."""
    persist, scratch = int(lay[L.L_PERSIST]), int(lay[L.L_BUF] - lay[L.L_PERSIST])
    store = aligned_zeros(capacity * persist + numba.config.NUMBA_NUM_THREADS * scratch, dtype)
    return store, store[: capacity * persist].reshape(capacity, persist)


def check_bank_arguments(max_idle, capacity) -> None:
    """The arguments every bank takes, checked."""
    check_integer("max_idle", max_idle, none_ok=True)
    check_integer("capacity", capacity)


def check_snapshot_parts(snapshot: dict) -> None:
    """The parts of a snapshot of the right kinds before any is used: the
    arrays numpy arrays, the keys a list without NaN-like keys, the counts
    integers (so a tampered or corrupted snapshot gets an error that names
    the part, not one from deep in the restore)."""
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("meta"), dict):
        raise ValueError("a snapshot is a dict with 'meta' (a dict), 'buf', 'ctr' and 'last_seen'")
    for name in ("buf", "ctr", "last_seen"):
        if not isinstance(snapshot.get(name), np.ndarray):
            raise ValueError(f"snapshot {name} must be a numpy array, got {type(snapshot.get(name)).__name__}")
    meta = snapshot["meta"]
    keys = meta.get("keys")
    if not isinstance(keys, list):
        raise ValueError(f"snapshot meta keys must be a list, got {type(keys).__name__}")
    for i, key in enumerate(keys):
        if holds_nan(key):
            raise ValueError(f"snapshot key of slot {i} is or holds NaN")
    check_integer("snapshot n_created", meta.get("n_created"), low=len(keys))
    check_integer("snapshot batch", meta.get("batch"), low=0)
    for name in ("steps_gone", "updates"):
        if name in meta:
            check_integer(f"snapshot {name}", meta[name], low=0)


def check_snapshot_arrays(bank, snapshot: dict) -> None:
    """The arrays of a snapshot of the right shapes, checked against the
    empty ``bank`` built from its metadata: their dtypes, idle counts and
    counters (which the kernels index the TBPTT windows by)."""
    n = len(snapshot["meta"]["keys"])
    if snapshot["buf"].dtype != bank._dtype or snapshot["ctr"].dtype != np.int64:
        raise ValueError(f"snapshot buf must be {np.dtype(bank._dtype).name} and ctr int64 (the configuration's), "
                         f"got {snapshot['buf'].dtype} and {snapshot['ctr'].dtype}")
    last_seen = np.asarray(snapshot["last_seen"])
    if last_seen.shape != (n,) or last_seen.dtype.kind not in "iu":
        raise ValueError(f"snapshot last_seen must be {n} integers (one per slot), got shape {last_seen.shape} "
                         f"of {last_seen.dtype}")
    problem = counters_problem(bank._lay, snapshot["ctr"])
    if problem:
        raise ValueError(f"snapshot counters are not a model's: {problem}")


def batch_rows(keys, X, size: int, name: str, dtype) -> tuple[list, np.ndarray]:
    """A batch's keys and its array ``X`` checked against them: numeric, one
    row per key and ``size`` columns (a 1-D array where ``size`` is 1), as a
    contiguous array of ``dtype``. Masked entries are missing values, as
    :class:`~streamrnn.OnlineRNN` takes them."""
    keys = batch_keys(keys)
    X = unmasked(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
    if X.ndim == 1 and size == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape != (len(keys), size):
        raise ValueError(f"{name} must have shape ({len(keys)}, {size}), got {X.shape}")
    return keys, np.ascontiguousarray(X, dtype=dtype)


def _take(rows, order) -> np.ndarray:
    """``rows[order]`` as int64 (``rows`` None: all rows in order, so ``order``)."""
    return order if rows is None else rows[order].astype(np.int64)


class ModelBank(Guarded):
    """N independent :class:`~streamrnn.OnlineRNN` models of one
    configuration, stored as one array of model buffers and addressed by any
    hashable key.

    A new key gets a slot (slots grow as keys arrive); the model of the n-th
    slot is initialised exactly like ``OnlineRNN(**config, seed=seed + n)``,
    so a bank equals separate learners with those seeds, bit for bit. With
    ``seed_by_key=True`` the model of key ``k`` is initialised like
    ``OnlineRNN(**config, seed=key_seed(seed, k))`` instead (a seed derived
    from ``seed`` and a stable hash of the key, see
    :func:`streamrnn.keys.key_seed`): a key's model then does not depend on
    the order keys arrive in nor on which bank holds it, so banks holding
    parts of a stream's keys give the results of one bank, bit for bit. In a
    batch, the rows of one key are processed in arrival order; different keys
    run in parallel on Numba's threads, with results that do not depend on
    the number of threads.

    Parameters
    ----------
    seed
        Seed of the first slot's model (None: fresh entropy for each).
    seed_by_key
        Seed each key's model from ``seed`` and the key's stable hash
        instead of from ``seed`` and its slot's creation number (keys must
        then be of the kinds :func:`streamrnn.keys.key_bytes` takes: None,
        bool, int, float, str, bytes, numpy scalars, tuples and frozensets
        of those).
    max_idle
        If set, keys not seen in this many batches are evicted after each
        ``learn_many``; their slots are reused.
    capacity
        Slots allocated at first (doubled as needed).
    device
        ``"cpu"`` (``numba.get_num_threads()`` threads, each running whole
        models, claimed a few at a time: see :mod:`streamrnn.workers`) or ``"cuda"``: the
        models' buffers live in GPU memory and each batch runs one GPU thread
        per key (needs ``pip install "streamrnn[cuda]"`` and a CUDA GPU).
        Only inputs, targets and predictions cross to the GPU each batch.
        The GPU pays with many keys per batch: with fewer than ~10^4 the CPU
        is faster. Results equal the CPU's to rounding (not bit for bit:
        sums and multiply-adds round differently there). :meth:`snapshot`
        and :meth:`model` copy the models back to the host.
    **config
        :class:`~streamrnn.OnlineRNN` arguments (``cell``, ``input_size``,
        ``hidden_size``, ``k1``, ``k2``, ``lr``, ...), the same for every model.

    Notes
    -----
    Each model follows :class:`~streamrnn.OnlineRNN`'s non-finite policy on
    its own: an update that would write a non-finite weight is rolled back,
    counted in that model's ``bank.model(key).n_overflows`` (on the CPU and on
    the GPU alike).

    Not thread-safe: a call from a second thread while one is inside the
    bank raises :class:`~streamrnn.guard.ConcurrentUseError` (nothing waits,
    the refused call changes nothing). Use a bank per thread, or a lock of
    your own around the calls.

    Examples
    --------
    >>> import numpy as np
    >>> from streamrnn import ModelBank
    >>> bank = ModelBank(cell="gru", hidden_size=8, seed=0)
    >>> keys = ["pump-1", "pump-2", "pump-1"]
    >>> out = bank.learn_many(keys, np.array([[0.1], [0.5], [0.2]]), np.array([[0.2], [0.4], [0.3]]))
    >>> out.shape, len(bank)
    ((3, 1), 2)
    """

    # defaults for states written before there was a choice of device
    device = "cpu"
    _dev = None
    seed_by_key = False
    _descending = False  # the last CPU batch's direction over the slots (see _direction)

    def __init__(self, seed: int | None = None, max_idle: int | None = None, capacity: int = 16,
                 device: str = "cpu", seed_by_key: bool = False, **config):
        if device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")
        if not isinstance(seed_by_key, bool | np.bool_):
            raise TypeError(f"seed_by_key must be True or False, got {seed_by_key!r}")
        check_bank_arguments(max_idle, capacity)
        self.seed = seed
        self.seed_by_key = bool(seed_by_key)
        self.max_idle = max_idle
        self.device = device
        self.config = dict(config)
        template = OnlineRNN(**config, seed=seed)  # validates the configuration and the seed
        self._lay = template._lay
        self._dtype = template._np_dtype
        self._input_size = template._shape.input_size
        self._output_size = template._shape.output_size
        self._store, self._buf = bank_store(self._lay, capacity, self._dtype)  # _buf: the models' persistent parts
        self._ctr = np.zeros((capacity, L.N_CTR), dtype=np.int64)
        self._start_keys(capacity)
        self._dev = None  # the buffers in GPU memory (device="cuda")
        if device == "cuda":
            self._to_device()

    def _start_keys(self, capacity: int) -> None:
        """No key yet: the key-slot maps, free slots, idle counts and counters."""
        self._last_seen = np.zeros(capacity, dtype=np.int64)
        self._slot_of: dict = {}
        self._int_lookup = None  # integer keys' slots for numpy arrays of keys (None: to be made)
        self._key_of: list = []
        self._free: list = []
        self._n_created = 0
        self._batch = 0

    def _to_device(self) -> None:
        """Move ``_buf`` and ``_ctr`` to GPU memory (``_dev``, as whole model
        buffers); they become None."""
        whole = aligned_zeros((self._buf.shape[0], self._lay[L.L_BUF]), self._dtype)
        whole[:, : self._buf.shape[1]] = self._buf
        self._dev = _cuda_kernels().DeviceBuffers(self._lay, whole, self._ctr)
        self._store = self._buf = self._ctr = None

    @property
    def _capacity(self) -> int:
        """Slots allocated."""
        return self._buf.shape[0] if self._dev is None else self._dev.capacity

    # ------------------------------------------------------------- slots

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key) -> bool:
        return key in self._slot_of

    @property
    def keys(self) -> list:
        return list(self._slot_of)

    def _new_seed(self, key, n_before: int = 0):
        """The seed of the model ``key`` gets (made after ``n_before`` other
        new models)."""
        if self.seed is None:
            return None
        if self.seed_by_key:
            return key_seed(self.seed, key)
        return self.seed + self._n_created + n_before

    def _fresh(self, key) -> tuple[np.ndarray, np.ndarray]:
        model = OnlineRNN(**self.config, seed=self._new_seed(key))
        return model._buf, model._ctr

    def _slot(self, key) -> int:
        slot = self._slot_of.get(key)
        if slot is not None:
            return slot
        slot = self._free[-1] if self._free else len(self._key_of)
        if slot >= self._capacity:
            grow = self._capacity
            last_seen = np.concatenate([self._last_seen, np.zeros(grow, dtype=np.int64)])
            self._grow(2 * grow)  # all or nothing: should it fail, nothing has changed
            self._last_seen = last_seen
        self._init_slot(slot, key)  # first: should it fail, no key is registered
        if self._free:
            self._free.pop()
            self._key_of[slot] = key
        else:
            self._key_of.append(key)
        self._n_created += 1
        self._slot_of[key] = slot
        self._int_lookup = None
        return slot

    def _grow(self, capacity: int) -> None:
        """Room for ``capacity`` models."""
        if self._dev is None:  # both allocated before either is replaced
            store, buf = bank_store(self._lay, capacity, self._dtype)
            ctr = np.zeros((capacity, self._ctr.shape[1]), dtype=self._ctr.dtype)
            buf[: self._buf.shape[0]] = self._buf
            ctr[: self._ctr.shape[0]] = self._ctr
            self._store, self._buf, self._ctr = store, buf, ctr
        else:
            self._dev.grow(capacity)

    def _init_slot(self, slot: int, key) -> None:
        """A new model for ``key`` in ``slot``."""
        if self._dev is None:
            buf, self._ctr[slot] = self._fresh(key)
            self._buf[slot] = buf[: self._buf.shape[1]]
        else:  # written to the GPU in few transfers, by _flush
            self._pending.append((slot, *self._fresh(key)))
            if len(self._pending) >= _FLUSH_MODELS:
                self._flush()

    def _known_slots(self, keys) -> np.ndarray | None:
        """The slot of every key when all are known, else None: a pandas
        Index look-up for a numpy array of integer keys, dict look-ups
        otherwise (also for other numpy arrays: their Python scalars are the
        keys a factorization would look up; 4-7x faster than factorizing
        when every key is distinct, as in a fleet tick). Integer keys in a
        dense range are looked up in one compiled pass over the table."""
        lookup = getattr(self, "_int_lookup", None)  # (absent from an unpickled bank until made)
        if (lookup is not None and lookup.table is not None and isinstance(keys, np.ndarray)
                and keys.dtype.kind == "i"):
            slots, found = table_slots(lookup.table, lookup.low, keys)
            if found:
                return slots
        return array_lookup(self, self._slot_of, keys)

    def _slots(self, keys: list) -> np.ndarray:
        """The slot of each key, new keys getting one."""
        known = self._known_slots(keys)
        if known is not None:
            return known
        codes, uniques = factorize(keys)
        if self.seed_by_key:  # a key without a stable hash refused before any new key is registered
            for k in uniques:
                if k not in self._slot_of:
                    key_bytes(k)
        if self._dev is None:
            return np.array([self._slot(k) for k in uniques], dtype=np.int64)[codes]
        self._pending = []
        try:
            slots = np.array([self._slot(k) for k in uniques], dtype=np.int64)[codes]
        finally:  # the keys registered, even if a later one failed, get their models
            try:
                self._flush()
            finally:
                del self._pending
        return slots

    def _flush(self) -> None:
        """Write the new models waiting in ``_pending`` to the GPU (their
        persistent part: the scratch part is written before it is read)."""
        if self._pending:
            persist = self._lay[L.L_PERSIST]
            new, bufs, ctrs = zip(*self._pending)
            self._pending.clear()
            self._dev.put(np.array(new, dtype=np.int64), np.stack([b[:persist] for b in bufs]), np.stack(ctrs))

    @exclusive
    def model(self, key) -> OnlineRNN:
        """A copy of ``key``'s model as a standalone (CPU) :class:`OnlineRNN`."""
        model = OnlineRNN(**self.config, seed=0)
        slot = self._slot_of[key]
        if self._dev is None:
            model._buf[: self._buf.shape[1]] = self._buf[slot]
            model._ctr[:] = self._ctr[slot]
        else:
            buf, ctr = self._dev.take([slot])
            model._buf[:], model._ctr[:] = buf[0], ctr[0]
        return model

    @exclusive
    def evict(self, keys) -> None:
        """Forget these keys' models (all known: ``KeyError`` otherwise, and
        none is forgotten); their slots are reused."""
        for key in keys_to_evict(self._slot_of, keys):
            slot = self._slot_of.pop(key)
            self._free.append(slot)
        self._int_lookup = None

    # -------------------------------------------------------------- batches

    def _rows(self, keys, X, size, name) -> tuple[list, np.ndarray]:
        return batch_rows(keys, X, size, name, self._dtype)

    @staticmethod
    def _groups(slots: np.ndarray, descending: bool = False):
        """``(groups, starts, order)``: the distinct slots in increasing order
        (decreasing if ``descending``), the rows of ``groups[g]`` being
        ``order[starts[g]:starts[g + 1]]`` in arrival order."""
        slots = np.asarray(slots).astype(np.int64, copy=False)
        groups, starts, order, dense = dense_groups(slots, bool(descending))  # a counting sort
        if dense:
            return groups, starts, order
        order = np.argsort(-slots if descending else slots, kind="stable")  # slots few and far apart
        ordered = slots[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        return ordered[starts].astype(np.int64), np.r_[starts, len(slots)].astype(np.int64), order.astype(np.int64)

    def _direction(self) -> bool:
        """Whether this batch walks the slots in decreasing order: each CPU
        batch the other way round from the one before, so that it starts on
        the models the last one touched last, still in the caches (a fleet
        tick's ``predict_many`` after its ``learn_many``: the models' weights
        are read from the L2 and L3 caches rather than memory for as many
        models as the caches hold). Results do not depend on it: each model
        runs whole on one thread."""
        self._descending = not self._descending
        return self._descending

    @exclusive
    def learn_many(self, keys, X, Y) -> np.ndarray:
        """Learn each row ``(keys[i], X[i], Y[i])`` on its key's model; returns
        the predictions made before each update, shape ``(n, output_size)``."""
        keys, X = self._rows(keys, X, self._input_size, "X")
        _, Y = self._rows(keys, Y, self._output_size, "Y")
        slots = self._slots(keys)
        out = np.empty((len(keys), self._output_size), dtype=self._dtype)
        if len(keys):
            groups, starts, order = self._groups(slots, self._dev is None and self._direction())
            if self._dev is None:
                ordered = np.empty_like(out)
                run_chunks(K.bank_learn_chunks, (self._lay, self._ctr, self._store, self._buf.size, groups, starts,
                                                 order, X, Y, ordered), len(groups))
                scatter_rows(out, order, ordered)
            else:
                d = self._dev
                _cuda_kernels().bank_learn(d.lay, d.ctr, d.buf, groups, starts, order, X, Y, out)
        self._end_batch(slots)
        return out

    def _end_batch(self, slots: np.ndarray) -> None:
        """Mark these slots seen in this batch; evict the idle keys."""
        self._last_seen[slots] = self._batch
        self._batch += 1
        if self.max_idle is not None:
            idle = [k for k, s in self._slot_of.items() if self._batch - 1 - self._last_seen[s] >= self.max_idle]
            self.evict(idle)

    def _models(self):
        """The models' arguments to the kernels: the store and where its
        scratch starts (CPU), or the whole buffers in GPU memory."""
        return (self._store, self._buf.size) if self._dev is None else self._dev.buf

    def _by_bank(self, keys):
        """Split ``keys`` into rows of known keys (their slots) and rows of
        unseen keys, for which a small bank of the models they would get is
        made (nothing is registered). Returns ``(rows, slots, models)`` parts
        (``models`` as :meth:`_models` gives them; ``rows`` None: all of them,
        in order)."""
        known = self._known_slots(keys)
        if known is not None:
            return [(None, known, self._models())] if len(known) else []
        codes, uniques = factorize(keys)
        slot_of = np.array([self._slot_of.get(k, -1) for k in uniques], dtype=np.int64)
        slots = slot_of[codes]
        known = slots >= 0
        parts = []
        if known.any():
            parts.append((np.flatnonzero(known), slots[known], self._models()))
        if not known.all():
            unseen = [k for k, s in zip(uniques, slot_of) if s < 0]
            rank = np.cumsum(slot_of < 0) - 1  # each unseen key's place among the unseen
            n_unseen = len(unseen)
            if self._dev is None:
                store, buf = bank_store(self._lay, n_unseen, self._dtype)
                models = (store, buf.size)
            else:
                buf = aligned_zeros((n_unseen, self._lay[L.L_BUF]), self._dtype)
            for j, key in enumerate(unseen):
                buf[j] = OnlineRNN(**self.config, seed=self._new_seed(key, j))._buf[: buf.shape[1]]
            if self._dev is not None:
                models = _cuda_kernels().host_to_device(buf)
            parts.append((np.flatnonzero(~known), rank[codes[~known]].astype(np.int64), models))
        return parts

    @exclusive
    def predict_many(self, keys, X) -> np.ndarray:
        """Predictions for the rows, the rows of a key run in order from its
        carried state; changes nothing. An unseen key is predicted by the
        model it would get."""
        keys, X = self._rows(keys, X, self._input_size, "X")
        out = np.empty((len(keys), self._output_size), dtype=self._dtype)
        if self._dev is None:
            descending = self._direction()
            for rows, slots, (store, scratch_at) in self._by_bank(keys):
                groups, starts, order = self._groups(slots, descending)
                rows = _take(rows, order)
                ordered = np.empty((len(rows), self._output_size), dtype=self._dtype)
                run_chunks(K.bank_predict_chunks, (self._lay, store, scratch_at, groups, starts, rows, X, ordered),
                           len(groups))
                scatter_rows(out, rows, ordered)
            return out
        KC = _cuda_kernels()
        cuda = KC.cuda_module()
        X_d, out_d = cuda.to_device(X), cuda.device_array(out.shape, dtype=out.dtype)
        for rows, slots, buf in self._by_bank(keys):
            groups, starts, order = self._groups(slots)
            KC.bank_predict(self._dev.lay, buf, groups, starts, _take(rows, order), X_d, out_d)
        return out_d.copy_to_host() if len(keys) else out

    @exclusive
    def forecast_many(self, keys, horizon: int, X0) -> np.ndarray:
        """Forecast ``horizon`` steps for each key from its carried state,
        feeding each step's outputs back as the next inputs (the models must
        have as many outputs as inputs), starting from the inputs ``X0``.
        Returns shape ``(n, horizon, output_size)``; changes nothing."""
        if self._input_size != self._output_size:
            raise ValueError("forecast_many needs models with as many outputs as inputs")
        check_integer("horizon", horizon)
        keys, X0 = self._rows(keys, X0, self._input_size, "X0")
        out = np.empty((len(keys), horizon, self._output_size), dtype=self._dtype)
        descending = self._dev is None and self._direction()
        for rows, slots, models in self._by_bank(keys):
            groups, starts, order = self._groups(slots, descending)  # a model's rows share its scratch: in turn
            rows = _take(rows, order)
            if self._dev is None:
                ordered = np.empty((len(rows), horizon, self._output_size), dtype=self._dtype)
                run_chunks(K.bank_forecast_chunks, (self._lay, *models, groups, starts, rows, X0, ordered), len(groups))
                out[rows] = ordered
            else:
                _cuda_kernels().bank_forecast(self._dev.lay, models, groups, starts, rows, X0, out)
        return out

    # ------------------------------------------------------------ snapshots

    def __copy__(self) -> ModelBank:
        """An independent copy (a shallow one would share the counters and
        keys, and not the models they index)."""
        return copy.deepcopy(self)

    def __getstate__(self) -> dict:
        # only the slots in use, without the scratch end of the buffers (not
        # model state: predictions write there), so pickles of equal banks
        # are equal and unused capacity costs nothing; the capacity is kept
        state = without_guard(dict(self.__dict__))  # (a lock: not state)
        state.pop("_store", None)  # rebuilt around _buf on load
        state.pop("_int_lookup", None)  # (made again from _slot_of when needed)
        state.pop("_descending", None)  # (how the next batch walks the slots: not state)
        n, persist = len(self._key_of), self._lay[L.L_PERSIST]
        state["_capacity_rows"] = self._capacity
        state["_last_seen"] = self._last_seen[:n].copy()
        if self._dev is None:
            state["_buf"], state["_ctr"] = self._buf[:n, :persist].copy(), self._ctr[:n].copy()
        else:  # pickled as a CPU bank's arrays, moved to the GPU again on load
            state["_buf"], state["_ctr"] = self._dev.take(np.arange(n), persist)
            state["_dev"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        persistent, ctr, seen = state["_buf"], state["_ctr"], state["_last_seen"]
        n = persistent.shape[0]
        capacity = state.pop("_capacity_rows", n)  # (states saved before it held every row)
        state["_store"], state["_buf"] = bank_store(state["_lay"], capacity, persistent.dtype)
        cols = min(persistent.shape[1], state["_buf"].shape[1])
        state["_buf"][:n, :cols] = persistent[:, :cols]
        state["_ctr"] = np.zeros((capacity, ctr.shape[1]), dtype=ctr.dtype)
        state["_ctr"][:n] = ctr
        state["_last_seen"] = np.zeros(capacity, dtype=seen.dtype)
        state["_last_seen"][: len(seen)] = seen
        state.setdefault("device", "cpu")
        state.setdefault("_dev", None)
        self.__dict__.update(state)
        if self.device == "cuda":
            self._to_device()

    @exclusive
    def snapshot(self, copy: bool = True) -> dict:
        """The bank's state: numpy arrays (``buf``, ``ctr``, ``last_seen``, one
        row per slot) and ``meta`` (configuration, keys by slot, counters,
        format version). Restore with :meth:`restore`. ``copy=False``: the
        CPU bank's ``buf`` and ``ctr`` are views of its own buffers, to be
        read before its next call (no copy of every model)."""
        n = len(self._key_of)
        persist = self._lay[L.L_PERSIST]
        if self._dev is None:
            buf, ctr = self._buf[:n, :persist], self._ctr[:n]
            if copy:
                buf, ctr = buf.copy(), ctr.copy()
        else:
            buf, ctr = self._dev.take(np.arange(n), persist)
        return {"buf": buf, "ctr": ctr,
                **self._key_state(SNAPSHOT_VERSION, device=self.device, seed_by_key=self.seed_by_key)}

    def _key_state(self, version: int, **meta) -> dict:
        """What every bank's snapshot holds besides its buffers: idle counts
        and ``meta`` (configuration, keys by slot, counters, ``meta``)."""
        return {
            "last_seen": self._last_seen[: len(self._key_of)].copy(),
            "meta": {
                "format_version": version,
                "config": dict(self.config),
                "seed": self.seed,
                "max_idle": self.max_idle,
                **meta,
                "keys": list(self._key_of),
                "order": list(self._slot_of.values()),  # the live keys' slots in the order of ``keys``
                "free": list(self._free),
                "n_created": self._n_created,
                "batch": self._batch,
            },
        }

    def _restore_keys(self, snapshot: dict) -> None:
        """Keys, free slots, idle counts and counters from a snapshot."""
        meta = snapshot["meta"]
        keys = meta["keys"]
        self._last_seen[: len(keys)] = snapshot["last_seen"]
        self._key_of = list(keys)
        self._free = list(meta["free"])
        free = set(self._free)
        if len(free) != len(self._free) or not free <= set(range(len(keys))):
            raise ValueError("snapshot free slots must be distinct slots of its keys")
        order = meta.get("order")  # absent from snapshots taken before it was kept: slot order
        if order is None:
            order = [i for i in range(len(keys)) if i not in free]
        if sorted(order) != [i for i in range(len(keys)) if i not in free]:
            raise ValueError("snapshot order must list every slot that is not free, once")
        self._slot_of = {keys[i]: i for i in order}
        self._int_lookup = None
        if len(self._slot_of) != len(order):
            raise ValueError("snapshot keys of the slots in use must be distinct")
        self._n_created = meta["n_created"]
        self._batch = meta["batch"]

    @classmethod
    def restore(cls, snapshot: dict, device: str | None = None) -> ModelBank:
        """A bank from :meth:`snapshot`; it continues exactly as the original.

        ``device`` (``"cpu"`` or ``"cuda"``) defaults to the snapshotted
        bank's: a snapshot taken on one device restores on either.
        """
        meta = snapshot["meta"]
        if meta.get("format_version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot format_version {meta.get('format_version')!r}")
        if meta.get("kind", "independent") != "independent":
            raise ValueError(f"not a ModelBank snapshot: one of a {meta['kind']!r} bank")
        check_snapshot_parts(snapshot)
        keys = meta["keys"]
        device = meta.get("device", "cpu") if device is None else device
        bank = cls(seed=meta["seed"], max_idle=meta["max_idle"], capacity=max(len(keys), 1),
                   seed_by_key=meta.get("seed_by_key", False), **meta["config"])
        n, persist = len(keys), bank._lay[L.L_PERSIST]
        if snapshot["buf"].shape != (n, persist) or snapshot["ctr"].shape != (n, L.N_CTR):
            raise ValueError("snapshot arrays do not match its configuration and keys")
        check_snapshot_arrays(bank, snapshot)
        bank._buf[:n, :persist] = snapshot["buf"]
        bank._ctr[:n] = snapshot["ctr"]
        if device != "cpu":
            if device not in DEVICES:
                raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")
            bank.device = device
            bank._to_device()
        bank._restore_keys(snapshot)
        return bank
