"""Recurrent forecasters implementing River's ``time_series.base.Forecaster``.

How a forecast is made, from the bottom up:

1. **Changes.** The series' changes ``d_t = v_t - v_{t-1}`` are modelled,
   where ``v`` is the series or, for a seasonal positive series whose
   seasonal base forecasts better on the log scale, its logarithm.
2. **Seasonal base.** When the series has a period ``m`` (given; or, by
   default, the natural period of the sampling interval of the dates in
   ``x``, or a peak of the autocorrelation of the changes), the change
   expected at each phase of the period is an exponentially weighted mean of
   the past changes at that phase, averaged over several smoothing constants
   with weights that follow their one-step errors, and used only while it
   clearly beats forecasting no change; a period known beforehand (given,
   or from the dates) is trusted from the end of its first cycle, before
   there are errors to compare (:class:`~streamrnn.seasonal.SeasonalBase`).
   Otherwise the base is zero: persistence.
3. **Mean reversion.** When the base's residuals ``r_t = d_t - base_t``
   correlate negatively at lag one (part of each residual is noise that the
   next change takes back, as around a noisy level), the next residual is
   expected to be ``rho`` times the last one, and ``rho**k`` times it ``k``
   steps ahead: exponential smoothing of the level, in effect. A positive
   correlation (momentum) is left to the network.
4. **Network.** The network learns the surprise ``w_t = r_t - rho r_{t-1}``,
   divided by its running root mean square. Its inputs at each step are the
   previous surprise, the surprise one period before the target, and the
   standardised exogenous features of the target's time (dates become
   calendar features). Its head starts at zero, so an untrained network
   forecasts the base exactly.
5. **Recurrent path.** Multi-step forecasts run on from the carried hidden
   state without changing it, feeding each predicted surprise back in, and
   add up base, reversion and surprise from the last value.
6. **Combination.** Beside that path, statistical forecasts that hold their
   level over the whole horizon: robust exponential smoothing of a level and
   of the period's (and, for hourly data, the week's) seasonal indices, in
   several settings (:class:`~streamrnn.smoothing.SeasonalSmoothing`), the
   last value, the values one period (and one week) before, and the
   recurrent path without the network's surprises (so that the network
   counts only at the horizons where it helps). At every
   step each candidate forecasts the next ``2 m`` values (at most 48; 12 without a
   period); as the values arrive, each one's errors at each horizon are
   scored; at horizon ``h`` the candidates' mean weighted by the inverse
   square of their recent mean squared errors there is the forecast where
   it has erred less than the recurrent path (with exogenous features, less
   than half its mean squared error: the path is scored as run without
   future features), else the recurrent path's
   (:class:`~streamrnn.combination.HorizonCombination`). The combined
   forecast's own errors at each horizon give its prediction intervals
   (:meth:`RecurrentForecaster.forecast_interval`).
"""

from __future__ import annotations

import collections
import itertools
import datetime as dt
import math
import sys
import numbers
import warnings

import numpy as np
from .river_bases import Forecaster

from .checks import check_integer, finite, is_integer
from .features import CLIP, GLITCH, FeatureSpace, RunningScaler
from .estimator import build_network, check_regression_loss
from .guard import Guarded, exclusive
from .learner import OnlineRNN
from .shared_bank import SeriesView
from .combination import DISCOUNT, MARGIN, MIN_COUNT, THIN, TRIM, HorizonCombination
from .seasonal import SeasonalBase, calendar_period, find_period
from .kernels.combination import (
    combination_observe, gate_departure, observe_record, observe_smoothed, record_origin, scaled_column,
    seasonal_naives, statistical_path,
)
from .smoothing import CLIP_ERRORS, SCALE_DECAY, SHIFT_AFTER, SeasonalSmoothing, long_period
from ._docs import document

#: Changes kept to look for a period, and the numbers of changes at which to look.
HISTORY = 1024
DETECT_AT = frozenset({24, 36, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024})
N_BASE_INPUTS = 2  # previous surprise, surprise one period before the target
_NO_FEATURES = np.zeros(0)
_NO_SEEN = np.zeros(0, dtype=bool)
#: The largest magnitude of a value the forecaster learns: its running sums of
#: squared changes would overflow beyond (a value of 1e200 made every later
#: forecast NaN).
MAX_ABS_VALUE = 1e100
#: Horizons tracked by the combination without a period (with one: two
#: periods, at most MAX_TRACKED: its memory grows with their square).
TRACKED_WITHOUT_PERIOD = 12
MAX_TRACKED = 48
#: With exogenous features, the mixture is given where its mean squared error
#: is below this fraction of the recurrent path's: the path is scored as run
#: without future features (unknown when it is scored), so its errors
#: overstate those of the path run with them. (At 1, WaterFlow's forecasts
#: with its dates as features chased the mixture's lucky spells: mean error
#: over 12 hours 3.77 against 3.09; the M4 series have no features.)
MARGIN_WITH_FEATURES = 0.5
#: The network's forecast surprises, summed over the first ``k`` steps of a
#: forecast, are kept within this many times ``sqrt(k)`` times their running
#: root mean square: beyond, they forecast a departure from the statistical
#: path that the surprises themselves (their spread over ``k`` steps) never
#: showed, the sign of a network run away in its own feedback (a network shared
#: by many series did, on a few of M4's, and its forecasts fed the glitch filter).
NETWORK_GATE = 4.0
#: ... and within this many times the root mean squared error of the path
#: without the network at that horizon, once scored: the network corrects that
#: path's errors; a correction beyond their size is no correction (a network
#: shared by many series learns fast, and its path is scored at horizon h only
#: h steps later: meanwhile its past errors vouch for it in the combination).
NETWORK_REACH = 2.0
#: One-step errors that set the scale of the glitch filter before it filters.
CLEAN_WARMUP = 20
#: Steps of the network's own recurrent forecast run at each origin by a
#: series of a network shared by many (a key of a GlobalForecaster); beyond,
#: its departure from the statistical path is held. The shared network's
#: surprises help at the first steps only: on M4 Hourly's validation split
#: (414 series, seed 0) the global forecaster scored OWA 0.4490 with all 48
#: steps run, 0.4490 with 12 and 0.4488 with 4, at a quarter to a twelfth
#: of the recurrent forecast's cost, its largest part.
SHARED_NETWORK_STEPS = 4


