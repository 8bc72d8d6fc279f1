"""Recurrent anomaly detectors implementing River's ``anomaly.base.AnomalyDetector``."""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
from river.base import AnomalyDetector

from .checks import check_integer, finite
from .estimator import build_network
from .features import FeatureSpace, RunningScaler
from .guard import Guarded, exclusive
from .kernels import scoring as S
from .anomaly_season import SeasonalErrors
from ._docs import document

#: The score of a point that is not scored (in the grace period, with a
#: missing value, or the first of a stream): no scored point scores 0.
NOT_SCORED = S.NOT_SCORED
#: The default alarm threshold: an alarm at tail probability ``Q = 1e-3``.
THRESHOLD = S.THRESHOLD


def _rows(X: pd.DataFrame):
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"X must be a pandas DataFrame, got {type(X).__name__}")
    for row in X.to_dict(orient="records"):
        yield {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def _same_point(a: dict, b: dict) -> bool:
    """Whether ``a`` and ``b`` hold the same features with the same values
    (each value the same object or equal: a missing value, NaN or NA, is
    the same point only as the same object)."""
    if a.keys() != b.keys():
        return False
    for k, v in a.items():
        w = b[k]
        if v is w:
            continue
        try:
            if not bool(v == w):
                return False
        except TypeError:  # (pd.NA)
            return False
    return True


class PredictiveDetector(Guarded, AnomalyDetector):
    """Scores each point by how unlikely its value and the recurrent
    network's error in predicting it are, as a tail probability.

    The network sees the last change of every feature (divided by its running
    root mean square) and predicts the next ones; it learns from every point.
    A point's raw score is the logarithm of one plus the root mean square of
    its prediction errors. Its evidence is ``-log10(Q) / 30`` (capped at 1)
    for the smallest of five tail probabilities ``Q``:

    - of the raw score, under an exponential tail fitted above the level
      ``u = mean + sd`` of the raw scores' long-run distribution (the rate of
      raw scores above ``u`` times ``exp(-excess / mean excess)``: peaks over a
      threshold, as in extreme value theory; exponentially weighted past
      ``long_halflife`` points), so that on every series about a fraction
      ``Q`` of usual points reach ``Q``;
    - of the mean of the last ``short_window`` raw scores, under the same
      model fitted to those means (Numenta's anomaly likelihood averages raw
      scores the same way): a sustained rise of the errors;
    - of a value beyond the range of the ``n`` values seen so far by ``e``
      range widths: ``(n + 1) ** -(1 + e)`` (one-sided, as the error tails:
      the last of ``n + 1`` exchangeable values is their maximum with
      probability ``1 / (n + 1)``; under an exponential tail the excess
      scales with the range): a value out of its usual range, however
      smoothly it got there. The factor ``1 / (n + 1)`` counts at a
      breakout only, when none of the feature's last ``short_window``
      values was beyond its range; within an excursion ``Q = (n + 1) **
      -e``, so a series creeping to a new record at every step raises one
      alarm, and a leap beyond the excursion another;
    - for the alarms, once the stream shows a period that predicts (a peak
      of the changes' autocorrelation, whose seasonal base beats the median
      of the last three values by 10 %), of the point's difference from its
      seasonal base, the last period's mean plus the median deviation at the
      same phase in the last three periods, under tail models of their own
      (:class:`~streamrnn.anomaly_season.SeasonalErrors`): a periodic
      stream that changes shape (a flattened day, a jump that does not come)
      shows no unusual change, but differs from its usual day;
    - for the alarms, of a value beyond the range of the last ``W`` values,
      ``W`` = 4,096, 8,192 or 16,384, each once that many were seen: ``(W +
      1) ** -(1 + e)`` at a breakout, ``(W + 1) ** -e`` within an
      excursion, as the range since the start, times ``(J + 1) F``
      (Bonferroni: the ``J`` windows counting, the range since the start,
      the ``F`` features): on a long stream whose level moved, a drop inside
      the range of all the values seen but beyond every recent one
      (:func:`~streamrnn.kernels.scoring.recent_log10`).

    For the alarms, an error's ``Q`` is at least the fraction of the errors
    seen since the grace period that were as large: errors that recur (a
    daily jump of a square wave) stop raising alarms once they are usual.

    **The reported score** lies in [0, 1] and reads as a probability:

    - an **alarm** is a point whose evidence reaches ``2 / 30`` (Q <= 0.01)
      and exceeds that of each of the ``short_window`` points before it,
      none of which was an alarm at :data:`THRESHOLD` (a run of unusual
      points raises one alarm, and another only when the evidence grows,
      and at the threshold only ``short_window`` points after the last:
      under River's ``ThresholdFilter`` one alarm is one flag); it scores ``0.5 + evidence / 2``, so at least 0.533.
      :data:`THRESHOLD` (0.55) is an alarm at ``Q = 1e-3``, 0.6 one at
      ``Q = 1e-6``: on a stationary stream, whatever its scale, period,
      noise or number of features, a threshold ``t >= 0.55`` flags about a
      fraction ``Q`` of the points (one to two per 1,000 at 0.55 in the
      tests);
    - every **other** point scores below 0.5: half the probability that a
      stream without anomalies (independent, uniform tail probabilities)
      would have a memory no greater than this point's. The memory is the
      largest evidence seen since the grace period, the point's own
      included, fading by half every ``alarm_memory`` points; besides the
      error tails and the range, it takes the tail probability of a
      **quiet stretch**: how calm the last 100 changes were (the root mean
      square of the scaled changes) under a tail model of its own, at
      least ``1 / (n + 1)`` for ``n`` seen (a stalled service or a market
      gone quiet shows no unusual value; its run is unusual). So a long
      anomaly, loud or quiet, keeps scoring near 0.5 while it lasts and
      for a while after;
      a stream long calm scores near 0; and the quiet points spread over
      (0, 0.5), about uniformly (successive tail probabilities are not
      quite independent): River's ``QuantileFilter(q=0.995)`` flags about
      0.5 % of the points and its ``ROCAUC`` with 10 thresholds ranks them;
    - a point **not scored** (the first of a stream, the
      ``grace_period`` after it, a point with a missing value) scores
      :data:`NOT_SCORED`, 0.0, which no scored point reports (they score at
      least 1e-12). River's ``ThresholdFilter`` never flags it; its
      ``QuantileFilter``, comparing with ``>=``, flags it while 0.0 is all
      it has seen (the warm-up).

    A point scored by ``score_one`` and then withheld from ``learn_one``
    (River's filters withhold the points they flag, unless
    ``protect_anomaly_detector=False``) is learned when the next, different
    point is scored: the history of changes has no hole, so a level shift
    raises one alarm, not one per later point. To score points without
    learning them, use ``score_many``. (A saved or copied detector keeps no
    withheld point.)

    Parameters
    ----------
    cell
        ``"lstm"``, ``"gru"`` or ``"rnn"``.
    hidden_size, num_layers, k1, k2, optimizer, lr, clip_norm, dtype, device, seed
        Those of the underlying :class:`~streamrnn.OnlineRNN`, with this
        class's defaults (hidden 16, ``k1`` 4).
    short_window
        Raw scores averaged into the recent error, and points whose evidence
        a reported score must exceed.
    long_halflife
        Half-life, in points, of the raw scores' long-run statistics.
    alarm_memory
        Half-life, in points, of the memory that scores the points raising
        no alarm.
        The default, 200, is the length of a window of the Numenta Anomaly
        Benchmark's protocol on its typical series (10 % of 4,000 points
        shared by two anomalies): about how long an incident's aftermath
        lasts there.
    grace_period
        Points not scored (:data:`NOT_SCORED`) while the statistics settle.

    Notes
    -----
    Features are the numeric values of ``x`` (a new feature gets an input
    and an output, and restarts the ranges). A point with a missing (None,
    NaN) or infinite value, or with no feature at all, is not learned
    (``n_skipped`` counts it) and is not scored; a non-numeric value raises
    ``ValueError``. ``score_one`` changes nothing, but for learning a point
    scored before and withheld (above). With several features,
    the range evidence is that of the feature furthest out of its range.
    A feature named NaN (unequal to itself) raises ``ValueError``.

    Not thread-safe: a call from a second thread while one is inside raises
    :class:`~streamrnn.guard.ConcurrentUseError`.

    Examples
    --------
    Hourly water flow through a pipeline, with drops (maintenance, losses)
    and a pumping peak. The highest scores fall on sudden changes; one
    hour is an alarm at Q <= 1e-3; the first 101 hours are not scored.

    >>> from river import datasets
    >>> from streamrnn.anomaly import NOT_SCORED, THRESHOLD, PredictiveDetector
    >>> detector = PredictiveDetector(seed=0)
    >>> scores, flows = [], []
    >>> for x, y in datasets.WaterFlow():
    ...     scores.append(detector.score_one({"flow": y}))
    ...     detector.learn_one({"flow": y})
    ...     flows.append(y)
    >>> for i in sorted(range(len(scores)), key=scores.__getitem__)[::-1][:3]:
    ...     print(f"hour {i}: {flows[i - 1]:.1f} -> {flows[i]:.1f} l/s, score {scores[i]:.3f}")
    hour 873: 91.3 -> 55.8 l/s, score 0.554
    hour 329: 102.7 -> 109.7 l/s, score 0.543
    hour 212: 95.3 -> 24.3 l/s, score 0.542
    >>> sum(s >= THRESHOLD for s in scores), sum(s == NOT_SCORED for s in scores), len(scores)
    (1, 101, 1268)
    """

    #: for states saved before the parameter existed
    alarm_memory = 200
    #: whether the detector keeps seasonal errors (the reconstruction detector does not)
    _seasonal = True
    #: whether the detector keeps a quiet state (the reconstruction detector does not)
    _quiet_kept = True
    #: whether the detector keeps recent ranges (the reconstruction detector does not)
    _recent_kept = True

    def __init__(
        self,
        cell: str = "lstm",
        hidden_size: int = 16,
        num_layers: int = 1,
        k1: int = 4,
        k2: int = 16,
        optimizer: str = "adam",
        lr: float = 1e-3,
        clip_norm: float | None = 1.0,
        short_window: int = 10,
        long_halflife: int = 1000,
        alarm_memory: int = 200,
        grace_period: int = 100,
        dtype: str = "float32",
        device: str = "cpu",
        seed: int | None = None,
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.lr = lr
        self.clip_norm = clip_norm
        self.short_window = short_window
        self.long_halflife = long_halflife
        self.alarm_memory = alarm_memory
        self.grace_period = grace_period
        self.dtype = dtype
        self.device = device
        self.seed = seed
        check_integer("short_window", short_window)
        check_integer("long_halflife", long_halflife)
        check_integer("alarm_memory", alarm_memory)
        check_integer("grace_period", grace_period, low=0)
        # zero head: the first predictions are "no change"
        self._net = build_network(self, cell, "squared", input_size=1, output_size=1, zero_head=True)
        self._features = FeatureSpace()
        self._st = self._new_state(0)
        if self._seasonal:
            self._season = SeasonalErrors(self._new_state(0), 0)
        if self._quiet_kept:
            self._quiet = np.zeros(S.QUIET_SIZE)
        if self._recent_kept:
            self._recent_ranges = np.zeros(S.recent_size(0))
        self._has_last = False
        self._input = np.zeros(1)  # the scaled changes the last prediction was made from
        self._n_skipped = 0
        self._scale_kept = True  # st holds the changes' scales (earlier: their sums of squares)

    def _new_state(self, n_features: int, old: np.ndarray | None = None) -> np.ndarray:
        k = self.short_window
        st = np.zeros(S.state_size(k, n_features))
        if old is not None:  # keep the score statistics; the per-feature history restarts
            keep = S.stats_size(k)
            st[:keep] = old[:keep]
            st[S.S_N] = 0
        st[S.S_ALPHA] = 1.0 - 0.5 ** (1.0 / self.long_halflife)
        st[S.S_WINDOW] = k
        st[S.S_DECAY] = 0.5 ** (1.0 / self.alarm_memory)
        st[S.S_GRACE] = self.grace_period
        return st

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._st = S.with_seen_counts(self._st, len(self._features))  # saved before they were kept
        self._st = S.with_calm_counts(self._st, len(self._features))  # saved before they were kept
        if self._st[S.S_DECAY] == 0.0:  # saved before the memory: that slot held a background
            self._st[S.S_DECAY] = 0.5 ** (1.0 / self.alarm_memory)
            self._st[S.S_GRACE] = self.grace_period
            self._st[S.S_MEMORY] = 0.0
        if not self._seasonal:  # (saved when every detector carried them, unused)
            self.__dict__.pop("_season", None)
        elif "_season" not in state:  # saved before the seasonal errors: none seen yet
            self._season = SeasonalErrors(self._new_state(len(self._features)), len(self._features))
        if not self._quiet_kept:
            self.__dict__.pop("_quiet", None)
        elif "_quiet" not in state:  # saved before the quiet state: no change seen yet
            self._quiet = np.zeros(S.QUIET_SIZE)
        if not self._recent_kept:
            self.__dict__.pop("_recent_ranges", None)
        elif "_recent_ranges" not in state:  # saved before the recent ranges: none seen yet
            self._recent_ranges = np.zeros(S.recent_size(len(self._features)))
        if not state.get("_scale_kept"):  # saved when the changes' sums of squares were kept
            S.sums_of_squares_to_scales(self._st, len(self._features))
            self._scale_kept = True

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k2": 4, "grace_period": 5, "seed": 1}
        yield {"cell": "gru", "hidden_size": 3, "short_window": 3, "grace_period": 0}

    # -------------------------------------------------------------- helpers

    def _complete(self, x: dict) -> bool:
        """Validate ``x``; False if a value is missing or infinite, or if
        ``x`` has no feature."""
        if not isinstance(x, dict):
            raise ValueError(f"x must be a dict of features, got {type(x).__name__}")
        complete = bool(x)
        for k, v in x.items():
            if type(v) is float or type(v) is int:  # the common case, without the ABC checks below
                if not finite(v):  # (an int beyond the floats: infinite)
                    complete = False
            elif v is None or v is pd.NA:
                complete = False
            elif isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ValueError(f"feature {k!r} must be a real number, got {v!r}")
            elif not finite(v):
                complete = False
        return complete

    def _row(self, x: dict) -> np.ndarray | None:
        """The known features of a validated ``x`` in column order, or None
        if one is absent (features ``x`` adds are ignored)."""
        try:
            return np.array([x[name] for name in self._features.names], dtype=np.float64)
        except KeyError:
            return None

    def _values(self, x: dict) -> np.ndarray | None:
        """The known features of ``x``, or None if one is missing."""
        if not self._complete(x) or not self._has_last:
            return None
        return self._row(x)

    def _grow(self, x: dict) -> None:
        if len(x) == len(self._features.names) and all(k in self._features.index for k in x):
            return  # the common case: no new feature
        new = self._features.unseen(x)  # (NaN-like names refused here)
        if new:
            n = len(self._features) + len(new)
            if n > self._net.input_size:  # first: should it fail, nothing has changed
                self._net.resize(input_size=n, output_size=n)
            self._features.register(new)
            self._st = self._new_state(n, self._st)
            self._season = SeasonalErrors(self._new_state(n), n)
            if self._recent_kept:
                self._recent_ranges = np.zeros(S.recent_size(n))
            self._has_last = False  # the history restarts with the new feature
            self._input = np.zeros(n)

    # ---------------------------------------------------------------- River

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_withheld", None)  # a point awaiting learning is no part of the model
        return state

    @exclusive
    def learn_one(self, x: dict) -> None:
        self._withheld = None
        self._learn(x)

    @exclusive
    def score_one(self, x: dict) -> float:
        withheld = getattr(self, "_withheld", None)
        if withheld is not None and not _same_point(withheld, x):  # scored, then withheld from learn_one
            self._withheld = None
            self._learn(withheld)
        score = self._score(x)
        # (a point with a missing value has nothing to learn: never withheld)
        self._withheld = dict(x) if score != NOT_SCORED or self._complete(x) else None
        return score

    @exclusive
    def learn_many(self, X: pd.DataFrame) -> None:
        """``learn_one`` on each row of ``X`` in order (NaN cells are missing values)."""
        self._withheld = None
        for x in _rows(X):
            self._learn(x)

    @exclusive
    def score_many(self, X: pd.DataFrame) -> np.ndarray:
        """The score of each row of ``X`` against the current model (a point
        withheld after ``score_one`` stays withheld; rows are never learned)."""
        return np.array([self._score(x) for x in _rows(X)], dtype=np.float64)

    def _learn(self, x: dict) -> None:
        if not self._complete(x):
            self._n_skipped += 1
            return
        self._grow(x)
        values = self._row(x)
        if values is None:  # a known feature is absent
            self._n_skipped += 1
            return
        if not self._has_last:
            S.restart_history(self._st, values)
            self._has_last = True
            self._season.record(values)
            S.recent_record(self._st, self._recent_ranges, values)
            return
        z = np.empty(len(values))
        S.point_with(self._st, values, z, self._other_news(values), self._quiet, True)
        self._season.record(values)
        S.recent_record(self._st, self._recent_ranges, values)
        z = z.astype(self._net.dtype)  # in the network's dtype, its calls convert nothing
        self._net.learn(self._input, z)
        self._input = z
        S.set_prediction(self._st, self._net.predict(z))

    def _score(self, x: dict) -> float:
        values = self._values(x)
        if values is None or self._st[S.S_SCORED] < max(self.grace_period, 1):
            return NOT_SCORED
        return S.point_with(self._st, values, np.empty(len(values)), self._other_news(values), self._quiet, False)

    def _other_news(self, values: np.ndarray) -> float:
        """``-log10 Q`` of ``values`` for the alarms beyond the errors and the
        range since the start: the larger of the seasonal error's and of the
        recent ranges' records."""
        return max(self._season.log10(values), S.recent_log10(self._st, self._recent_ranges, values))

    @property
    def n_skipped(self) -> int:
        """Points not learned because a value was missing or infinite."""
        return self._n_skipped


class ReconstructionDetector(PredictiveDetector):
    """Scores each point by how badly a recurrent autoencoder reconstructs the
    sliding window that ends at it.

    Every feature is standardised online (clipped to 10 standard
    deviations). At each point the network reads the point and, from its
    hidden state alone, reconstructs the last ``window`` points (all
    features): the state is the code of the window, its size the bottleneck.
    A point's raw score is the logarithm of one plus the root mean square of
    the reconstruction errors, calibrated and reported exactly as the
    prediction errors of :class:`PredictiveDetector` (tail probabilities of
    the raw score, of the recent error and of a value out of its range; the
    refractory rule and the memory), whose other parameters and input
    policy it shares.

    Parameters
    ----------
    window
        Points reconstructed at each step.
    """

    _seasonal = False  # (its alarms take the reconstruction errors and the range alone)
    _quiet_kept = False  # (its memory too)
    _recent_kept = False  # (nor its alarms)

    def __init__(
        self,
        cell: str = "lstm",
        hidden_size: int = 16,
        num_layers: int = 1,
        k1: int = 4,
        k2: int = 16,
        optimizer: str = "adam",
        lr: float = 1e-3,
        clip_norm: float | None = 1.0,
        window: int = 16,
        short_window: int = 10,
        long_halflife: int = 1000,
        alarm_memory: int = 200,
        grace_period: int = 100,
        dtype: str = "float32",
        device: str = "cpu",
        seed: int | None = None,
    ):
        check_integer("window", window)
        self.window = window
        super().__init__(cell, hidden_size, num_layers, k1, k2, optimizer, lr, clip_norm, short_window,
                         long_halflife, alarm_memory, grace_period, dtype, device, seed)
        self._net = build_network(self, cell, "squared", input_size=1, output_size=window)
        self._scaler = RunningScaler()
        self._recent_z = np.zeros((window, 0))  # the window's scaled points, oldest first

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k2": 4, "window": 3, "grace_period": 5, "seed": 1}
        yield {"cell": "rnn", "hidden_size": 3, "window": 2, "grace_period": 0}

    def _grow(self, x: dict) -> None:
        if len(x) == len(self._features.names) and all(k in self._features.index for k in x):
            return  # the common case: no new feature
        new = self._features.unseen(x)  # (NaN-like names refused here)
        if new:
            n = len(self._features) + len(new)
            # first: should it fail, nothing has changed
            self._net.resize(input_size=max(n, self._net.input_size), output_size=self.window * n)
            self._features.register(new)
            self._scaler.grow(n)
            self._st = self._new_state(n, self._st)
            self._has_last = False  # the ranges restart with the new feature
            self._recent_z = np.zeros((self.window, n))  # the window restarts

    def _learn(self, x: dict) -> None:
        if not self._complete(x):
            self._n_skipped += 1
            return
        self._grow(x)
        values = self._row(x)
        if values is None:  # a known feature is absent
            self._n_skipped += 1
            return
        z = self._scaler.transform_row(values)
        target = np.empty(self._net.output_size)
        S.slide_window(self._recent_z, z, target)
        reconstruction = self._net.learn(self._input_for(z), target)
        raw = S.reconstruction_error(reconstruction, self._recent_z, z, False)
        if self._has_last:
            S.record_raw_values(self._st, values, raw)
        else:  # the ranges start at this point
            S.restart_history(self._st, values)
            S.record_raw(self._st, raw)
            self._has_last = True

    def _input_for(self, z: np.ndarray) -> np.ndarray:
        u = np.zeros(self._net.input_size)
        u[: len(z)] = z
        return u

    def _score(self, x: dict) -> float:
        values = self._values(x)
        if values is None or self._st[S.S_SCORED] < max(self.grace_period, 1):
            return NOT_SCORED
        z = self._scaler.transform(values[None, :], update=False)[0]
        reconstruction = self._net.predict(self._input_for(z))
        return S.score_raw(self._st, values, S.reconstruction_error(reconstruction, self._recent_z, z, True))


for _cls in (PredictiveDetector, ReconstructionDetector):  # a Parameters section of its own for help() (the bases are not exported)
    document(_cls)
del _cls
