"""Seasonality for the forecasters: finding a series' period online, and a
seasonal base forecast of its changes that the network improves on."""

from __future__ import annotations

import numpy as np

#: Smoothing constants the seasonal base chooses from, online.
GAMMAS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
#: The seasonal base is used once its errors are this fraction of those of
#: forecasting no change, or less: a clear gain, not a chance one.
MARGIN = 0.9


def detect_period(changes, min_period: int = 3, max_period: int = 400, threshold: float = 0.5) -> int | None:
    """The lag, at least ``min_period``, of the highest peak of the
    autocorrelation of ``changes``, if it reaches ``threshold`` and at least
    two periods were seen; otherwise None. (The autocorrelation is the
    biased estimate, which shrinks long lags towards zero: a period needs
    about three cycles of evidence before it clears the threshold.)

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
    peaks = [
        lag for lag in range(min_period, max_lag + 1)
        if acf[lag] > acf[lag - 1] and (lag == max_lag or acf[lag] >= acf[lag + 1])
    ]
    if not peaks:
        return None
    lag = max(peaks, key=lambda k: acf[k])
    return lag if acf[lag] >= threshold else None


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
    component, on the changes). It forecasts with the constant whose one-step
    errors have been smallest so far, or forecasts no change unless the
    constant's errors are :data:`MARGIN` of those of no change or less: a
    period found by mistake then does little harm."""

    def __init__(self, period: int):
        self.period = period
        self.means = np.zeros((len(GAMMAS), period))
        self.seen = np.zeros(period, dtype=bool)
        self.errors = np.zeros(len(GAMMAS))
        self.no_change_error = 0.0
        self._gammas = np.array(GAMMAS)

    @property
    def best(self) -> int | None:
        """Index of the constant in use, or None when forecasting no change."""
        best = int(np.argmin(self.errors))
        return best if self.errors[best] < MARGIN * self.no_change_error else None

    def forecast(self, phase: int) -> float:
        """The change expected at ``phase``."""
        best = self.best
        return float(self.means[best, phase]) if best is not None and self.seen[phase] else 0.0

    def forecast_phases(self, phases: np.ndarray) -> np.ndarray:
        """The changes expected at each of ``phases``."""
        best = self.best
        if best is None:
            return np.zeros(len(phases))
        return np.where(self.seen[phases], self.means[best, phases], 0.0)

    def update(self, phase: int, change: float) -> None:
        if self.seen[phase]:
            column = self.means[:, phase]
            self.errors += np.abs(column - change)
            self.no_change_error += abs(change)
            column += self._gammas * (change - column)
        else:
            self.means[:, phase] = change
            self.seen[phase] = True
