"""The seasonal errors of the anomaly detectors: how unlike the same phase of
the last periods a point is, once the stream shows a period."""

from __future__ import annotations

import numpy as np

from .kernels import scoring as S
from .seasonal import find_period

#: Points after which the period is looked for (again): those of the
#: forecasters, then every 1,024 up to the history's length.
LOOK_AT = frozenset({24, 36, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 3072, 4096})
#: Values kept to look for the period in (none once past the last look).
HISTORY = max(LOOK_AT)
#: Periods whose values at a phase make its seasonal base (their median).
CYCLES = 3


class SeasonalErrors:
    """Tail probabilities of the difference between each point and its
    seasonal base, once the stream's changes show a period (a peak of their
    autocorrelation, :func:`streamrnn.seasonal.find_period`, looked for at
    the points of :data:`LOOK_AT`): the base is the level (the mean of the
    last period's values) plus the median of the deviations from their
    level at the same phase in the last three periods (an additive
    decomposition, as classical seasonal adjustment makes).

    A periodic stream that changes shape (a flattened day, a square wave
    whose jump does not come, a day shifted up) shows no unusual change from
    one point to the next, but differs from the same phase of the last
    periods. The differences, over their running root mean square, make a
    raw score calibrated as the prediction errors are (the tail models and
    the news rule of :mod:`streamrnn.kernels.scoring`, with statistics of
    their own, and their own grace period). They count for the alarms only,
    and only while the seasonal base is a clear gain
    (:data:`~streamrnn.kernels.scoring.SEASONAL_MARGIN`) over the median of
    the last three values: a peak of the autocorrelation is not enough; the
    period must predict. The median of three periods rather than the last
    one: an anomalous period does not echo as a second anomaly a period
    later, and noise weighs less; deviations from the level rather than
    values: after a level shift the base follows within a period.

    Parameters
    ----------
    st
        An empty scoring state for the stream's features (the detector's
        window, half-lives and grace period), copied whenever the
        statistics restart.
    n_features
        The stream's number of features.

    Attributes
    ----------
    period
        The period in use, or None.
    """

    def __init__(self, st: np.ndarray, n_features: int):
        self.empty = st.copy()
        self.n_features = n_features
        self.period = None
        self.n = 0
        self.phase = 0
        self.cycle = 0
        self.history = np.zeros((HISTORY, n_features))  # value i at row i % HISTORY
        self.st = st.copy()
        self.ring = np.zeros((0, CYCLES, n_features))
        self.recent = np.zeros((CYCLES, n_features))
        self.local = np.zeros(n_features)
        self.level = np.zeros(n_features)
        self.last_period = np.zeros((0, n_features))

    def log10(self, values: np.ndarray) -> float:
        """``-log10 Q`` of the seasonal error of ``values``, for the alarms
        (0 while no period counts)."""
        if self.period is None:
            return 0.0
        return S.seasonal_log10(self.st, self.ring, self.phase, self.level, self.local, values)

    def record(self, values: np.ndarray) -> None:
        """Add ``values``, the next point."""
        if self.period is not None:
            S.seasonal_record(self.st, self.ring, self.phase, self.cycle % CYCLES, self.recent, self.local,
                              self.level, self.last_period, values)
            self.phase += 1
            if self.phase == self.period:
                self.phase = 0
                self.cycle += 1
        if self.n < HISTORY:
            self.history[self.n] = values
        self.n += 1
        if self.n in LOOK_AT:
            self._look_for_period()
        if self.n >= HISTORY and len(self.history):
            self.history = np.zeros((0, self.n_features))  # no look left

    def _look_for_period(self) -> None:
        rows = self.history[: self.n]
        with np.errstate(over="ignore", invalid="ignore"):  # (values near the largest floats)
            changes = np.diff(rows, axis=0)
            changes = np.nan_to_num(changes, posinf=np.finfo(float).max, neginf=-np.finfo(float).max)
            for _ in range(2):  # over the largest, then over the root mean square: at any scale
                size = np.sqrt((changes * changes).mean(axis=0)) if _ else np.abs(changes).max(axis=0)
                changes = changes / np.where(size > 0, size, 1.0)
        period = find_period(changes.mean(axis=1))
        if period is None or period == self.period:
            return
        # The statistics restart; the ring holds the last CYCLES periods
        # (the earliest repeated while fewer were seen), slot 0 the oldest,
        # phase 0 the next point's.
        self.period = period
        self.st = self.empty.copy()
        n = len(rows)
        # each value's level: the mean of the period before it (of the first period, early on)
        levels = np.empty_like(rows)
        for i in range(n):
            start = min(max(i - period, 0), n - period)
            levels[i] = rows[start : start + period].mean(axis=0)
        deviations = rows - levels
        ring = np.empty((period, CYCLES, self.n_features))
        for c in range(CYCLES):
            first = max(n - (CYCLES - c) * period, n % period)
            ring[:, c, :] = deviations[first : first + period]
        self.ring = ring
        self.last_period = rows[-period:].copy()
        self.level = self.last_period.mean(axis=0)
        self.phase = 0
        self.cycle = 0
        self.recent = rows[-CYCLES:].copy()  # oldest first: the first replaced
        self.local = np.zeros(self.n_features)
