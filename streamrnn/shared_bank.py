"""``SharedWeightsBank``: one online recurrent model learning from many series
at once, each series keeping its own hidden state and TBPTT window."""

from __future__ import annotations

import numpy as np

from .bank import ModelBank, check_bank_arguments, check_snapshot_arrays, check_snapshot_parts
from .keys import factorize, known_slots
from .checks import check_integer
from .guard import exclusive, without_guard
from .kernels import layout as L
from .kernels import recurrent as RK
from .kernels import shared_weights as K
from .learner import OnlineRNN
from .network import aligned_zeros

SNAPSHOT_VERSION = 1
_ALIGN = 16  # elements: series regions start on 64-byte boundaries in float32


class SharedWeightsBank(ModelBank):
    """One :class:`~streamrnn.OnlineRNN` (one set of weights and optimizer
    state) trained on many series, addressed by any hashable key, each
    series with its own carried state and TBPTT window.

    Every row ``(key, x, y)`` is a step of its key's series: the network
    runs from that series' state, the step enters that series' window, and
    every ``k1`` steps of a series the shared weights take a TBPTT update
    over its window. Rows are processed in arrival order, so a bank fed the
    rows of one series equals ``OnlineRNN(**config, seed=seed)`` bit for
    bit, and results never depend on the number of threads. Suits many
    short or similar series (a fleet of sensors of one kind), where one
    model per key would see too little data.

    Parameters
    ----------
    seed
        Seed of the shared weights.
    max_idle
        If set, keys not seen in this many batches are evicted after each
        ``learn_many`` (their state and window are forgotten).
    capacity
        Series allocated at first (doubled as needed).
    **config
        :class:`~streamrnn.OnlineRNN` arguments.

    Notes
    -----
    An update that would write a non-finite shared weight is rolled back
    and counted in ``bank.model(key).n_overflows`` of the series whose
    window it was. Not thread-safe: a call from a second thread while one is
    inside raises :class:`~streamrnn.guard.ConcurrentUseError`.

    Examples
    --------
    >>> import numpy as np
    >>> from streamrnn import SharedWeightsBank
    >>> bank = SharedWeightsBank(cell="gru", hidden_size=8, k1=2, k2=4, seed=0)
    >>> keys = ["pump-1", "pump-2", "pump-1", "pump-2"]
    >>> X = np.array([[0.1], [0.5], [0.2], [0.4]]); Y = np.array([[0.2], [0.4], [0.3], [0.3]])
    >>> out = bank.learn_many(keys, X, Y)
    >>> len(bank), bank.n_updates  # each series completed one window of k1 = 2 steps
    (2, 2)
    """

    _steps_gone = 0  # for states saved before it was kept

    def __init__(self, seed: int | None = None, max_idle: int | None = None, capacity: int = 16, **config):
        check_bank_arguments(max_idle, capacity)
        self.seed = seed
        self.max_idle = max_idle
        self.config = dict(config)
        model = OnlineRNN(**config, seed=seed)
        lay = model._lay
        self._lay = lay
        self._dtype = model._np_dtype
        self._input_size = model._shape.input_size
        self._output_size = model._shape.output_size
        # a series' region: its state, then its window (adjacent in a model's layout)
        self._region = int(lay[L.L_HP] - lay[L.L_STATE])
        self._stride = -(-self._region // _ALIGN) * _ALIGN
        self._origin = -(-int(lay[L.L_BUF]) // _ALIGN) * _ALIGN
        self._buf = aligned_zeros(self._origin + capacity * self._stride, self._dtype)
        self._buf[: lay[L.L_BUF]] = model._buf
        self._buf[lay[L.L_STATE] : lay[L.L_HP]] = 0  # the zero state of unseen series (never written)
        self._lays = np.repeat(lay[None, :], capacity + 1, axis=0)  # the last row: unseen series
        self._place(np.arange(capacity))
        self._ctr = np.zeros((capacity, L.N_CTR), dtype=np.int64)
        self._updates = np.zeros(1, dtype=np.int64)
        self._steps_gone = 0  # steps of evicted series whose slots were reused
        self._start_keys(capacity)

    def _place(self, slots: np.ndarray) -> None:
        """Point the layouts of these series at their regions."""
        state = self._origin + slots * self._stride
        self._lays[slots, L.L_STATE] = state
        for slot in (L.L_WSTATE, L.L_CACHE):
            self._lays[slots, slot] = state + (self._lay[slot] - self._lay[L.L_STATE])

    @property
    def _capacity(self) -> int:
        return self._ctr.shape[0]

    def _init_slot(self, slot: int, key=None) -> None:
        """A new series in ``slot``: zero state, empty window (the steps of an
        evicted series that held it stay counted)."""
        start = self._origin + slot * self._stride
        self._buf[start : start + self._stride] = 0
        self._steps_gone += int(self._ctr[slot, L.C_STEPS])
        self._ctr[slot] = 0

    def _grow(self, capacity: int) -> None:
        old = self._capacity
        # all or nothing: every array built before any is replaced
        buf = aligned_zeros(self._origin + capacity * self._stride, self._dtype)
        buf[: self._buf.shape[0]] = self._buf
        lays = np.repeat(self._lay[None, :], capacity + 1, axis=0)
        ctr = np.concatenate([self._ctr, np.zeros((capacity - old, L.N_CTR), dtype=np.int64)])
        self._buf, self._lays, self._ctr = buf, lays, ctr
        self._place(np.arange(capacity))

    @exclusive
    def model(self, key) -> OnlineRNN:
        """A standalone :class:`OnlineRNN` with the shared weights and
        ``key``'s state and window (a copy)."""
        model = OnlineRNN(**self.config, seed=0)
        slot = self._slot_of[key]
        lay = self._lay
        model._buf[: lay[L.L_STATE]] = self._buf[: lay[L.L_STATE]]
        model._buf[lay[L.L_HP] : lay[L.L_PERSIST]] = self._buf[lay[L.L_HP] : lay[L.L_PERSIST]]
        start = self._origin + slot * self._stride
        model._buf[lay[L.L_STATE] : lay[L.L_HP]] = self._buf[start : start + self._region]
        model._ctr[:] = self._ctr[slot]
        model._ctr[L.C_UPDATES] = self._updates[0]
        return model

    @property
    def n_updates(self) -> int:
        """Updates of the shared weights."""
        return int(self._updates[0])

    @property
    def n_steps(self) -> int:
        """Rows learned from, over all series (evicted ones included)."""
        return self._steps_gone + int(self._ctr[:, L.C_STEPS].sum())

    @exclusive
    def learn_many(self, keys, X, Y) -> np.ndarray:
        """Learn the rows ``(keys[i], X[i], Y[i])`` in order; returns the
        predictions made before each update, shape ``(n, output_size)``."""
        keys, X = self._rows(keys, X, self._input_size, "X")
        _, Y = self._rows(keys, Y, self._output_size, "Y")
        slots = self._slots(keys)
        out = np.empty((len(keys), self._output_size), dtype=self._dtype)
        if len(keys):
            K.shared_learn(self._lays, self._ctr, self._updates, self._buf, slots, X, Y, out)
        self._end_batch(slots)
        return out

    def _slots_or_unseen(self, keys) -> np.ndarray:
        """The slot of each key; unseen keys get negative codes, one per
        distinct key (-1, -2, ...), which :meth:`_layouts` maps to the
        layout of a zero state."""
        known = known_slots(self._slot_of, keys)
        if known is not None:
            return known
        codes, uniques = factorize(keys)
        slots = np.array([self._slot_of.get(k, -1) for k in uniques], dtype=np.int64)
        unseen = slots < 0
        slots[unseen] = -1 - np.arange(unseen.sum())
        return slots[codes]

    def _layouts(self, slots: np.ndarray) -> np.ndarray:
        """Rows of ``_lays`` for these slots: the last one (a zero state)
        for unseen keys."""
        return np.where(slots < 0, self._capacity, slots)

    @exclusive
    def predict_many(self, keys, X) -> np.ndarray:
        """Predictions for the rows, the rows of a key run in order from its
        carried state; changes nothing. An unseen key starts from a zero
        state."""
        keys, X = self._rows(keys, X, self._input_size, "X")
        out = np.empty((len(keys), self._output_size), dtype=self._dtype)
        if len(keys):
            groups, starts, order = self._groups(self._slots_or_unseen(keys))  # each unseen key its own group
            K.shared_predict(self._lays, self._buf, self._layouts(groups), starts, order, X, out)
        return out

    @exclusive
    def forecast_many(self, keys, horizon: int, X0) -> np.ndarray:
        """Forecast ``horizon`` steps for each key from its carried state,
        feeding each step's outputs back as the next inputs, from the inputs
        ``X0``. Returns shape ``(n, horizon, output_size)``; changes nothing."""
        if self._input_size != self._output_size:
            raise ValueError("forecast_many needs models with as many outputs as inputs")
        check_integer("horizon", horizon)
        keys, X0 = self._rows(keys, X0, self._input_size, "X0")
        out = np.empty((len(keys), horizon, self._output_size), dtype=self._dtype)
        if len(keys):
            K.shared_forecast(self._lays, self._buf, self._layouts(self._slots_or_unseen(keys)), X0, out)
        return out

    # ------------------------------------------------------------ snapshots

    def _persistent(self) -> np.ndarray:
        """The buffer without the scratch part of the model (not state)."""
        persist = self._lay[L.L_PERSIST]
        return np.concatenate([self._buf[:persist], self._buf[self._origin : self._origin + len(self._key_of) * self._stride]])

    def __getstate__(self) -> dict:
        # only the slots in use (unused capacity costs nothing); the capacity is kept
        state = without_guard(dict(self.__dict__))  # (a lock: not state)
        n = len(self._key_of)
        state["_buf"] = self._persistent()
        state["_capacity_rows"] = self._capacity
        state["_ctr"] = self._ctr[:n].copy()
        state["_last_seen"] = self._last_seen[:n].copy()
        del state["_lays"]
        state.pop("_int_lookup", None)  # (a look-up cache of _slot_of: not state)
        return state

    def __setstate__(self, state: dict) -> None:
        persistent, ctr, seen = state["_buf"], state["_ctr"], state["_last_seen"]
        persist = state["_lay"][L.L_PERSIST]
        capacity = state.pop("_capacity_rows", ctr.shape[0])  # (states saved before it held every row)
        state["_buf"] = aligned_zeros(state["_origin"] + capacity * state["_stride"], persistent.dtype)
        state["_buf"][:persist] = persistent[:persist]
        state["_buf"][state["_origin"] : state["_origin"] + persistent.shape[0] - persist] = persistent[persist:]
        state["_ctr"] = np.zeros((capacity, ctr.shape[1]), dtype=ctr.dtype)
        state["_ctr"][: ctr.shape[0]] = ctr
        state["_last_seen"] = np.zeros(capacity, dtype=seen.dtype)
        state["_last_seen"][: len(seen)] = seen
        self.__dict__.update(state)
        self._lays = np.repeat(self._lay[None, :], capacity + 1, axis=0)
        self._place(np.arange(capacity))

    @exclusive
    def snapshot(self) -> dict:
        """The bank's state: numpy arrays (``buf``: the shared model then one
        region per slot; ``ctr``, ``last_seen``: one row per slot) and
        ``meta``. Restore with :meth:`restore`."""
        return {
            "buf": self._persistent(),
            "ctr": self._ctr[: len(self._key_of)].copy(),
            **self._key_state(SNAPSHOT_VERSION, kind="shared_weights", updates=int(self._updates[0]),
                              steps_gone=self._steps_gone),
        }

    @classmethod
    def restore(cls, snapshot: dict) -> SharedWeightsBank:
        """A bank from :meth:`snapshot`; it continues exactly as the original."""
        meta = snapshot["meta"]
        if meta.get("format_version") != SNAPSHOT_VERSION or meta.get("kind") != "shared_weights":
            raise ValueError(f"not a SharedWeightsBank snapshot of format_version {SNAPSHOT_VERSION}")
        check_snapshot_parts(snapshot)
        keys = meta["keys"]
        n = len(keys)
        bank = cls(seed=meta["seed"], max_idle=meta["max_idle"], capacity=max(n, 1), **meta["config"])
        persist = bank._lay[L.L_PERSIST]
        buf = snapshot["buf"]
        if buf.shape != (persist + n * bank._stride,) or snapshot["ctr"].shape != (n, L.N_CTR):
            raise ValueError("snapshot arrays do not match its configuration and keys")
        check_snapshot_arrays(bank, snapshot)
        bank._buf[:persist] = buf[:persist]
        bank._buf[bank._origin : bank._origin + n * bank._stride] = buf[persist:]
        bank._ctr[:n] = snapshot["ctr"]
        bank._updates[0] = meta["updates"]
        bank._steps_gone = meta.get("steps_gone", 0)  # absent from snapshots taken before it was kept
        bank._restore_keys(snapshot)
        return bank


class SeriesView:
    """One series of a :class:`SharedWeightsBank` seen as a single network:
    the shared weights with the series' own carried state and window. What
    the forecasters use of an :class:`~streamrnn.OnlineRNN` (``learn``,
    ``forecast``, ``input_size``), so that a forecaster per series can run
    on one network shared by all of them (:class:`~streamrnn.GlobalForecaster`).

    ``learn`` is a row of the bank (``bank.learn_many([key], ...)``: the
    shared weights learn from it); ``forecast`` runs from the series' state
    (a zero state for a series the bank has not seen) and changes nothing.
    A view holds its bank but does not save it: whoever saves the two
    relinks them (:meth:`link`). Its inputs are fixed by the bank
    (``resize`` raises).

    Examples
    --------
    >>> import numpy as np
    >>> bank = SharedWeightsBank(hidden_size=4, k1=1, k2=2, seed=0)
    >>> view = SeriesView(bank, "pump-1")
    >>> _ = view.learn(np.array([0.5]), np.array([0.2]))
    >>> len(bank), bank.n_updates
    (1, 1)
    >>> bool(np.allclose(view.forecast(np.ones((1, 1))), bank.predict_many(["pump-1"], np.ones((1, 1)))))
    True
    """

    def __init__(self, bank: SharedWeightsBank, key):
        self.key = key
        self.input_size = bank._input_size
        self.output_size = bank._output_size
        self.dtype = np.dtype(bank._dtype).name
        self.link(bank)

    def link(self, bank: SharedWeightsBank) -> None:
        """Run on ``bank`` (of this view's inputs, outputs and dtype)."""
        if (bank._input_size, bank._output_size, np.dtype(bank._dtype).name) != (
                self.input_size, self.output_size, self.dtype):
            raise ValueError("the view's inputs, outputs and dtype do not match the bank's")
        self._bank = bank
        self._np_dtype = bank._dtype
        self._slots = None  # the series' slot, as the kernel takes it (checked at each call)
        self._out = None  # the kernel's prediction of a step, not kept

    def __getstate__(self) -> dict:
        return {"key": self.key, "input_size": self.input_size, "output_size": self.output_size, "dtype": self.dtype}

    def __setstate__(self, state: dict) -> None:
        if not (set(state) == {"key", "input_size", "output_size", "dtype"}
                and all(type(state[k]) is int and state[k] >= 1 for k in ("input_size", "output_size"))
                and state["dtype"] in ("float32", "float64")):
            raise ValueError("a series view's state is malformed")
        self.__dict__.update(state)
        self._bank = None  # until linked
        self._np_dtype = np.dtype(state["dtype"])
        self._slots = None
        self._out = None

    def learn(self, x, y) -> np.ndarray:
        """Learn one step of the series; returns the prediction made before
        the update: ``bank.learn_many([key], x, y)`` without its batch
        handling (key lists, groups), which cost more than the step itself."""
        bank = self._bank
        dtype = bank._dtype
        if type(x) is np.ndarray and x.dtype == dtype and x.flags.c_contiguous:
            X = x.reshape(1, -1)  # (a view: the forecasters' own inputs)
        else:
            X = np.ascontiguousarray(np.reshape(x, (1, -1)), dtype=dtype)
        if type(y) is np.ndarray and y.dtype == dtype and y.flags.c_contiguous:
            Y = y.reshape(1, -1)  # (a view: the forecasters' own targets)
        else:
            Y = np.ascontiguousarray(np.reshape(y, (1, -1)), dtype=dtype)
        if X.shape[1] != self.input_size or Y.shape[1] != self.output_size:
            raise ValueError(f"x and y must have {self.input_size} and {self.output_size} values, "
                             f"got {X.shape[1]} and {Y.shape[1]}")
        slot = bank._slot_of.get(self.key)
        slots = self._slots
        if slot is None or slots is None or slots[0] != slot:
            slots = self._slots = bank._slots([self.key])
        out = np.empty((1, self.output_size), dtype=dtype)
        K.shared_learn(bank._lays, bank._ctr, bank._updates, bank._buf, slots, X, Y, out)
        bank._end_batch(slots)
        return out[0]

    def _learn_own(self, x: np.ndarray, target: float) -> None:
        """:meth:`learn` of one output ``target`` after the inputs ``x``, a
        C-contiguous array of the bank's dtype and width (unchecked: the
        forecasters' own), without returning the prediction."""
        bank = self._bank
        slot = bank._slot_of.get(self.key)
        slots = self._slots
        if slot is None or slots is None or slots[0] != slot:
            slots = self._slots = bank._slots([self.key])
        out = self._out
        if out is None:
            out = self._out = np.empty((1, self.output_size), dtype=bank._dtype)
        K.shared_learn(bank._lays, bank._ctr, bank._updates, bank._buf, slots, x.reshape(1, -1),
                       np.array(((target,),), bank._dtype), out)
        if bank.max_idle is None:  # (bank._end_batch(slots), for one slot)
            bank._last_seen[slots[0]] = bank._batch
            bank._batch += 1
        else:
            bank._end_batch(slots)

    def _forecast_own(self, U: np.ndarray, feedback: np.ndarray) -> np.ndarray:
        """:meth:`OnlineRNN._forecast_own`: ``U`` a fresh C-contiguous array of
        the bank's dtype and width (overwritten), ``feedback`` int64 pairs
        within it."""
        bank = self._bank
        slot = bank._slot_of.get(self.key)
        out = np.empty((U.shape[0], self.output_size), dtype=bank._dtype)
        RK.forecast_recursive(bank._lays[bank._capacity if slot is None else slot], bank._buf, U, feedback, out)
        return out

    def forecast(self, U, feedback=()) -> np.ndarray:
        """:meth:`OnlineRNN.forecast` from the series' state."""
        U = np.array(np.asarray(U, dtype=self._np_dtype).reshape(-1, self.input_size))
        pairs = np.array([tuple(p) for p in feedback], dtype=np.int64).reshape(-1, 2)
        if ((pairs[:, 0] < 0) | (pairs[:, 0] >= self.input_size) | (pairs[:, 1] < 1)).any():
            raise ValueError(f"feedback must be (column, lag) pairs with 0 <= column < {self.input_size} and lag >= 1")
        return self._forecast_own(U, pairs)

    def resize(self, **sizes) -> None:
        raise ValueError("a series of a shared network cannot change its inputs or outputs alone")
