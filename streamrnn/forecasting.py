"""Recurrent forecasters implementing River's ``time_series.base.Forecaster``.

The network learns the series' next change, standardised online: a residual
over the drift forecast (persistence plus the mean change), so an untrained
network already forecasts like persistence with drift. Its inputs at each
step are the previous standardised change, the change one season before the
target (when ``seasonality`` is set), and the standardised exogenous
features of the target's time. Multi-step forecasts run on from the carried
hidden state without changing it, feeding each predicted change back in.
"""

from __future__ import annotations

import collections
import math
import numbers

import numpy as np
from river.time_series.base import Forecaster

from .features import CLIP, FeatureSpace, RunningScaler
from .learner import OnlineRNN


class RecurrentForecaster(Forecaster):
    """Base of :class:`RNNForecaster`, :class:`GRUForecaster` and
    :class:`LSTMForecaster`.

    Parameters
    ----------
    hidden_size, num_layers, k1, k2, optimizer, lr, clip_norm, loss, dtype, device, seed
        Those of the underlying :class:`~streamrnn.OnlineRNN` (``loss``:
        ``"squared"`` or ``"huber"``, on the standardised changes).
    seasonality
        Period of the series in steps (12 for monthly data with a yearly
        cycle, 24 for hourly data with a daily one), or None.
    log_transform
        Model the logarithm of the series (for positive series whose
        variations scale with their level). Values must then be positive.
    """

    _cell = "lstm"

    def __init__(
        self,
        hidden_size: int = 32,
        num_layers: int = 1,
        k1: int = 1,
        k2: int = 16,
        optimizer: str = "adam",
        lr: float = 3e-3,
        clip_norm: float | None = 1.0,
        loss: str = "squared",
        seasonality: int | None = None,
        log_transform: bool = False,
        dtype: str = "float32",
        device: str = "cpu",
        seed: int | None = None,
    ):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.lr = lr
        self.clip_norm = clip_norm
        self.loss = loss
        self.seasonality = seasonality
        self.log_transform = log_transform
        self.dtype = dtype
        self.device = device
        self.seed = seed
        if seasonality is not None and (
            isinstance(seasonality, bool) or not isinstance(seasonality, numbers.Integral) or seasonality < 2
        ):
            raise ValueError(f"seasonality must be an integer >= 2 or None, got {seasonality!r}")
        self._n_base = 1 if seasonality is None else 2
        self._net = OnlineRNN(
            cell=self._cell,
            input_size=self._n_base,
            hidden_size=hidden_size,
            num_layers=num_layers,
            output_size=1,
            k1=k1,
            k2=k2,
            optimizer=optimizer,
            lr=lr,
            clip_norm=clip_norm,
            loss=loss,
            dtype=dtype,
            device=device,
            seed=seed,
        )
        # the head starts at zero: an untrained network forecasts no surprise
        start = self._net.state_dict()
        start["head.weight"][:] = 0.0
        start["head.bias"][:] = 0.0
        self._net.load_state_dict(start)
        self._features = FeatureSpace()
        self._x_scaler = RunningScaler()
        self._d_stats = [0, 0.0]  # count and sum of squares of the learned changes
        self._changes: collections.deque = collections.deque(maxlen=seasonality or 1)  # last changes
        self._surprises: collections.deque = collections.deque(maxlen=seasonality or 1)  # what was learned
        self._level: float | None = None
        # recursion: the previous change is fed back at lag 1, the seasonal one at lag m
        self._feedback = np.array([(0, 1)] + ([(1, seasonality)] if seasonality else []), dtype=np.int64)

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k2": 4, "seed": 1}
        yield {"hidden_size": 3, "seasonality": 4, "log_transform": True, "seed": 2}

    # ----------------------------------------------------------- transforms

    def _level_of(self, y) -> float:
        if isinstance(y, bool) or not isinstance(y, numbers.Real) or not math.isfinite(y):
            raise ValueError(f"y must be a finite real number, got {y!r}")
        if self.log_transform:
            if y <= 0:
                raise ValueError(f"y must be positive with log_transform=True, got {y!r}")
            return math.log(y)
        return float(y)

    def _value_of(self, level: np.ndarray) -> np.ndarray:
        return np.exp(level) if self.log_transform else level

    def _scale(self) -> float:
        """Root mean square of the learned quantities so far (1 before any)."""
        count, sum_sq = self._d_stats
        return math.sqrt(sum_sq / count) if count > 0 and sum_sq > 0 else 1.0

    def _scaled_change(self, d: float) -> float:
        """A learned quantity divided by its running root mean square; not
        centred, so an output of zero forecasts no change (persistence)."""
        return min(max(d / self._scale(), -CLIP), CLIP)

    def _add_change(self, d: float) -> None:
        self._d_stats[0] += 1
        self._d_stats[1] += d * d

    def _unscaled_changes(self, z: np.ndarray) -> np.ndarray:
        return z * self._scale()

    def _exogenous(self, xs: list, learn: bool) -> np.ndarray:
        """Standardised features of the rows ``xs`` (dicts or None)."""
        for x in xs:
            if x is not None and not isinstance(x, dict):
                raise ValueError(f"x must be a dict of features or None, got {type(x).__name__}")
        if learn and self._features.register(self._features.present(xs[0] or {})):
            n = len(self._features)
            self._x_scaler.grow(n)
            self._net.resize(input_size=self._n_base + n)
        if not self._features.names:
            return np.zeros((len(xs), 0))
        M = np.array([self._features.row(x or {}) for x in xs])
        return self._x_scaler.transform(M, update=learn)

    def _input(self, previous: float, seasonal: float, exogenous: np.ndarray) -> np.ndarray:
        u = np.zeros(self._net.input_size)
        u[0] = previous
        if self.seasonality is not None:
            u[1] = seasonal
        u[self._n_base : self._n_base + len(exogenous)] = exogenous
        return u

    # -------------------------------------------------------------- River

    def learn_one(self, y: float, x: dict | None = None) -> None:
        level = self._level_of(y)
        exogenous = self._exogenous([x], learn=True)[0]
        if self._level is not None:
            d = level - self._level
            m = self.seasonality
            changes, surprises = self._changes, self._surprises
            # with a seasonality, the network learns the change less the
            # change one season earlier (seasonal differencing)
            w = d - changes[0] if m and len(changes) == m else d
            previous = self._scaled_change(surprises[-1]) if surprises else 0.0
            seasonal = self._scaled_change(surprises[0]) if m and len(surprises) == m else 0.0
            target = self._scaled_change(w)
            self._add_change(w)
            self._net.learn(self._input(previous, seasonal, exogenous), [target])
            changes.append(d)
            surprises.append(w)
        self._level = level

    def forecast(self, horizon: int, xs: list[dict] | None = None) -> list[float]:
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        if xs is not None and len(xs) < horizon:
            raise ValueError(f"xs must hold the features of each of the {horizon} steps, got {len(xs)}")
        if self._level is None:
            return [0.0] * horizon
        m = self.seasonality
        changes, surprises = self._changes, self._surprises
        U = np.zeros((horizon, self._net.input_size))
        U[0, 0] = self._scaled_change(surprises[-1]) if surprises else 0.0
        if m is not None and len(surprises) == m:
            # step k's seasonal input is the value m steps before it: known
            # for k < m, fed back from the forecast after that
            for k in range(min(horizon, m)):
                U[k, 1] = self._scaled_change(surprises[k - m])
        if xs is not None or self._features.names:
            ex = self._exogenous([xs[k] for k in range(horizon)] if xs is not None else [None] * horizon, False)
            U[:, self._n_base : self._n_base + ex.shape[1]] = ex
        z = self._net.forecast(U, self._feedback)[:, 0].astype(np.float64)
        d = self._unscaled_changes(z)
        if m is not None and len(changes) == m:  # undo the seasonal differencing
            for k in range(horizon):
                d[k] += changes[k - m] if k < m else d[k - m]
        return [float(v) for v in self._value_of(self._level + np.cumsum(d))]


class RNNForecaster(RecurrentForecaster):
    """Elman RNN (tanh) forecaster; see :class:`RecurrentForecaster`."""

    _cell = "rnn"


class GRUForecaster(RecurrentForecaster):
    """GRU forecaster; see :class:`RecurrentForecaster`."""

    _cell = "gru"


class LSTMForecaster(RecurrentForecaster):
    """LSTM forecaster; see :class:`RecurrentForecaster`."""

    _cell = "lstm"
