"""Seasonality for the forecasters: finding a series' period online, and a
seasonal base forecast of its changes that the network improves on."""

from __future__ import annotations

import collections

import numpy as np

from .kernels.combination import seasonal_base_update, seasonal_weights


#: Smoothing constants the seasonal base weighs, online.
GAMMAS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
#: The seasonal base is used once its errors are this fraction of those of
#: forecasting no change, or less: a clear gain, not a chance one.
MARGIN = 0.9


def detect_period(changes, min_period: int = 3, max_period: int = 400, threshold: float = 0.5) -> int | None:
    """The lag, at least ``min_period``, of the highest peak of the
    autocorrelation of ``changes``, if it reaches ``threshold`` and at least
    two periods were seen; otherwise None. (The autocorrelation is the
    biased estimate, which shrinks long lags towards zero: a period needs
    about three cycles of evidence before it clears the threshold; the peak's
    place is then taken from the unbiased estimate, which does not shift it.)

    Examples
    --------
    >>> import numpy as np
    >>> from river import datasets
    >>> from streamrnn.seasonal import detect_period
    >>> y = np.array([v for _, v in datasets.AirlinePassengers()])
    >>> detect_period(np.diff(y[:37]))  # three years of monthly values
    12
    >>> y = np.array([v for _, v in datasets.TrumpApproval()])
    >>> detect_period(np.diff(y)) is None
    True
    """
    d = np.asarray(changes, dtype=np.float64)
    n = len(d)
    max_lag = min(max_period, n // 2)
    if max_lag < min_period:
        return None
    d = d - d.mean()
    var = float(d @ d)
    if var <= 0:
        return None
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(d, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1] / var
    # a peak: short-range persistence (an autocorrelation that decays from
    # lag 1) is not a period
    if min_period >= 1:  # vectorised: acf[lag] > acf[lag - 1] and (lag == max_lag or acf[lag] >= acf[lag + 1])
        at = acf[min_period:]
        is_peak = at > acf[min_period - 1 : max_lag]
        is_peak[:-1] &= at[:-1] >= acf[min_period + 1 :]
        peaks = np.flatnonzero(is_peak)
        if not peaks.size:
            return None
        lag = min_period + int(peaks[np.argmax(at[peaks])])  # the first highest, as max() would pick
    else:
        values = acf.tolist()
        peaks = [
            lag for lag in range(min_period, max_lag + 1)
            if values[lag] > values[lag - 1] and (lag == max_lag or values[lag] >= values[lag + 1])
        ]
        if not peaks:
            return None
        lag = max(peaks, key=lambda k: values[k])
    if acf[lag] < threshold:
        return None
    # The biased estimate shrinks each lag by (n - lag) / n, which moves a
    # peak to shorter lags when few cycles were seen (two days of hourly
    # changes peaked at 23): the peak is the nearest local maximum of the
    # unbiased estimate.
    unbiased = acf / (n - np.arange(max_lag + 1))
    while lag < max_lag and unbiased[lag + 1] > unbiased[lag]:
        lag += 1
    while lag > min_period and unbiased[lag - 1] > unbiased[lag]:
        lag -= 1
    return int(lag)


#: The natural periods of common sampling intervals, in seconds: a day of
#: hours, a week of days, a year of weeks, months or quarters, an hour of minutes.
CALENDAR_PERIODS = (
    (60, 60),
    (3600, 24),
    (86400, 7),
    (7 * 86400, 52),
    (30.44 * 86400, 12),
    (91.31 * 86400, 4),
)


def calendar_period(seconds: float) -> int | None:
    """The natural period for a sampling interval of ``seconds`` (within
    10 %), or None.

    >>> calendar_period(3600), calendar_period(31 * 86400), calendar_period(17)
    (24, 12, None)
    """
    for interval, period in CALENDAR_PERIODS:
        if abs(seconds - interval) <= 0.1 * interval:
            return period
    return None


def find_period(changes) -> int | None:
    """A period of the series whose changes are given: from the
    autocorrelation of the changes or, failing that, of the series itself
    (rebuilt from them, without its linear trend), which shows smooth cycles
    that noise hides in the changes."""
    if isinstance(changes, collections.deque):  # a forecaster's history: faster than np.asarray
        d = np.fromiter(changes, np.float64, len(changes))
    else:
        d = np.asarray(changes, dtype=np.float64)
    period = detect_period(d)
    if period is None and len(d) > 2:
        level = np.cumsum(d)
        t = np.arange(len(level), dtype=np.float64)
        period = detect_period(level - np.polyval(np.polyfit(t, level, 1), t))
    return period


class SeasonalBase:
    """Per-phase exponentially weighted means of a series' changes, one set
    per smoothing constant in :data:`GAMMAS` (Holt-Winters' seasonal
    component, on the changes).

    The constants' forecasts are averaged with weights that follow the
    evidence: the likelihood of each constant's one-step errors under
    Laplace errors whose scale is the best constant's mean error,
    ``exp(-(E_k - E_min) / (E_min / n))`` for summed errors ``E`` over ``n``
    steps. While errors tie (each phase seen once more), that is their plain
    mean; with evidence, it tends to the single best constant. The base
    forecasts no change unless the best constant's errors are :data:`MARGIN`
    of those of no change or less: a period found by mistake then does
    little harm. With ``prior`` (a period known beforehand: given, or read
    from the dates), the base is trusted from the end of its first period,
    before its errors can be compared with those of no change.

    Examples
    --------
    >>> from streamrnn.seasonal import SeasonalBase
    >>> base = SeasonalBase(3, prior=True)
    >>> for t, change in enumerate([1.0, -2.0, 1.0]):
    ...     base.update(t % 3, change)
    >>> base.forecast(0), base.forecast(1)
    (1.0, -2.0)
    >>> SeasonalBase(3).forecast(0)  # no evidence and no prior: no change
    0.0
    """

    def __init__(self, period: int, prior: bool = False):
        self.period = period
        self.prior = prior
        self.means = np.zeros((len(GAMMAS), period))
        self.seen = np.zeros(period, dtype=bool)
        self.errors = np.zeros(len(GAMMAS))
        self.no_change_error = 0.0
        self.n_errors = 0  # steps whose errors were compared
        self._gammas = np.array(GAMMAS)
        self._weights: np.ndarray | None = None
        self._by_phase: np.ndarray | None = None  # the weights' forecast at each phase
        self._stale = True
        self._all_seen = False

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_weights"], state["_stale"] = None, True  # a cache
        state.pop("_by_phase", None)
        return state

    @property
    def weights(self) -> np.ndarray | None:
        """The weight of each constant, or None when forecasting no change."""
        if self._stale:
            self._refresh()
        return self._weights

    def _refresh(self) -> None:
        """The weights, and the change they forecast at each phase."""
        w = self._weights = self._compute_weights()
        self._by_phase = None if w is None else w @ self.means
        self._stale = False

    def _compute_weights(self) -> np.ndarray | None:
        if self.n_errors == 0:
            if self.prior and self.seen.all():
                return np.full(len(GAMMAS), 1.0 / len(GAMMAS))
            return None
        # exp(-(e - lowest) * (n / lowest)), normalised, or None: one kernel
        # call (a handful of values, where each NumPy call costs more)
        w = np.empty(len(self.errors))
        return w if seasonal_weights(self.errors, self.no_change_error, self.n_errors, MARGIN, w) else None

    @property
    def best(self) -> int | None:
        """Index of the constant of highest weight, or None when forecasting no change."""
        w = self.weights
        return None if w is None else int(np.argmax(w))

    def forecast(self, phase: int) -> float:
        """The change expected at ``phase``."""
        if self._stale:
            self._refresh()
        by_phase = self._by_phase
        return float(by_phase[phase]) if by_phase is not None and self.seen[phase] else 0.0

    def forecast_phases(self, phases: np.ndarray) -> np.ndarray:
        """The changes expected at each of ``phases``."""
        if self._stale:
            self._refresh()
        by_phase = self._by_phase
        if by_phase is None:
            return np.zeros(len(phases))
        if self._all_seen:
            return by_phase[phases]
        return np.where(self.seen[phases], by_phase[phases], 0.0)

    def update(self, phase: int, change: float) -> None:
        self._stale = True
        # |change - mean| adds to each constant's errors, and the mean moves
        # by gamma times (change - mean) (one kernel call: a dozen NumPy ones cost more)
        if seasonal_base_update(self.means, self.seen, self.errors, self._gammas, phase, change):
            self.no_change_error += abs(change)
            self.n_errors += 1
        else:
            self._all_seen = bool(self.seen.all())
