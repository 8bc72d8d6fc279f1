"""What the recurrent River estimators share: their network arguments, the
feature space and its scaling, the network's input columns (features and
revealed targets, in order of first appearance), the entities of ``key``,
and the splitting of mini-batches where features, classes or keys first
appear or change (so ``learn_many`` equals ``learn_one`` in a loop, bit for
bit)."""

from __future__ import annotations

import functools
import struct

import numba
import numpy as np
import pandas as pd

from .checks import check_integer
from .entities import EntityStates, check_key
from .features import CLIP, GUARD_WARMUP, FeatureSpace, RunningScaler, first_appearances
from .guard import Guarded, exclusive, without_guard
from .keys import holds_nan, is_missing
from .kernels import estimator_rows as R
from .kernels.pyobjects import OBJECTS, layout_holds
from .learner import OnlineRNN
from .smoothing import SHIFT_AFTER

#: The types of feature values a :class:`RowPath` packs as they are (a
#: value of any other type, None included, takes the row-by-row path).
PACKED_TYPES = frozenset({float, int, bool, np.float64, np.float32, np.int64})


def exclusive_as(name: str):
    """:func:`~streamrnn.guard.exclusive` for the guarded half of a public
    method: its :class:`~streamrnn.guard.ConcurrentUseError` names the
    public method ``name``."""
    def wrap(method):
        method.__name__ = name
        return exclusive(method)

    return wrap


def check_regression_loss(loss) -> None:
    """The losses of a real-valued target (``"cross_entropy"``, a network
    loss too, is for classes)."""
    if loss not in ("squared", "huber"):
        raise ValueError(f"loss must be 'squared' or 'huber', got {loss!r}")


def build_network(owner, cell: str, loss: str, input_size: int, output_size: int, zero_head: bool = False) -> OnlineRNN:
    """The :class:`OnlineRNN` of an estimator, from the network arguments it
    stores under their own names. With ``zero_head`` the linear head starts
    at zero, so an untrained network outputs zeros (a residual learner then
    starts from its base forecast)."""
    net = OnlineRNN(
        cell=cell,
        input_size=input_size,
        hidden_size=owner.hidden_size,
        num_layers=owner.num_layers,
        output_size=output_size,
        k1=owner.k1,
        k2=owner.k2,
        optimizer=owner.optimizer,
        lr=owner.lr,
        clip_norm=owner.clip_norm,
        loss=loss,
        dtype=owner.dtype,
        device=owner.device,
        seed=owner.seed,
    )
    if zero_head:
        start = net.state_dict()
        start["head.weight"][:] = 0.0
        start["head.bias"][:] = 0.0
        net.load_state_dict(start)
    return net


