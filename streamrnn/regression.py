"""Recurrent regressors whose hidden state runs along the stream of ``x``."""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
from river import base

from .estimator import RecurrentEstimator, as_targets, check_regression_loss
from .checks import finite
from .features import RunningScaler
from .guard import exclusive


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
    """

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
    ):
        check_regression_loss(loss)
        if not isinstance(scale_target, bool | np.bool_):
            raise ValueError(f"scale_target must be a bool, got {scale_target!r}")
        self.loss = loss
        self.scale_target = scale_target
        self._loss = loss
        super().__init__(hidden_size, num_layers, k1, k2, optimizer, lr, clip_norm, dtype, device, seed)
        self._y_scaler = RunningScaler(1, guard=True)
        self._y_scaler.glitch_out = math.nan  # a glitch target is not learned (the state still advances)

    def _scaled_targets(self, y: np.ndarray) -> np.ndarray:
        if not self.scale_target:
            return y[:, None]
        return self._y_scaler.transform(y[:, None], update=True)

    def _unscaled(self, out: np.ndarray) -> np.ndarray:
        out = out.astype(np.float64)
        return self._y_scaler.unscale(out) if self.scale_target else out

    @exclusive
    def learn_one(self, x: dict, y: float) -> None:
        if isinstance(y, bool) or not isinstance(y, numbers.Real) or not finite(y):
            raise ValueError(f"y must be a finite real number, got {y!r}")
        z = self._one_input(x, learn=True)
        self._net.learn(z, self._scaled_targets(np.array([float(y)]))[0])

    @exclusive
    def predict_one(self, x: dict) -> float:
        z = self._one_input(x, learn=False)
        return float(self._unscaled(self._net.predict(z)[None, :])[0, 0])

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

        def learn_rows(Z, t):
            self._net.learn_many(Z, self._scaled_targets(t))

        self._learn_batch(X, targets, {}, learn_rows)

    @exclusive
    def predict_many(self, X: pd.DataFrame) -> pd.Series:
        out = self._net.predict_each(self._many_inputs(X))
        return pd.Series(self._unscaled(out)[:, 0], index=X.index, dtype=np.float64)


class RNNRegressor(RecurrentRegressor):
    """Elman RNN (tanh) regressor; see :class:`RecurrentRegressor`.

    Examples
    --------
    >>> from river import datasets, evaluate, metrics, preprocessing
    >>> from streamrnn import RNNRegressor
    >>> model = preprocessing.StandardScaler() | RNNRegressor(seed=0)
    >>> evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
    MAE: 0.555
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
    MAE: 0.583
    """

    _cell = "lstm"
