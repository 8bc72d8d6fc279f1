"""Combining several forecasts of a series horizon by horizon, with weights
from each one's past errors at that horizon, and prediction intervals from
the forecast's own past errors (split conformal, per horizon).

At every step the forecaster records each candidate's forecasts of the next
``horizon`` values (:meth:`HorizonCombination.record`); when a value arrives,
the forecasts made for it ``h`` steps earlier are scored
(:meth:`HorizonCombination.observe`). At horizon ``h`` the candidates'
mixture weighs each one by the inverse square of its discounted mean squared
error there (:data:`DISCOUNT` per step: about the last hundred forecasts
count), relative to the best one's: a candidate that errs half as much takes
sixteen times the weight; those with fewer than :data:`MIN_COUNT` scored
forecasts, or more than :data:`TRIM` times the best one's error, take none.
The mixture is scored as well, and the forecast given at ``h`` is the
mixture only where its mean squared error there is below :data:`MARGIN`
times the first candidate's (the forecaster's own recurrent path): the
mixture has to earn its place, horizon by horizon.

Intervals: the absolute errors of the forecast given at each horizon are
kept for the last :data:`WINDOW` forecasts; the interval of coverage ``c`` is
the forecast plus or minus the ``ceil((n + 1) c)``-th smallest of the ``n``
kept errors (the largest while fewer than ``1 / (1 - c) - 1`` are kept), so
that on a stationary series a new value falls inside with probability ``c``.
"""

from __future__ import annotations

import math

import numpy as np

from .kernels import combination as K

#: Discount of past squared errors per step.
DISCOUNT = 0.99
#: Scored forecasts (discounted count) a candidate needs before it is weighed.
MIN_COUNT = 24.0
#: Candidates whose mean squared error exceeds the best one's this many times take no weight.
TRIM = 2.0
#: The mixture is given at a horizon where its mean squared error there is
#: below this fraction of the first candidate's: a clear gain, not a chance
#: one (at 1.0, forecasts of WaterFlow with its dates as features chased the
#: mixture's lucky spells: mean error over 12 hours 3.77 against 3.09).
MARGIN = 0.5
#: Absolute errors of the forecast given kept per horizon, for intervals.
WINDOW = 100