class RowPath:
    """The per-row buffers of an estimator's one-call path
    (:mod:`streamrnn.kernels.estimator_rows`): the float64 row the kernels
    read (its constants set once, what the estimator's state gives its
    predictions kept up to date by the kernels and the estimator, a dict's
    values and the target packed into it each row by one ``struct`` call),
    the plan of each key order met (the scaler's and the network's column of
    each feature, the revealed targets', the keys, the options, the network's
    layout; at most :attr:`MAX_PLANS`) and the network's scratch. Derived
    from the estimator, never saved; the estimator drops it whenever its
    columns or classes change.

    Predictions read the dict in the kernel (:attr:`read`): the kernel that
    reads it (``reader``) bound to the row, the last plan packed (whose
    keys it holds, so that their addresses stay theirs), the statistics and
    network buffer it was bound with (:attr:`stats`, :attr:`buf`: a caller
    checks that they are still the estimator's) and the scratch, called by
    its compiled entry point with the dict's address; None until a row is
    packed, or where this interpreter's objects are not as
    :mod:`~streamrnn.kernels.pyobjects` reads them.

    Parameters
    ----------
    owner
        The estimator (a :class:`RecurrentEstimator`).
    options
        The plan's options ``(mode, scaled, revealed, classes)``.
    y_scaler
        The target's scaler (regressors), or None.
    revealed
        The values the stream revealed that the row holds: a regressor's
        revealed-target inputs, a classifier's last classes learned.
    reader
        The kernel that reads a dict (its arguments the row, the plan, the
        statistics, the network's buffer, the scratch, ``reader_args`` and
        the dict's address), or None.
    reader_args
        The reader's arguments after the scratch (:attr:`reader_args`,
        which the estimator may set before the first row).
    exp
        The addresses of NumPy's exponential loop and of its data for the
        plans (:func:`~streamrnn.kernels.numpy_exp.exp_loop`; 0: none).
    """

    #: Plans kept (a stream whose rows miss features in ever new ways has
    #: one per pattern): beyond, they start again.
    MAX_PLANS = 1024

    def __init__(self, owner, options: tuple, y_scaler=None, revealed: int = 0, reader=None, reader_args: tuple = (),
                 exp: tuple = (0, 0)):
        self._features, self._cols_x, self._cols_y = owner._features, owner._cols_x, owner._cols_y
        self._lay = [int(v) for v in owner._net._lay]
        self._options = options
        self._exp = exp
        self._values_at = R.R_REVEALED + revealed
        self.at = 8 * self._values_at  # (the values' byte offset in the row)
        self.plans: dict = {}
        x = owner._x_scaler
        self._head = np.zeros(self._values_at)
        self._head[[R.R_CLIP, R.R_GLITCH, R.R_GLITCH_OUT, R.R_WARMUP, R.R_SHIFT_AFTER]] = (
            CLIP, x.glitch, x.glitch_out, GUARD_WARMUP, SHIFT_AFTER)
        if y_scaler is not None:
            from .target_change import ERROR_SPAN, MARGIN

            self._head[[R.R_Y_GLITCH, R.R_Y_GLITCH_OUT, R.R_SPAN, R.R_MARGIN]] = (
                y_scaler.glitch, y_scaler.glitch_out, ERROR_SPAN, MARGIN)
        self._reader = reader if reader is not None and reads_dicts() else None
        self.reader_args = reader_args
        self.read = self.stats = self.buf = self._bound = None
        self._widen(self._values_at + 1)
        net = owner._net
        self.scratch = np.zeros(net.input_size + 2 * net.output_size, dtype=net._np_dtype)
        self.shifted = np.zeros(options[3])  # (classifiers: the classes' logits less the largest)
        self.plan = self._plan(())[1]  # (the plan of no features)

    def _widen(self, width: int) -> None:
        """A row of ``width`` values at least (the packer writes to its bytes)."""
        self.bytes = bytearray(8 * width)
        self.row = np.frombuffer(self.bytes, dtype=np.float64)
        self.row[: len(self._head)] = self._head
        self.read = self._bound = None  # (bound to the row before)

    def _plan(self, keys: tuple):
        """The packer, plan and keys of the feature names ``keys`` (in a
        dict's order), or None where a name is NaN-like (the row-by-row path
        refuses it)."""
        if any(holds_nan(k) for k in keys):
            return None
        index, cols_x = self._features.index, self._cols_x
        scaler = [index.get(k, -1) for k in keys]
        network = [cols_x[j] if j >= 0 else -1 for j in scaler]
        n, m = len(keys), len(self._cols_y)
        keys_at = R.P_COLUMNS + 2 * n + m
        plan = np.array([n, *self._options, m, self._values_at, keys_at + n, keys_at, *self._exp, *OBJECTS, 0, 0, 0,
                         *scaler, *network, *self._cols_y, *map(id, keys), *self._lay], dtype=np.int64)
        width = self._values_at + n + 1
        if len(self.row) < width:
            saved = self.row[: self._values_at].copy()  # (what the state gives too)
            self._widen(width)
            self.row[: self._values_at] = saved
        packer = struct.Struct(f"@{n + 1}d")
        if len(self.plans) >= self.MAX_PLANS:
            self.plans.clear()
        self.plans[keys] = found = (packer, plan, keys)
        return found

    def pack(self, x: dict, target) -> np.ndarray | None:
        """Pack the values of ``x`` and ``target`` into the row; the plan
        of ``x``, or None when ``x`` is not for this path (a
        value of another type than :data:`PACKED_TYPES`, an int beyond the
        floats, a NaN-like name)."""
        found = self.packed(x, target)
        return None if found is None else found[1]

    def packed(self, x: dict, target) -> tuple | None:
        """:meth:`pack`, giving the packer, plan and keys of ``x``."""
        keys = tuple(x)
        found = self.plans.get(keys)
        if found is None:
            found = self._plan(keys)
            if found is None:
                return None
        values = x.values()
        if not PACKED_TYPES.issuperset(map(type, values)):
            return None
        try:
            found[0].pack_into(self.bytes, self.at, *values, target)
        except (OverflowError, struct.error):
            return None
        return found

    def bind(self, found: tuple, stats: np.ndarray, buf: np.ndarray) -> None:
        """Bind :attr:`read` to the plan of ``found`` (from :meth:`packed`),
        the statistics ``stats`` and the network's buffer ``buf`` (where
        any differs from those it is bound to)."""
        if self._reader is None or (found is self._bound and stats is self.stats and buf is self.buf):
            return
        args = (self.row, found[1], stats, buf, self.scratch, *self.reader_args)
        entry = self._reader.compile(tuple(numba.typeof(a) for a in (*args, id(self))))
        self.read = functools.partial(entry, *args)
        self._bound, self.stats, self.buf = found, stats, buf