#: Values below which a loop in Python costs less than a kernel call.
_FEW = 8


def _clip(v: float) -> float:
    """``min(max(v, -CLIP), CLIP)``, faster (NaN and -0.0 unchanged too)."""
    return v if -CLIP <= v <= CLIP else CLIP if v > CLIP else -CLIP if v < -CLIP else v


def _as_datetime(when: dt.date) -> dt.datetime:
    """A date as the datetime of its midnight; datetimes unchanged."""
    if isinstance(when, dt.datetime):
        return when
    return dt.datetime(when.year, when.month, when.day)


def _is_log_transform(value) -> bool:
    """Whether ``value`` is a ``log_transform``: a bool or ``"auto"`` (not 1
    or ``np.True_``, which equal True)."""
    return type(value) is bool or (type(value) is str and value == "auto")


class RecurrentForecaster(Guarded, Forecaster):
    """Base of :class:`RNNForecaster`, :class:`GRUForecaster` and
    :class:`LSTMForecaster` (see the module's description).

    Parameters
    ----------
    hidden_size, num_layers, k1, k2, optimizer, lr, clip_norm, loss, dtype, device, seed
        Those of the underlying :class:`~streamrnn.OnlineRNN`, with this
        class's defaults (hidden 32, ``k1`` 4; ``loss``: ``"squared"`` or
        ``"huber"``, on the scaled surprises).
    seasonality
        The series' period in steps (12 for monthly data with a yearly
        cycle); ``"auto"`` to find one as the series arrives: the natural
        period of the interval between the first two dates in ``x`` (24 for
        hourly, 7 for daily, 52 for weekly, 12 for monthly, 4 for quarterly
        data, 60 for minutes), else a lag of at least 3 where the
        autocorrelation of the changes peaks at 0.5 or more (a period from
        the dates that the base does not use yields to it); or None.
    horizon
        None: recursive forecasts (one output, fed back step by step, any
        horizon). An integer H: direct multi-output forecasts, one output per
        step ahead up to H; the network then learns each step once the H
        values after it are known (its state runs H - 1 steps behind the
        stream, and a forecast replays those steps first), and exogenous
        features are those of the step the forecast is made from.
    log_transform
        Model the logarithm of the series: True, False, or ``"auto"`` (for a
        seasonal series whose values have all been positive, whichever of
        the two seasonal bases made the smaller one-step errors when the
        period became known). A non-positive value under an automatic log
        scale switches the forecaster back to the linear scale.
    combine
        Weigh the recurrent path, horizon by horizon, with robust seasonal
        exponential smoothing, the last value and the seasonal naive
        forecasts, by each one's recent errors at that horizon (True; see
        the module's description), or forecast with the recurrent path alone
        (False). Prediction intervals come from the forecast's own errors
        either way.

    Notes
    -----
    ``learn_one`` refuses (``ValueError``, and changes nothing) a value ``y``
    that is not a finite real number or lies beyond ±1e100
    (:data:`MAX_ABS_VALUE`: the running sums of squared changes would
    overflow), and an ``x`` that is not a dict of real numbers, dates or
    missing values. Not thread-safe: a call from a second thread while one
    is inside raises :class:`~streamrnn.guard.ConcurrentUseError`.
    """

    _cell = "lstm"
    _scale_prior = 1.0  # (states saved before it was kept scaled their first surprises by 1)

    def __init__(
        self,
        hidden_size: int = 32,
        num_layers: int = 1,
        k1: int = 4,
        k2: int = 16,
        optimizer: str = "adam",
        lr: float = 1e-3,
        clip_norm: float | None = 1.0,
        loss: str = "squared",
        seasonality: int | str | None = "auto",
        log_transform: bool | str = "auto",
        horizon: int | None = None,
        combine: bool = True,
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
        self.horizon = horizon
        self.combine = combine
        self.dtype = dtype
        self.device = device
        self.seed = seed
        if seasonality not in (None, "auto") and not (is_integer(seasonality) and seasonality >= 2):
            raise ValueError(f"seasonality must be an integer >= 2, 'auto' or None, got {seasonality!r}")
        if not _is_log_transform(log_transform):
            raise ValueError(f"log_transform must be True, False or 'auto', got {log_transform!r}")
        check_integer("horizon", horizon, none_ok=True)
        if type(combine) is not bool:
            raise ValueError(f"combine must be True or False, got {combine!r}")
        check_regression_loss(loss)
        self._outputs = 1 if horizon is None else int(horizon)
        # the head starts at zero: forecasts start at the base
        self._net = build_network(self, self._cell, loss, N_BASE_INPUTS, self._outputs, zero_head=True)
        self._features = FeatureSpace()
        self._x_scaler = RunningScaler(guard=True)
        self._last: float | None = None  # last value, original scale
        self._n = 0  # changes seen
        self._history = {"lin": collections.deque(maxlen=HISTORY), "log": collections.deque(maxlen=HISTORY)}
        self._positive = True  # every value so far > 0
        self._log = log_transform is True
        self._period: int | None = None
        self._period_from = None  # "given", "calendar" or "autocorrelation"
        self._first_time = None  # first date seen in x, for the sampling interval
        self._log_pending = False  # log_transform="auto" decides after two periods
        self._bases: dict = {}
        self._base_errors = {"lin": 0.0, "log": 0.0}
        self._w_stats = [0, 0.0]  # count and sum of squares of the surprises
        self._restart_surprises()
        self._feedback = np.array([(0, 1)], dtype=np.int64)
        if is_integer(seasonality):
            self._set_period(int(seasonality), "given")

    def __setstate__(self, state: dict) -> None:
        if not _is_log_transform(state.get("log_transform")):
            state["log_transform"] = False  # earlier versions took 1, 0 or np.True_: each meant False
        if "combine" not in state:
            # saved before the combination: it forecasts with its recurrent
            # path alone, as it did, and its intervals start afresh
            state["combine"] = False
            state["_combination"] = None
            state["_clean"] = None  # and learns every value as it is, as it did
        feedback, net = state.get("_feedback"), state.get("_net")
        # handed to the kernel unchecked (OnlineRNN._forecast_own): pairs of
        # (column, lag) within the base inputs, as _set_period makes them, and
        # a network at least that wide
        if not (type(feedback) is np.ndarray and feedback.dtype == np.int64 and feedback.ndim == 2
                and feedback.shape[1] == 2 and 1 <= len(feedback) <= 2 and feedback.flags.c_contiguous
                and ((feedback[:, 0] >= 0) & (feedback[:, 0] < N_BASE_INPUTS) & (feedback[:, 1] >= 1)).all()):
            raise ValueError("the forecaster's feedback pairs are malformed")
        if not (isinstance(net, (OnlineRNN, SeriesView)) and net.input_size >= N_BASE_INPUTS):
            raise ValueError(f"the forecaster's network must take at least {N_BASE_INPUTS} inputs")
        combination, smoothing = state.get("_combination"), state.get("_smoothing")
        if combination is not None:
            # the candidates' forecasts go to the kernel as rows of its counts
            k = len(smoothing) if isinstance(smoothing, SeasonalSmoothing) else None
            expected = 1 + k + 4 if state.get("combine") is True and k is not None else 1
            if not (isinstance(combination, HorizonCombination) and combination.n_candidates == expected
                    and (smoothing is None) == (state.get("combine") is not True)):
                raise ValueError("the forecaster's combination does not match its candidates")
        self.__dict__.update(state)
        if self._combination is None:
            self._restart_combination()

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k2": 4, "seed": 1}
        yield {"hidden_size": 3, "seasonality": 4, "log_transform": True, "seed": 2}
        yield {"hidden_size": 3, "seasonality": None, "log_transform": False}
        yield {"hidden_size": 3, "horizon": 3, "seed": 3}
        yield {"hidden_size": 3, "combine": False, "seed": 4}

    # ------------------------------------------------------------ scales

    @property
    def period(self) -> int | None:
        """The period in use (given or found), or None."""
        return self._period

    @property
    def log_scale(self) -> bool:
        """Whether the series is modelled on the log scale."""
        return self._log

    def _space(self) -> str:
        return "log" if self._log else "lin"

    def _scale(self) -> float:
        count, sum_sq = self._w_stats
        return math.sqrt(sum_sq / count) if count > 0 and sum_sq > 0 else self._scale_prior

    def _scaled(self, w: float) -> float:
        """A surprise over its running root mean square, clipped: not
        centred, so an output of zero forecasts the base."""
        return _clip(w / self._scale())

    def _restart_surprises(self) -> None:
        self._w_stats = [0, 0.0]
        # until the first surprise: the root mean square of the changes kept
        # (a scale of 1 made the network's first outputs of a series at 1e-50
        # forecasts of 1e-2, and clipped its first targets on one at 1e6)
        history = self._history["log" if self._log else "lin"]
        rms = math.sqrt(sum(d * d for d in history) / len(history)) if history else 0.0
        self._scale_prior = rms if 0.0 < rms < math.inf else 1.0
        # the base's residuals: sums of r[t] r[t-1], r[t-1]^2 and r[t]^2, and the last one
        self._residuals = [0.0, 0.0, 0.0, None]
        self._surprises = collections.deque(maxlen=max(self._period or 1, self._outputs))
        self._pending = collections.deque(maxlen=self._outputs)  # direct: inputs awaiting their targets
        self._restart_combination()

    # -------------------------------------------------------- combination

    def _tracked(self) -> int:
        """The horizons the combination scores."""
        if self.horizon is not None:
            return min(self._outputs, MAX_TRACKED)
        return min(2 * self._period, MAX_TRACKED) if self._period else TRACKED_WITHOUT_PERIOD

    def _restart_combination(self) -> None:
        """New smoothing and combination on the current scale and period, the
        smoothing replaying the values kept in the history."""
        m = self._period
        M = long_period(m)
        self._smoothing = SeasonalSmoothing(m, M) if self.combine else None
        self._recent = np.zeros(max(M or 0, m or 0, 1))  # ring of the last values on the modelling scale
        self._n_recent = 0
        n = 1 + (len(self._smoothing) + 4 if self.combine else 0)
        self._combination = HorizonCombination(n, self._tracked())
        self._made = None  # the candidates' forecasts at this origin, and their combination
        # the glitch filter: running mean square of the one-step errors, their
        # count, the signed count of the last ones beyond the bound (of one
        # sign), and the scale they are on: kept through a change of period,
        # restarted with the scale (None in a state saved before the filter,
        # which learns every value as it is)
        clean = getattr(self, "_clean", ())
        if clean is None or (clean and clean[3] == self._log):
            pass
        else:
            self._clean = [0.0, 0, 0, self._log]
        if self._last is None:
            return
        history = self._history["log" if self._log else "lin"]
        last = self._z(self._last)
        changes = np.fromiter(history, np.float64, len(history))
        values = np.concatenate([[last], last - np.cumsum(changes[::-1])])[::-1]
        for z in values.tolist():
            self._smooth(z)
        self._record()

    def _cleaned(self, y: float) -> tuple[float, float | None]:
        """The value to learn, and the level to continue from if not that
        one. ``y`` itself, unless it lies beyond
        :data:`~streamrnn.features.GLITCH` running root mean squares of the
        one-step errors from the forecast (on the modelling scale; a value
        <= 0 on the log scale is below any bound): on fewer than
        :data:`~streamrnn.smoothing.SHIFT_AFTER` steps in a row of one sign
        it is a glitch, learned as the forecast itself; on the
        :data:`~streamrnn.smoothing.SHIFT_AFTER`-th, a level shift: learned
        as the forecast too (the change to the new level is no seasonal
        change and no surprise for the network to learn), and the forecaster
        continues from ``y``, its new level."""
        clean = self._clean
        if clean is None or self._last is None:
            return y, None
        f = self._made[1][0]
        z = (math.log(y) if y > 0 else -math.inf) if self._log else y
        e = z - f
        mean_square, n, beyond, _ = clean
        if n < CLEAN_WARMUP:
            if math.isfinite(e):
                clean[0] = mean_square + (e * e - mean_square) / (n + 1)
                clean[1] = n + 1
            return y, None
        bound = GLITCH * math.sqrt(mean_square)
        if not bound > 0:  # no error yet (a constant start): nothing to judge by
            if math.isfinite(e):
                clean[0] = mean_square + SCALE_DECAY * (e * e - mean_square)
            return y, None
        side = 1 if e > bound else -1 if e < -bound else 0
        beyond = beyond + side if side and side * beyond > 0 else side
        clean[2] = beyond
        expected = math.exp(f) if self._log else f
        if side and abs(beyond) < SHIFT_AFTER:
            # a glitch: as if the value were the forecast; the scale grows as
            # by an error at the clip of the smoothing (x1.08), so that a
            # series whose errors grew for good is judged by them in time
            clean[0] = mean_square + SCALE_DECAY * ((CLIP_ERRORS * CLIP_ERRORS - 1.0) * mean_square)
            return expected, None
        if side and abs(beyond) == SHIFT_AFTER and math.isfinite(z):
            return expected, y  # a level shift: the level moves, nothing else learns the jump
        if math.isfinite(e):
            clean[0] = mean_square + SCALE_DECAY * (e * e - mean_square)
        return y, None

    def _shift_level(self, jump: float) -> None:
        """A level shift by ``jump`` (on the modelling scale): the values
        kept for the seasonal naive forecasts, the smoothing's levels and the
        forecasts awaiting their values move with it, as if the series had
        always been at its new level."""
        self._recent += jump
        if self._smoothing is not None:
            self._smoothing.state[0] += jump
        self._combination.origin += jump

    def _margin(self) -> float:
        return MARGIN_WITH_FEATURES if self._features.names else MARGIN

    def _z(self, y: float) -> float:
        """A value on the modelling scale."""
        return math.log(y) if self._log else y

    def _candidates(self, horizon: int, path: np.ndarray, statistical: np.ndarray | None = None) -> np.ndarray:
        """The candidates' forecasts of the next ``horizon`` values on the
        modelling scale (rows: the recurrent ``path``, then each smoothing,
        the last value, the seasonal naive forecasts, and the path without
        the network's surprises, ``statistical``; NaN where one has none)."""
        if not self.combine:
            return path[None, :]
        smoothing, recent, n = self._smoothing, self._recent, self._n_recent
        k = len(smoothing)
        F = np.empty((k + 5, horizon))
        F[0] = path
        F[k + 4] = statistical if statistical is not None else np.nan
        smoothing.forecast(horizon, out=F[1 : k + 1])
        F[k + 1] = recent[(n - 1) % len(recent)]
        m = self._period or 0
        seasonal_naives(recent, n, m, long_period(m) or 0, F, k + 2)
        return F

    def _record(self) -> None:
        """Each candidate's forecasts from this origin, for scoring later."""
        combination = self._combination
        H = combination.horizon
        z = self._z(self._last)
        if not self.combine:
            path = self._recurrent_path(H, None)
            path += z  # (a fresh array: the changes become values in place)
            F = path[None, :]
            given, mixture, choice = combination.combine(F, self._margin())
            combination.record(F, mixture, z)
            self._made = (F, given, choice)
            return
        # the same as _recurrent_path, _candidates, combine and record, in one kernel call
        d, scale = self._departure(H, None)
        rho, last = self._reversion(), self._residuals[3]
        by_phase, seen, phase0 = self._by_phase()
        smoothing = self._smoothing
        m = self._period or 0
        F = np.empty((combination.n_candidates, H))
        given, mixture, choice = np.empty(H), np.empty(H), np.empty(H, dtype=np.int64)
        record_origin(d, NETWORK_GATE * scale, NETWORK_REACH, 0.0 if last is None else last,
                      rho if last is not None else 0.0, by_phase, seen, phase0, z, smoothing.state, smoothing.season,
                      smoothing.season_long, smoothing.n, m, long_period(m) or 0, self._recent, self._n_recent,
                      combination.sq_errors, combination.counts, MIN_COUNT, TRIM, self._margin(), combination.made,
                      combination.origin, combination.unit, combination.t % H, F, mixture, given, choice)
        self._made = (F, given, choice)

    def _observe(self, y: float) -> None:
        """The value ``y`` arrived: score the forecasts made for it, then
        smooth it in."""
        z = math.log(y) if self._log else y
        c, s = self._combination, self._smoothing
        if s is not None:  # the scoring, the smoothing and the ring of recent values: one kernel call
            observe_smoothed(c.made, c.origin, c.unit, c.sq_errors, c.counts, c.abs_errors, c.n_abs, c.t, z, DISCOUNT,
                             THIN, s.params, s.state, s.season, s.season_long, s.n, s.period or 0,
                             s.long_period or 0, CLIP_ERRORS, SCALE_DECAY, SHIFT_AFTER, self._recent, self._n_recent)
            c.t += 1
            s.n += 1
            self._n_recent += 1
            return
        combination_observe(c.made, c.origin, c.unit, c.sq_errors, c.counts, c.abs_errors, c.n_abs, c.t, z, DISCOUNT,
                            THIN)  # (HorizonCombination.observe, its kernel called here)
        c.t += 1
        self._smooth(z)

    def _observe_record(self, y: float) -> None:
        """:meth:`_observe` of ``y``, the last value, then :meth:`_record`,
        with the candidates (in one kernel call, ``observe_record``)."""
        z = math.log(y) if self._log else y
        c, s = self._combination, self._smoothing
        H = c.horizon
        d, scale = self._departure(H, None)  # (reads nothing the observation changes)
        rho, last = self._reversion(), self._residuals[3]
        by_phase, seen, phase0 = self._by_phase()
        m = self._period or 0
        F = np.empty((c.n_candidates, H))
        given, mixture, choice = np.empty(H), np.empty(H), np.empty(H, dtype=np.int64)
        observe_record(c.made, c.origin, c.unit, c.sq_errors, c.counts, c.abs_errors, c.n_abs, c.t, z, DISCOUNT, THIN,
                       s.params, s.state, s.season, s.season_long, s.n, s.period or 0, s.long_period or 0, CLIP_ERRORS,
                       SCALE_DECAY, SHIFT_AFTER, self._recent, self._n_recent, d, NETWORK_GATE * scale,
                       NETWORK_REACH, 0.0 if last is None else last, rho if last is not None else 0.0, by_phase, seen,
                       phase0, m, long_period(m) or 0, MIN_COUNT, TRIM, self._margin(), F, mixture, given, choice)
        c.t += 1
        s.n += 1
        self._n_recent += 1
        self._made = (F, given, choice)

    def _smooth(self, z: float) -> None:
        if self._smoothing is not None:
            self._smoothing.update(z)
        self._recent[self._n_recent % len(self._recent)] = z
        self._n_recent += 1

    def _set_period(self, m: int, source: str) -> None:
        self._period = m
        self._period_from = source
        prior = source in ("given", "calendar")
        self._bases = {"lin": SeasonalBase(m, prior), "log": SeasonalBase(m, prior)}
        self._base_errors = {"lin": 0.0, "log": 0.0}
        self._feedback = np.array([(0, 1), (1, m)], dtype=np.int64)
        # replay the changes seen so far, oldest first, at their phases
        lin = list(self._history["lin"])
        before = self._last - np.cumsum(lin[::-1])[::-1] if lin else []  # the level before each change
        for space, history in self._history.items():
            if space == "log" and not self._positive:
                continue
            n0 = self._n - len(history)
            for i, d in enumerate(history):
                phase = (n0 + i) % m
                self._base_errors[space] += abs(self._relative_error(space, d, phase, before[i]))
                self._bases[space].update(phase, d)
        self._log_pending = self.log_transform == "auto"
        self._decide_scale()
        self._restart_surprises()

    def _decide_scale(self) -> None:
        """With ``log_transform="auto"``, once the seasonal bases have seen
        two periods: the log scale if the series has stayed positive and the
        log base is in use and erred less, relative to the values."""
        if not self._log_pending or self._n < 2 * self._period:
            return
        self._log_pending = False
        log = bool(
            self._positive
            and self._bases["log"].best is not None
            and self._base_errors["log"] < self._base_errors["lin"]
        )
        if log != self._log:
            self._log = log
            self._restart_surprises()

    def _look_for_period(self, x) -> None:
        """``seasonality="auto"``: the natural period of the sampling interval
        of the dates in ``x`` (from its first two), else, at a few points of
        the stream, a peak of the autocorrelation of the changes (a period
        found so is looked for again at each of those points, with more
        cycles seen); a period from the calendar that the base does not use
        yields to the latter."""
        if self._period is None and x and self._n <= 1:
            when = next((v for k, v in sorted(x.items(), key=lambda kv: str(kv[0])) if isinstance(v, dt.date)), None)
            if when is not None:
                if self._first_time is None:
                    self._first_time = when
                else:
                    try:
                        seconds = (_as_datetime(when) - _as_datetime(self._first_time)).total_seconds()
                    except TypeError:  # one date aware of its time zone, the other not
                        return
                    period = calendar_period(seconds)
                    if period is not None:
                        self._set_period(period, "calendar")
                    return
        if self._n in DETECT_AT and (
            self._period is None
            or self._period_from == "autocorrelation"  # looked at again with more cycles
            or (self._period_from == "calendar" and self._bases["lin"].best is None)
        ):
            found = find_period(self._history["lin"])
            if found is not None and found != self._period:
                self._set_period(found, "autocorrelation")

    def _relative_error(self, space: str, d: float, phase: int, level: float) -> float:
        """The base's one-step error on a change from ``level``, relative to
        the value reached, so that the two scales compare."""
        b = self._bases[space].forecast(phase)
        if space == "log":
            return math.exp(b - d) - 1.0
        return (b - d) / max(abs(level + d), sys.float_info.min)  # (a floor of 1e-12 made it scale-dependent)

    def _reversion(self) -> float:
        """The lag-one autocorrelation of the base's residuals where it is
        negative (part of each residual is noise that the next one takes
        back), else 0: the next residual is expected to be this times the
        last one. (``2 S_xy / (S_xx + S_yy)``, which lies in [-1, 1].)"""
        sxy, sxx, syy, _ = self._residuals
        return 2.0 * sxy / (sxx + syy) if sxy < 0 else 0.0

    def _base(self, phase: int) -> float:
        base = self._bases.get(self._space())
        return base.forecast(phase) if base is not None else 0.0

    def _step_input(self, exogenous: np.ndarray, scale: float | None = None) -> np.ndarray:
        """The input of the step whose target comes after the surprises seen
        so far: the last surprise, the one a period before the target, and
        the target time's features (in the network's dtype; ``scale``: that
        of the surprises, when known)."""
        surprises, m = self._surprises, self._period
        if scale is None:
            scale = self._scale()
        u = np.zeros(self._net.input_size, self._net._np_dtype)
        if surprises:
            u[0] = _clip(surprises[-1] / scale)
            if m and len(surprises) >= m:
                u[1] = _clip(surprises[-m] / scale)
        if len(exogenous):
            u[N_BASE_INPUTS : N_BASE_INPUTS + len(exogenous)] = exogenous
        return u

    def _padded(self, u: np.ndarray) -> np.ndarray:
        """``u`` widened to the current inputs (features may have appeared since)."""
        if len(u) == self._net.input_size:
            return u
        wide = np.zeros(self._net.input_size)
        wide[: len(u)] = u
        return wide

    def _exogenous(self, xs: list, learn: bool) -> np.ndarray:
        """Standardised features of the rows ``xs`` (dicts or None)."""
        if not self._features.names and all(x is None for x in xs):
            return np.zeros((len(xs), 0))
        for x in xs:
            if x is not None and type(x) is not dict and not isinstance(x, dict):
                raise ValueError(f"x must be a dict of features or None, got {type(x).__name__}")
        features = self._features
        if learn:
            row = features.known_row(xs[0])  # met in the last forecast's features
            if row is not None:
                return self._x_scaler.transform(row[None, :], update=True)
            if features.register(features.present(xs[0] or {})):
                n = len(features)
                self._x_scaler.grow(n)
                self._net.resize(input_size=N_BASE_INPUTS + n)
        if not features.names:
            return np.zeros((len(xs), 0))
        # (the window's own matrix: transform does not modify it)
        M = features.row(xs[0] or {})[None, :] if learn else features._window_rows(xs)
        return self._x_scaler.transform(M, update=learn)

    def _exogenous_one(self, x) -> np.ndarray:
        """``_exogenous([x], learn=True)[0]``, with the common cases first."""
        if x is None:
            if not self._features.names:
                return _NO_FEATURES
        elif type(x) is dict:
            row = self._features.known_row(x)  # met in the last forecast's features
            if row is not None:
                return self._x_scaler.transform_row(row)
        return self._exogenous([x], learn=True)[0]

    # -------------------------------------------------------------- River

    @exclusive
    def learn_one(self, y: float, x: dict | None = None) -> None:
        if not (isinstance(y, float) and math.isfinite(y)) and (
            isinstance(y, bool) or not isinstance(y, numbers.Real) or not finite(y)
        ):
            raise ValueError(f"y must be a finite real number, got {y!r}")
        y = float(y)
        if not -MAX_ABS_VALUE <= y <= MAX_ABS_VALUE:
            raise ValueError(f"y must lie within ±{MAX_ABS_VALUE:g} (the running sums of squared changes would "
                             f"overflow), got {y!r}")
        if y <= 0 and self.log_transform is True:
            raise ValueError(f"y must be positive with log_transform=True, got {y!r}")
        # x is checked (and standardised) before any state changes, so that a
        # refused call changes nothing (_exogenous_one raises before it changes anything)
        exogenous = self._exogenous_one(x)
        y, level = self._cleaned(y)
        if y <= 0:
            if self._log:
                warnings.warn(f"a value <= 0 ({y!r}): the forecaster leaves the log scale", RuntimeWarning)
                self._log = False
                self._restart_surprises()
            self._positive = False
        if self._last is None:
            self._last = y
            self._observe(y)
            if self.seasonality == "auto":
                self._look_for_period(x)
            self._record()
            return

        previous = self._last
        lin = y - previous
        log = math.log(y) - math.log(previous) if self._positive else None
        m, phase = self._period, self._n % (self._period or 1)
        base = self._bases.get("log" if self._log else "lin")
        r = (log if self._log else lin) - (base.forecast(phase) if base is not None else 0.0)  # the base's residual
        residuals = self._residuals
        last = residuals[3]
        if last is not None:
            w = r - self._reversion() * last
            residuals[0] += r * last
            residuals[1] += last * last
            residuals[2] += r * r
        else:
            w = r
        residuals[3] = r

        surprises = self._surprises
        stats = self._w_stats
        count, sum_sq = stats
        scale = self._scale()
        net = self._net
        u = self._step_input(exogenous, scale)
        target = _clip(w / scale)  # scaled with the statistics before it
        stats[0] = count + 1
        stats[1] = sum_sq + w * w
        surprises.append(w)
        if self.horizon is None:
            if type(net) is SeriesView:
                net._learn_own(u, target)
            else:
                net.learn(u, np.array((target,), net._np_dtype))
        else:
            pending = self._pending
            pending.append(u)
            if len(pending) == self._outputs:  # the oldest input's H targets are all known now
                H = self._outputs
                scale = self._scale()  # (after this step's surprise)
                targets = [_clip(surprises[k] / scale) for k in range(-H, 0)]
                net.learn(self._padded(pending.popleft()), targets)

        history = self._history
        if m:
            # the log base serves while the scale is undecided or log
            bases, pending_scale = self._bases, self._log_pending
            if pending_scale:
                self._base_errors["lin"] += abs(self._relative_error("lin", lin, phase, previous))
            bases["lin"].update(phase, lin)
            history["lin"].append(lin)
            if log is not None:
                if self._log or pending_scale:
                    if pending_scale:
                        self._base_errors["log"] += abs(self._relative_error("log", log, phase, previous))
                    bases["log"].update(phase, log)
                history["log"].append(log)
        else:
            history["lin"].append(lin)
            if log is not None:
                history["log"].append(log)
        self._n += 1
        if level is not None:
            self._shift_level(self._z(level) - self._z(y))
            y = level
        self._last = y
        if self._smoothing is not None and not (m and self._log_pending) and not (
            self.seasonality == "auto" and (self._n <= 1 or self._n in DETECT_AT)
        ):  # (nothing would act between the two)
            self._observe_record(y)
            return
        self._observe(y)
        if m and self._log_pending:
            self._decide_scale()
        if self.seasonality == "auto" and (self._n <= 1 or self._n in DETECT_AT):
            self._look_for_period(x)
        self._record()

    def _check_forecast(self, horizon, xs) -> None:
        if (type(horizon) is not int and not is_integer(horizon)) or horizon < 1:  # an int: no ABC checks
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        if xs is not None and len(xs) < horizon:
            raise ValueError(f"xs must hold the features of each of the {horizon} steps, got {len(xs)}")

    def _combined(self, horizon: int, xs) -> tuple[np.ndarray, np.ndarray]:
        """The combined forecast of the next ``horizon`` values, as changes
        from the last value on the modelling scale, and which forecast is
        given at each step (1: the mixture, 0: the recurrent path)."""
        if not self.combine:
            return self._recurrent_path(horizon, xs), np.zeros(horizon, dtype=np.int64)
        made, given, choice = self._made
        if xs is None and horizon <= made.shape[1]:
            return given[:horizon] - self._z(self._last), choice[:horizon]
        z = self._z(self._last)
        path, statistical = self._recurrent_path(horizon, xs, statistical=True)
        given, _, choice = self._combination.combine(self._candidates(horizon, path + z, statistical + z),
                                                     self._margin())
        return given - self._z(self._last), choice

    def _values(self, d: np.ndarray) -> list[float]:
        """Changes from the last value on the modelling scale, as values."""
        if self._log:
            np.exp(d, out=d)
            d *= self._last
        else:
            d += self._last
        return d.tolist()

    @exclusive
    def forecast(self, horizon: int, xs: list[dict] | None = None) -> list[float]:
        self._check_forecast(horizon, xs)
        if self._last is None:
            return [0.0] * horizon
        return self._values(self._combined(horizon, xs)[0])

    @exclusive
    def forecast_interval(
        self, horizon: int, coverage: float = 0.95, xs: list[dict] | None = None
    ) -> tuple[list[float], list[float]]:
        """Lower and upper bounds of the next ``horizon`` values, each pair
        holding its value with probability ``coverage``: the forecast plus or
        minus a quantile of the forecast's own absolute errors at that
        horizon (split conformal, over the last 100 forecasts made at every
        third step; on the log scale the bounds are
        multiplicative). Infinite while no error at a horizon is known;
        beyond the tracked horizons (two periods, or 12), the last one's
        error grown as the square root of the horizon. Changes nothing.

        Examples
        --------
        90 % intervals of River's bundled WaterFlow series, three hours ahead:

        >>> from river import datasets
        >>> from streamrnn import LSTMForecaster
        >>> model = LSTMForecaster(seed=0)
        >>> for x, y in datasets.WaterFlow():
        ...     model.learn_one(y)
        >>> lower, upper = model.forecast_interval(3, coverage=0.9)
        >>> [round(v, 1) for v in lower], [round(v, 1) for v in model.forecast(3)], [round(v, 1) for v in upper]
        ([103.5, 103.3, 103.2], [104.1, 104.1, 104.1], [104.7, 104.9, 105.1])
        """
        self._check_forecast(horizon, xs)
        if not (isinstance(coverage, numbers.Real) and not isinstance(coverage, bool) and 0 < coverage < 1):
            raise ValueError(f"coverage must be a number between 0 and 1, got {coverage!r}")
        if self._last is None:
            return [-math.inf] * horizon, [math.inf] * horizon
        d, choice = self._combined(horizon, xs)
        q = self._combination.quantiles(choice, float(coverage))
        with np.errstate(invalid="ignore", over="ignore"):
            return self._values(d - q), self._values(d + q)

    def _recurrent_path(self, horizon: int, xs, statistical: bool = False):
        """The recurrent path's forecast of the next ``horizon`` values, as
        changes from the last value on the modelling scale (the running
        sums of base, reversion and the network's surprises); with
        ``statistical``, also the same without the network's surprises."""
        d, scale = self._departure(horizon, xs)
        d = self._gated(d, scale)
        rho, last = self._reversion(), self._residuals[3]
        by_phase, seen, phase0 = self._by_phase()
        s = np.empty(horizon)
        # the running sums of base, reversion and (in d) the network's surprises
        statistical_path(d, s, 0.0 if last is None else last, rho if last is not None else 0.0, by_phase, seen, phase0)
        return (d, s) if statistical else d

    def _by_phase(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The seasonal base's change at each phase, whether each phase has
        been seen (both empty without a base in use), and the phase of the
        next step."""
        m = self._period
        if m:
            base = self._bases.get("log" if self._log else "lin")
            if base is not None and base.weights is not None:
                return base._by_phase, base.seen, self._n % m
        return _NO_FEATURES, _NO_SEEN, self._n % m if m else 0

    def _network_steps(self) -> int | None:
        """The steps of the network's own recurrent forecast run from each
        origin without features: :data:`SHARED_NETWORK_STEPS` on a network
        shared by many series (a key of a
        :class:`~streamrnn.GlobalForecaster`), else all (None)."""
        return SHARED_NETWORK_STEPS if type(self._net) is SeriesView else None

    def _departure(self, horizon: int, xs) -> tuple[np.ndarray, float]:
        """The network's forecast surprises of the next ``horizon`` steps
        (float64, ungated), and the scale they are on; beyond
        :meth:`_network_steps` steps (without ``xs``), none: the departure
        reached there is held."""
        steps = self._network_steps()
        run = horizon  # the steps the network runs (the departure reached is held after)
        if steps is not None and horizon > steps and xs is None and self.horizon is None:
            run = steps
        m = self._period
        surprises = self._surprises
        scale = self._scale()
        if self.horizon is not None:
            d = self._direct(horizon, xs) * scale
        else:
            net = self._net
            U = np.zeros((run, net.input_size), net._np_dtype)
            if surprises:
                U[0, 0] = _clip(surprises[-1] / scale)
            if m and len(surprises) >= m:
                # step k's seasonal input is the surprise m steps before it:
                # known for k < m, fed back from the forecast after that
                known = min(run, m)
                start = len(surprises) - m
                if known <= _FEW:  # (a few values: in Python, as the kernel would)
                    for k in range(known):
                        U[k, 1] = _clip(surprises[start + k] / scale)
                else:
                    seasonal = np.fromiter(surprises if start == 0 else itertools.islice(surprises, start, None),
                                           np.float64, known)
                    scaled_column(U, 1, seasonal, scale, CLIP)  # (np.clip, exactly: NaN and -0.0 kept)
            if xs is not None:  # without xs, every feature is missing: 0 once standardised
                rows = xs[:horizon] if type(xs) is list else list(itertools.islice(xs, horizon))
                features = self._features
                if features.names:  # _exogenous(rows, False), inline
                    for x in rows:
                        if type(x) is not dict and x is not None and not isinstance(x, dict):
                            raise ValueError(f"x must be a dict of features or None, got {type(x).__name__}")
                    ex = self._x_scaler.transform(features._window_rows(rows), update=False)
                    U[:, N_BASE_INPUTS : N_BASE_INPUTS + ex.shape[1]] = ex
                else:
                    self._exogenous(rows, False)  # no features: only validates rows
            # (z * scale, with z the network's outputs as float64)
            # (U and the feedback pairs are built here, of the network's dtype and width)
            z = net._forecast_own(U, self._feedback)[:, 0]
            if run == horizon:
                d = np.multiply(z, scale, dtype=np.float64)
            else:  # zeros beyond: the departure held
                d = np.zeros(horizon)
                np.multiply(z, scale, out=d[:run], dtype=np.float64)
        return d, scale

    def _gated(self, d: np.ndarray, scale: float) -> np.ndarray:
        """The network's forecast surprises ``d`` (one per step, float64),
        their running sums kept (in place) within :data:`NETWORK_GATE` times
        ``sqrt(k)`` times their ``scale`` and within :data:`NETWORK_REACH`
        times the root mean squared error of the path without the network
        where it has been scored."""
        combination = self._combination
        if self.combine and combination is not None:
            c = combination.n_candidates - 1  # the path without the network
            sq, counts = combination.sq_errors[c], combination.counts[c]
        else:
            sq = counts = _NO_FEATURES
        gate_departure(d, NETWORK_GATE * scale, NETWORK_REACH, sq, counts, MIN_COUNT)
        return d

    def _direct(self, horizon: int, xs) -> np.ndarray:
        """Direct forecasts: replay the steps the network has not learned yet
        from its state, then the step of the first forecast; its outputs are
        the scaled surprises of the next H steps."""
        if horizon > self._outputs:
            raise ValueError(f"horizon must be at most {self._outputs} with direct forecasts, got {horizon}")
        x = xs[0] if xs is not None else None
        ex = self._exogenous([x], learn=False)[0] if (x is not None or self._features.names) else np.zeros(0)
        U = np.array([self._padded(u) for u in self._pending] + [self._step_input(ex)])
        return self._net.forecast(U)[-1, :horizon].astype(np.float64)


class RNNForecaster(RecurrentForecaster):
    """Elman RNN (tanh) forecaster; see :class:`RecurrentForecaster`."""

    _cell = "rnn"


class GRUForecaster(RecurrentForecaster):
    """GRU forecaster; see :class:`RecurrentForecaster`.

    Examples
    --------
    One-step-ahead forecasts of River's bundled hourly WaterFlow series, each
    made before its value is learned, against persistence:

    >>> from river import datasets, metrics
    >>> from streamrnn import GRUForecaster
    >>> model, mae, persistence, last = GRUForecaster(seed=0), metrics.MAE(), metrics.MAE(), None
    >>> for x, y in datasets.WaterFlow():
    ...     if last is not None:
    ...         mae.update(y, model.forecast(1, [x])[0])
    ...         persistence.update(y, last)
    ...     model.learn_one(y, x)
    ...     last = y
    >>> mae, persistence
    (MAE: 0.6254, MAE: 0.6310)
    """

    _cell = "gru"


class LSTMForecaster(RecurrentForecaster):
    """LSTM forecaster; see :class:`RecurrentForecaster`.

    Examples
    --------
    After River's bundled monthly airline passenger counts (1949-1960), the
    forecaster has found the yearly period from the dates and chosen the log
    scale; its forecast for 1961:

    >>> from river import datasets
    >>> from streamrnn import LSTMForecaster
    >>> model = LSTMForecaster(seed=0)
    >>> for x, y in datasets.AirlinePassengers():
    ...     model.learn_one(y, x)
    >>> model.period, model.log_scale
    (12, True)
    >>> print([round(v) for v in model.forecast(horizon=12)])
    [449, 424, 475, 492, 510, 584, 672, 669, 560, 500, 432, 480]
    """

    _cell = "lstm"


for _cls in (RNNForecaster, GRUForecaster, LSTMForecaster):  # a Parameters section of its own for help() (the bases are not exported)
    document(_cls)
del _cls