class HorizonCombination:
    """Per-horizon weights of ``n_candidates`` forecasts and the errors of
    their combination.

    Parameters
    ----------
    n_candidates
        The number of candidate forecasts.
    horizon
        The horizons tracked, 1..``horizon``; beyond it the weights and
        errors of the last one serve.

    Examples
    --------
    Two candidates: one forecasts the truth plus noise of size 1, the other
    of size 3. Each step records both forecasts of the next 4 values and then
    observes the value; the better candidate takes nearly all the weight, and
    the 90 % interval covers about 90 % of later values.

    >>> import numpy as np
    >>> from streamrnn.combination import HorizonCombination
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(size=3000)
    >>> comb, inside = HorizonCombination(2, horizon=4), []
    >>> for t in range(2999):
    ...     future = truth[t + 1 : t + 5]
    ...     noise = rng.normal(size=(2, len(future))) * [[1.0], [3.0]]
    ...     forecasts = np.full((2, 4), np.nan)
    ...     forecasts[:, : len(future)] = future + noise
    ...     given, mixture = comb.combine(forecasts)
    ...     if t > 500:
    ...         lo, hi = comb.interval(given[:1], 0.9)
    ...         inside.append(lo[0] <= truth[t + 1] <= hi[0])
    ...     comb.record(forecasts, mixture, given)
    ...     comb.observe(truth[t + 1])
    >>> bool(comb.weights(4)[0].min() > 0.9)
    True
    >>> round(float(np.mean(inside)), 2)
    0.9
    """

    def __init__(self, n_candidates: int, horizon: int):
        self.n_candidates = n_candidates
        self.horizon = horizon
        # the forecasts made at the last `horizon` origins (row: origin modulo
        # horizon; then candidate, combined last; then step ahead)
        # the forecasts made at the last `horizon` origins (row: origin modulo
        # horizon; then the candidates, their mixture and the forecast given;
        # then the step ahead)
        self.made = np.full((horizon, n_candidates + 2, horizon), np.nan)
        # discounted sums of squared errors and counts: candidates, then the mixture
        self.sq_errors = np.zeros((n_candidates + 1, horizon))
        self.counts = np.zeros((n_candidates + 1, horizon))
        self.abs_errors = np.full((horizon, WINDOW), np.nan)  # the forecast given's, ring per horizon
        self.n_abs = np.zeros(horizon, dtype=np.int64)  # errors written per horizon
        self.t = 0  # values observed (origins recorded)

    def weights(self, horizon: int) -> np.ndarray | None:
        """The weights of each candidate in the mixture at horizons
        1..``horizon``, shape ``(n_candidates, horizon)`` (the last tracked
        horizon's beyond the tracked ones), or None while no candidate has
        been scored enough."""
        C = self.n_candidates
        ok = self.counts[:C] >= MIN_COUNT
        if not ok.any():
            return None
        mse = np.full((C, self.horizon), np.inf)
        np.divide(self.sq_errors[:C], self.counts[:C], out=mse, where=ok)
        best = mse.min(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = best / mse
        ratio[mse == best] = 1.0
        ratio[mse > TRIM * best] = 0.0
        w = ratio * ratio
        w[:, ~np.isfinite(best)] = 0.0
        w /= np.where(w.sum(axis=0) > 0, w.sum(axis=0), 1.0)
        if horizon > self.horizon:
            w = np.concatenate([w, np.repeat(w[:, -1:], horizon - self.horizon, axis=1)], axis=1)
        return w[:, :horizon]

    def combine(self, forecasts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The forecast to give and the candidates' mixture, from their
        ``forecasts`` (shape ``(n_candidates, horizon)``, float64; NaN where
        a candidate has none)."""
        mixture = np.empty(forecasts.shape[1])
        out = np.empty(forecasts.shape[1])
        K.combination_combine(self.sq_errors, self.counts, forecasts, MIN_COUNT, TRIM, MARGIN, mixture, out)
        return out, mixture

    def record(self, forecasts: np.ndarray, mixture: np.ndarray, given: np.ndarray) -> None:
        """Keep the forecasts made now of the next ``horizon`` values (the
        first ``horizon`` columns; missing ones NaN)."""
        row = self.made[self.t % self.horizon]
        H = self.horizon
        row[: self.n_candidates] = forecasts[:, :H]
        row[-2] = mixture[:H]
        row[-1] = given[:H]

    def observe(self, z: float) -> None:
        """The next value arrived: score the forecasts made for it."""
        K.combination_observe(self.made, self.sq_errors, self.counts, self.abs_errors, self.n_abs, self.t, z,
                              DISCOUNT)
        self.t += 1

    def quantiles(self, horizon: int, coverage: float) -> np.ndarray:
        """The conformal quantile of the forecast given's absolute errors
        at horizons 1..``horizon`` (inf where none is known; beyond the
        tracked horizons, the last one's grown as the square root of the
        horizon)."""
        q = np.full(self.horizon, np.inf)
        for h in range(self.horizon):
            n = int(min(self.n_abs[h], WINDOW))
            if n:
                k = min(math.ceil((n + 1) * coverage), n)
                q[h] = np.partition(self.abs_errors[h, :n], k - 1)[k - 1]
        if horizon <= self.horizon:
            return q[:horizon]
        extra = q[-1] * np.sqrt(np.arange(self.horizon + 1, horizon + 1) / self.horizon)
        return np.concatenate([q, extra])

    def interval(self, given: np.ndarray, coverage: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds around the forecasts ``given``."""
        q = self.quantiles(len(given), coverage)
        return given - q, given + q
