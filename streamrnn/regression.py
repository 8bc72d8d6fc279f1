"""Recurrent regressors whose hidden state runs along the stream of ``x``."""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
from river import base

from .estimator import RecurrentEstimator, RowPath, as_targets, check_regression_loss, exclusive_as
from .checks import finite
from .features import RunningScaler
from .guard import exclusive, holding_token
from .kernels.estimator_rows import (DONE, NOT_READ, R_STATUS, TAKE_SLOW_PATH, regressor_learn, regressor_predict,
                                     regressor_predict_dict, regressor_refresh)
from .kernels.sequential import AUTO, CHANGE, LEVEL
from .target_change import TargetChange
from ._docs import document


class RecurrentRegressor(RecurrentEstimator, base.MiniBatchRegressor):
    """Base of :class:`RNNRegressor`, :class:`GRURegressor` and
    :class:`LSTMRegressor`.

    Each ``learn_one(x, y)`` advances the hidden state by one step and
    learns by TBPTT(k1, k2); ``predict_one(x)`` is one step from the carried
    state and changes nothing. Features are standardised online (missing
    ones read as their mean) and so is the target, unless ``scale_target``
    is off. A glitch, a feature or target value beyond 100 standard
    deviations from its running mean (after 20 values; Chebyshev gives such
    a value a chance below 1e-4), is not learned: the feature reads as
    missing and the target is skipped (the hidden state advances), unless it
    is the third such value in a row on one side, a level shift, which is
    learned from then on.

    Not thread-safe: a call from a second thread while one is inside raises
    :class:`~streamrnn.guard.ConcurrentUseError`. A feature named NaN (or
    anything unequal to itself) is refused with a ``ValueError``.

    **What the stream has revealed.** The targets given to ``learn_one`` and
    ``learn_many`` are, once learned, known: with ``revealed_targets`` = ``n``
    (3 by default; 0: none) the network's inputs at each step include the
    *last n revealed targets*, the targets of the last rows learned (of the
    row's entity, with ``key``) that were not glitches, the latest first,
    each standardised as it was learned. The last one is the most recent
    target learned, whatever the order of predictions: several
    ``predict_one`` calls before a ``learn_one`` all see the same one, and
    with late labels (rows predicted now, learned later) the step learned
    for a row sees the target learned just before it. ``predict_many`` is
    ``predict_one`` of each row from the same carried state; ``learn_many``
    is ``learn_one`` in a loop (row ``i`` sees row ``i - 1``'s target). A
    fresh model (or entity) has seen none: the inputs read 0, the mean. The
    target of the row being predicted is never an input: a prediction
    depends only on the rows learned before it.

    **Change or level** (``model_change``). The last revealed target is also
    the base of a forecast of the change: with ``"change"`` the network
    learns the target's change over it (on the scale of the running mean
    absolute change, from a zero head: an untrained network forecasts no
    change); with ``"level"`` the standardised level, as the forecasters
    of River do; with ``"auto"`` (the default) both, and each prediction is
    that of the level head, the change head or no change, whichever has had
    the smallest running mean absolute error over the last 100 learned
    rows (:class:`~streamrnn.target_change.TargetChange`).

    **Entities** (``key``). With ``key`` the name of a feature (say
    ``"chick"``), each value of that feature is an entity with its own
    hidden state, TBPTT window and revealed targets, the weights being
    shared (every ``k1`` rows of an entity, an update over its own window,
    as in :class:`~streamrnn.SharedWeightsBank`); the key is not a feature. A
    row without the key (absent, None or NaN) belongs to the entity None.
    With ``max_idle``, an entity not learned in the last ``max_idle`` rows
    (over all entities) is forgotten and starts afresh.
    """

    # states saved before the option: the level, as then
    model_change = "level"

    def __init__(
        self,
        hidden_size: int = 32,
        num_layers: int = 1,
        k1: int = 1,
        k2: int = 16,
        optimizer: str = "adam",
        lr: float = 1e-3,
        clip_norm: float | None = 1.0,
        loss: str = "squared",
        scale_target: bool = True,
        dtype: str = "float32",
        device: str = "cpu",
        seed: int | None = None,
        revealed_targets: int = 3,
        model_change: str = "auto",
        key=None,
        max_idle: int | None = None,
    ):
        check_regression_loss(loss)
        if not isinstance(scale_target, bool | np.bool_):
            raise ValueError(f"scale_target must be a bool, got {scale_target!r}")
        self.loss = loss
        self.scale_target = scale_target
        self.model_change = model_change
        self._loss = loss
        self._target = TargetChange(model_change)
        super().__init__(hidden_size, num_layers, k1, k2, optimizer, lr, clip_norm, dtype, device, seed,
                         revealed_targets, key, max_idle)
        self._y_scaler = RunningScaler(1, guard=True)
        self._y_scaler.glitch_out = math.nan  # a glitch target is not learned (the state still advances)
        if self.revealed_targets:
            self._cols_y = self._new_columns(self.revealed_targets)

    @classmethod
    def _unit_test_params(cls):
        yield from super()._unit_test_params()
        yield {"hidden_size": 4, "k2": 4, "seed": 1, "model_change": "change", "revealed_targets": 0}
        yield {"hidden_size": 4, "k2": 4, "seed": 1, "model_change": "level", "key": "gallup", "max_idle": 20}

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "_target" not in state:  # saved before model_change: the level
            self._target = TargetChange("level")

    def _outputs(self) -> int:
        return self._target.outputs

    def _network(self, output_size: int):
        net = super()._network(output_size)
        if self._target.mode != "level":  # the change head starts at zero: no change
            start = net.state_dict()
            start["head.weight"][-1] = 0.0
            start["head.bias"][-1] = 0.0
            net.load_state_dict(start)
        return net

    def _fresh_carried(self) -> np.ndarray:
        # the last revealed targets (not glitches, the latest first) standardised as
        # learned, then the last as given (the base); NaN: none yet
        return np.full(self.revealed_targets + 1, np.nan)

    def _revealed(self, n: int) -> np.ndarray | None:
        return None if not self._cols_y else np.tile(self._revealed_one(), (n, 1))

    def _revealed_one(self):
        if not self._cols_y:
            return None
        r = self._carried[:-1]
        return np.where(r == r, r, 0.0)

    def _moments(self) -> tuple[float, float]:
        """The target's running mean and standard deviation (0 and 1 unscaled)."""
        if not self.scale_target:
            return 0.0, 1.0
        count, mean, root = self._y_scaler.stats[:, 0].tolist()
        std = float(root / np.sqrt(max(count, 1))) if count > 1 and root > 0 else 0.0
        return mean, std

    def _forecasts(self, out: np.ndarray) -> np.ndarray:
        """Predictions from the network's outputs, from what is carried now."""
        mean, std = self._moments()
        return self._target.forecast_many(out.astype(np.float64), float(self._carried[-1]), mean, std)

    def _new_row_path(self) -> RowPath:
        mode = {"level": LEVEL, "change": CHANGE, "auto": AUTO}[self._target.mode]
        path = RowPath(self, (mode, int(bool(self.scale_target)), 0, 0), y_scaler=self._y_scaler,
                       revealed=len(self._carried) - 1, reader=regressor_predict_dict)
        self._refresh(path)
        return path

    def _refresh(self, path: RowPath) -> None:
        """What the state gives the next predictions, into ``path``'s row."""
        target = self._target
        regressor_refresh(path.row, path.plan, self._carried, self._y_scaler.stats, target.changes, target.errors,
                          target.scored)

    def _learn_rows(self, Z: np.ndarray, y: np.ndarray) -> None:
        """Learn rows of the active entity: their standardised features
        ``Z`` and targets ``y``, one after the other."""
        target = self._target
        T, R, seen = target.learn_targets(self._y_scaler, self.scale_target, y, self._carried)
        if len(y) == 1:  # learn_one's path (the same arithmetic, without the matrices)
            out = self._net.learn(self._compose_one(Z[0], R[0] if self._cols_y else None), T[0])[None, :]
        else:
            out = self._net.learn_many(self._compose(Z, R if self._cols_y else None), T)
        target.score(out, y, seen)
        path = self.__dict__.get("_path")
        if path is not None:
            self._refresh(path)

    # The public per-row methods take a row in one kernel call (a RowPath)
    # where they can, holding the guard's token themselves (one Python call
    # less than the exclusive wrapper); anything else, and the first rows,
    # go to the guarded methods below, which make the path or take the row
    # row by row.

    def learn_one(self, x: dict, y: float) -> None:
        path, held = self._path, self._busy
        if path is not None and held and type(x) is dict and type(y) is float and y - y == 0.0 \
                and holding_token(held, self._learn_in_one_call, path, x, y):
            return
        self._learn_one(x, y)

    def _learn_in_one_call(self, path, x: dict, y) -> bool:
        """Learn the row ``x, y`` (checked) in one kernel call; whether it could."""
        plan = path.pack(x, y)
        if plan is None:
            return False
        scaler, target = self._x_scaler, self._target
        return regressor_learn(path.row, plan, scaler.stats, scaler.beyond, self._carried, self._net._ctr,
                               self._net._buf, path.scratch, self._y_scaler.stats, self._y_scaler.beyond,
                               target.changes, target.errors, target.scored)

    @exclusive_as("learn_one")
    def _learn_one(self, x: dict, y: float) -> None:
        if isinstance(y, bool) or not isinstance(y, numbers.Real) or not finite(y):
            raise ValueError(f"y must be a finite real number, got {y!r}")
        self._check_x(x)
        if self._entities is None:
            path = self._row_path()
            if path is not None and self._learn_in_one_call(path, x, y):
                return
            self._learn_rows(self._one_features(x, learn=True), np.array([float(y)]))
            return
        k = self._entity_of(x)
        x = self._without_key(x)
        self._features.present(x)  # bad values raise before the entity changes
        self._entities.activate(self, k)
        self._learn_rows(self._one_features(x, learn=True), np.array([float(y)]))
        self._entities.learned(k)

    def _predict(self, x: dict) -> float:
        out = self._net.predict(self._one_input(x, learn=False))
        mean, std = self._moments()
        return self._target.forecast_one(out.tolist(), float(self._carried[-1]), mean, std)

    def predict_one(self, x: dict) -> float:
        path, held = self._path, self._busy
        if path is not None and held and type(x) is dict:
            try:
                token = held.pop()  # (the guard's token: see streamrnn.guard)
            except IndexError:  # (taken meanwhile: the guarded method says so)
                return self._predict_one(x)
            try:  # (spelled out: predictions are the cheapest calls)
                read = path.read
                if read is not None and self._x_scaler.stats is path.stats and self._net._buf is path.buf:
                    forecast = read(id(x))  # (the dict read in the kernel)
                    status = DONE if forecast == forecast else path.row[R_STATUS]
                    if status == DONE:
                        return forecast
                    # another key order or other types: packed here; else the row-by-row path
                    forecast = self._predict_in_one_call(path, x) if status == NOT_READ else None
                else:
                    forecast = self._predict_in_one_call(path, x)
                if forecast is not None:
                    return forecast
            finally:
                held.append(token)
        return self._predict_one(x)

    def _predict_in_one_call(self, path, x: dict) -> float | None:
        """The forecast for ``x`` in one kernel call, its values packed here
        (and the path's dict reading bound to its plan); None where it cannot."""
        found = path.packed(x, 0.0)
        if found is None:
            return None
        stats, buf = self._x_scaler.stats, self._net._buf
        forecast = regressor_predict(path.row, found[1], stats, buf, path.scratch)
        if forecast != forecast and path.row[R_STATUS] == TAKE_SLOW_PATH:
            return None
        path.bind(found, stats, buf)
        return forecast

    @exclusive_as("predict_one")
    def _predict_one(self, x: dict) -> float:
        self._check_x(x)
        if self._entities is None:
            path = self._row_path()
            if path is not None:
                forecast = self._predict_in_one_call(path, x)
                if forecast is not None:
                    return forecast
            return self._predict(x)
        with self._entities.peeking(self, self._entity_of(x)):
            return self._predict(self._without_key(x))

    @exclusive
    def learn_many(self, X: pd.DataFrame, y: pd.Series) -> None:
        targets = as_targets(y, len(X))
        if targets.dtype.kind not in "iuf":  # as learn_one: no bools, strings or other objects
            for i, v in enumerate(targets):
                if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Real):
                    raise ValueError(f"y must hold finite real numbers; row {i} is {v!r}")
        try:
            targets = targets.astype(np.float64)
        except OverflowError:  # an int beyond the floats
            targets = np.array([v if finite(v) else math.inf for v in targets], dtype=np.float64)
        if not np.all(np.isfinite(targets)):
            raise ValueError(f"y must hold finite real numbers; row {int(np.argmin(np.isfinite(targets)))} does not")
        self._learn_batch(X, targets, {}, self._learn_rows)

    @exclusive
    def predict_many(self, X: pd.DataFrame) -> pd.Series:
        return pd.Series(self._predict_rows(X, self._forecasts), index=X.index, dtype=np.float64)