@functools.cache
def reads_dicts() -> bool:
    """Whether kernels read this interpreter's dicts of floats
    (:func:`~streamrnn.kernels.pyobjects.layout_holds`, checked once)."""
    return layout_holds()


class RecurrentEstimator(Guarded):
    """Mixin for estimators built on one :class:`~streamrnn.OnlineRNN`
    whose hidden state runs along the stream of ``x``.

    Subclasses set ``_cell`` and ``_loss`` and implement the target side,
    their public methods wrapped by :func:`~streamrnn.guard.exclusive` (not
    thread-safe: a call from a second thread while one is inside raises
    :class:`~streamrnn.guard.ConcurrentUseError`), and
    what a fresh model carries of the revealed targets (``_fresh_carried``)
    and their inputs (``_revealed_one``, ``_revealed``). The network's input
    columns are taken in order of first appearance by features
    (``_cols_x``) and revealed targets (``_cols_y``): the network only grows.
    With ``key``, the entities' states are swapped in and out of the one
    network (:class:`~streamrnn.entities.EntityStates`).

    Without ``key``, a row of plain numbers (floats, ints, bools, NumPy
    floats) takes one kernel call (:class:`RowPath`): its features'
    scaling, the revealed targets, the network's step and a regressor's
    forecast fused, bit-identical to the row-by-row path, which takes
    every other row (a None, a date, a new feature or class, bad input,
    entities) and the mini-batches. The public per-row methods hold the
    guard's token themselves on that path. A prediction reads the dict in
    the kernel itself where its keys are those of the last row packed, in
    the same order, and its values numbers (and None) the kernel reads
    (:mod:`~streamrnn.kernels.pyobjects`); a classifier's softmax is taken
    there too, by NumPy's own exponential
    (:mod:`~streamrnn.kernels.numpy_exp`).
    """

    _cell = "lstm"
    _loss = "squared"
    #: Take a row in one kernel call where it can (:class:`RowPath`); off
    #: (set before the first row), the row-by-row path takes every row (the
    #: same results, bit for bit).
    _one_call = True
    _path = None  # the RowPath, once made
    # states saved before these options: no revealed targets, no key, and
    # the network's columns those of the features (set by __setstate__)
    revealed_targets = 0
    key = None
    max_idle = None
    _entities = None

    def __init__(
        self,
        hidden_size: int = 32,
        num_layers: int = 1,
        k1: int = 1,
        k2: int = 16,
        optimizer: str = "adam",
        lr: float = 1e-3,
        clip_norm: float | None = 1.0,
        dtype: str = "float32",
        device: str = "cpu",
        seed: int | None = None,
        revealed_targets: int = 3,
        key=None,
        max_idle: int | None = None,
    ):
        if isinstance(revealed_targets, bool | np.bool_):
            raise ValueError(f"revealed_targets must be a number of targets (0: none), got {revealed_targets!r}")
        check_integer("revealed_targets", revealed_targets, low=0)
        if key is not None:
            check_key(key)
        check_integer("max_idle", max_idle, none_ok=True)
        if max_idle is not None and key is None:
            raise ValueError("max_idle forgets the entities of a key: it needs a key")
        self.revealed_targets = int(revealed_targets)
        self.key = key
        self.max_idle = max_idle
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.lr = lr
        self.clip_norm = clip_norm
        self.dtype = dtype
        self.device = device
        self.seed = seed
        self._features = FeatureSpace()
        self._x_scaler = RunningScaler(guard=True)  # a glitch in a feature reads as missing
        self._net = self._network(output_size=self._outputs())
        self._cols_x: list = []  # the network's input column of each feature
        self._cols_y: list = []  # the network's input columns of the revealed targets
        self._n_cols = 0  # input columns taken (the network has at least one)
        self._carried = self._fresh_carried()  # what the stream revealed (of the active key)
        self._entities = None if key is None else EntityStates(max_idle)

    def __getstate__(self) -> dict:
        state = without_guard(dict(self.__dict__))  # (the guard: not state)
        state.pop("_columns_cache", None)  # derived
        state.pop("_path", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "_cols_x" not in state:  # saved before revealed targets: the features' columns, in order
            n = len(self._features)
            self._cols_x, self._cols_y, self._n_cols = list(range(n)), [], n
            self._carried = self._fresh_carried()

    def _outputs(self) -> int:
        return 1

    def _fresh_carried(self) -> list:
        """What a fresh model (or entity) carries: nothing revealed yet."""
        return []

    def _revealed_one(self):
        """The revealed-target inputs of one prediction (None without)."""
        return None

    def _network(self, output_size: int) -> OnlineRNN:
        return build_network(self, self._cell, self._loss, input_size=1, output_size=output_size)

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k2": 4, "seed": 1}
        yield {"hidden_size": 3, "num_layers": 2, "k1": 2, "k2": 3}  # seed None: River checks seeding

    # ------------------------------------------------------------ features

    def _new_columns(self, n: int, output_size: int | None = None) -> list:
        """``n`` new input columns (and the network grown to them and to
        ``output_size`` outputs); the entities' windows restart with the
        network's."""
        cols = list(range(self._n_cols, self._n_cols + n))
        self.__dict__.pop("_path", None)  # (its columns and scratch change)
        before = (self._net.input_size, self._net.output_size)
        # the network first (all or nothing: a failed allocation changes nothing)
        self._net.resize(input_size=max(self._n_cols + n, self._net.input_size), output_size=output_size)
        self._n_cols += n
        if self._entities is not None and (self._net.input_size, self._net.output_size) != before:
            self._entities.resized()
        return cols

    def _row_path(self) -> RowPath | None:
        """The estimator's :class:`RowPath` (made again after its columns
        change); None where rows take the row-by-row path (entities)."""
        path = self._path
        if path is None and self._entities is None and self._one_call:
            path = self._path = self._new_row_path()
        return path

    def _new_row_path(self) -> RowPath:
        raise NotImplementedError

    def _register(self, names) -> None:
        new = self._features.unseen(names)  # (NaN-like names refused here)
        if new:
            # all or nothing: the network first (the large allocation), the features last
            cols = self._new_columns(len(new))
            self._x_scaler.grow(len(self._features) + len(new))
            self._features.register(new)
            self._cols_x.extend(cols)

    def _columns(self) -> tuple:
        """The columns of the features and of the revealed targets, each a
        slice where contiguous (cached until the columns change)."""
        key = (self._net.input_size, len(self._cols_x), len(self._cols_y))
        cache = self.__dict__.get("_columns_cache")
        if cache is None or cache[0] != key:
            def index(cols):
                if not cols:
                    return slice(0, 0)
                if cols == list(range(cols[0], cols[0] + len(cols))):
                    return slice(cols[0], cols[0] + len(cols))
                return np.array(cols, dtype=np.intp)
            identity = not self._cols_y and self._cols_x == list(range(key[0]))
            cache = self._columns_cache = (key, index(self._cols_x), index(self._cols_y), identity)
        return cache[1:]

    def _compose(self, Z: np.ndarray, R: np.ndarray | None) -> np.ndarray:
        """The network's inputs: the standardised features ``Z`` and the
        revealed targets ``R`` (rows of ``len(self._cols_y)`` values, or
        None) in their columns; a column nothing fills yet (a fresh
        network's one input) reads 0."""
        cx, cy, identity = self._columns()
        if identity:
            return Z  # the features alone, in order: as before revealed targets
        U = np.zeros((Z.shape[0], self._net.input_size))
        U[:, cx] = Z
        if R is not None:
            U[:, cy] = R
        return U

    def _compose_one(self, z: np.ndarray, r) -> np.ndarray:
        """:meth:`_compose` of one row (``r`` a value or a vector, or None),
        in the network's dtype."""
        cx, cy, identity = self._columns()
        u = np.zeros(self._net.input_size, dtype=self._net._np_dtype)
        u[cx] = z
        if r is not None:
            u[cy] = r
        return u

    def _revealed(self, n: int) -> np.ndarray | None:
        """The revealed-target inputs of ``n`` predictions from what is
        carried now (None without revealed targets)."""
        return None

    def _entity_of(self, x: dict):
        """The entity of ``x``: its value of ``key``; a row without one (absent,
        None or NaN) is a row of the entity None."""
        k = x.get(self.key)
        if k is None or is_missing(k):
            return None
        check_key(k)
        return k

    def _without_key(self, x: dict) -> dict:
        return {name: v for name, v in x.items() if name != self.key} if self.key in x else x

    def _check_x(self, x) -> None:
        if not isinstance(x, dict):
            raise ValueError(f"x must be a dict of features, got {type(x).__name__}")

    def _one_features(self, x: dict, learn: bool) -> np.ndarray:
        """The standardised features of ``x`` (registered first if ``learn``)."""
        if learn:
            self._register(self._features.present(x))
        return self._x_scaler.transform(self._features.row(x)[None, :], update=learn)

    def _one_input(self, x: dict, learn: bool) -> np.ndarray:
        """The network's inputs for ``x`` (of the active entity)."""
        return self._compose_one(self._one_features(x, learn)[0], self._revealed_one())

    def _predict_rows(self, X: pd.DataFrame, finish) -> np.ndarray:
        """``finish(outputs)`` (an array of one row per row of ``X``) of the
        network's one-step outputs for the rows of ``X`` from their
        entities' carried states, each row independently; changes nothing."""
        keys = None
        if self._entities is not None and self.key in X.columns:
            keys = [self._entity_of({self.key: v}) for v in X[self.key]]
            X = X.drop(columns=[self.key])
        M, columns = self._features.frame(X)
        Z = self._x_scaler.transform(self._features.arrange(M, columns), False)
        if self._entities is None or len(Z) == 0:
            return finish(self._net.predict_each(self._compose(Z, self._revealed(len(Z)))))
        keys = [None] * len(Z) if keys is None else keys
        groups: dict = {}
        for i, k in enumerate(keys):
            groups.setdefault(k, []).append(i)
        out = None
        for k, rows in groups.items():
            with self._entities.peeking(self, k):
                part = finish(self._net.predict_each(self._compose(Z[rows], self._revealed(len(rows)))))
            if out is None:
                out = np.empty((len(Z),) + part.shape[1:], dtype=part.dtype)
            out[rows] = part
        return out

    def _register_targets(self, values) -> None:
        """Classifiers give new classes an output here."""

    def _learn_batch(self, X: pd.DataFrame, targets: np.ndarray, target_events: dict, learn_rows) -> None:
        """Learn a mini-batch in segments cut where features or (listed in
        ``target_events``, ``{row: [values]}``) classes first appear and
        where the entity changes, each registered where ``learn_one`` would
        register it; ``learn_rows(Z, targets)`` learns one segment's
        standardised features (of the active entity)."""
        keys = None
        if self._entities is not None:
            if self.key in X.columns:
                keys = [self._entity_of({self.key: v}) for v in X[self.key]]
                X = X.drop(columns=[self.key])
            else:
                keys = [None] * len(X)
        M, columns = self._features.frame(X)
        if len(targets) != len(M):
            raise ValueError(f"X and y must have the same length, got {len(M)} and {len(targets)}")
        feature_events = first_appearances(M, columns, self._features.index)
        changes = [] if keys is None else [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]
        cuts = sorted({0, *feature_events, *target_events, *changes}) + [len(M)]
        for start, stop in zip(cuts[:-1], cuts[1:]):
            if keys is not None and start < stop:
                self._entities.activate(self, keys[start])
            if start in feature_events:
                self._register(feature_events[start])
            if start in target_events:
                self._register_targets(target_events[start])
            if start < stop:
                Z = self._x_scaler.transform(self._features.arrange(M[start:stop], columns), update=True)
                learn_rows(Z, targets[start:stop])
                if keys is not None:
                    self._entities.learned(keys[start], stop - start)


def as_targets(y, n: int, name: str = "y") -> np.ndarray:
    """A Series or array of ``n`` targets as an object array, in order."""
    values = y.to_numpy() if isinstance(y, pd.Series) else np.asarray(y)
    if values.ndim != 1 or len(values) != n:
        raise ValueError(f"{name} must be one-dimensional with {n} values, got shape {values.shape}")
    return values