class RNNRegressor(RecurrentRegressor):
    """Elman RNN (tanh) regressor; see :class:`RecurrentRegressor`.

    Examples
    --------
    >>> from river import datasets, evaluate, metrics, preprocessing
    >>> from streamrnn import RNNRegressor
    >>> model = preprocessing.StandardScaler() | RNNRegressor(seed=0)
    >>> evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
    MAE: 0.194733

    (The first row, predicted 0 before any target is known, counts 0.043 of
    it: from the second row on the model forecasts no change here, at 0.151,
    its network's heads not beating it by the margin.)
    """

    _cell = "rnn"


class GRURegressor(RecurrentRegressor):
    """GRU regressor; see :class:`RecurrentRegressor`."""

    _cell = "gru"


class LSTMRegressor(RecurrentRegressor):
    """LSTM regressor; see :class:`RecurrentRegressor`.

    Examples
    --------
    >>> from river import datasets, evaluate, metrics
    >>> from streamrnn import LSTMRegressor
    >>> evaluate.progressive_val_score(datasets.TrumpApproval(), LSTMRegressor(seed=0), metrics.MAE())
    MAE: 0.194727

    Without the revealed targets and the change, as before them:

    >>> model = LSTMRegressor(revealed_targets=0, model_change="level", seed=0)
    >>> evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
    MAE: 0.582796
    """

    _cell = "lstm"


for _cls in (RNNRegressor, GRURegressor, LSTMRegressor):  # a Parameters section of its own for help() (the bases are not exported)
    document(_cls)
del _cls
