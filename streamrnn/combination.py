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
mixture only where its mean squared error there is below a margin (by
default :data:`MARGIN`, 1) times the first candidate's (the forecaster's own recurrent path): the
mixture has to earn its place, horizon by horizon.

Intervals: the absolute errors of the first candidate and of the mixture at
each horizon are kept for their last :data:`WINDOW` forecasts made at every
:data:`THIN`-th origin; the interval of coverage ``c`` is the forecast given
plus or minus the ``ceil((n + 1) c)``-th smallest of the ``n`` errors kept
of the one given there (the largest while fewer than ``1 / (1 - c) - 1``
are kept), so that on a stationary series a new value falls inside with
probability ``c``.
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
#: below this fraction of the first candidate's (by default).
MARGIN = 1.0
#: Absolute errors kept per horizon, for intervals, of every :data:`THIN`-th
#: origin: errors at long horizons of neighbouring origins share most of
#: their cause. (The last 100 origins' errors at each horizon: the 95 %
#: intervals of a noisy sine covered 0.905-0.95 of the values by horizon;
#: the last 300 origins': 0.934-0.955.)
WINDOW = 100
THIN = 3


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
    ...     given, mixture, choice = comb.combine(forecasts)
    ...     if t > 500:
    ...         lo, hi = comb.interval(given[:1], choice[:1], 0.9)
    ...         inside.append(lo[0] <= truth[t + 1] <= hi[0])
    ...     comb.record(forecasts, mixture)
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
        # horizon; then the candidates and their mixture; then the step ahead)
        # (as float32 changes from the value at the origin, `origin`, in units
        # of the row's largest change, `unit`: half the memory, and neither
        # overflow nor underflow at any scale of the series)
        self.made = np.full((horizon, n_candidates + 1, horizon), np.nan, dtype=np.float32)
        self.origin = np.full(horizon, np.nan)
        self.unit = np.ones(horizon)
        # discounted sums of squared errors and counts: candidates, then the mixture
        self.sq_errors = np.zeros((n_candidates + 1, horizon))
        self.counts = np.zeros((n_candidates + 1, horizon))
        # absolute errors of the first candidate and of the mixture, a ring per horizon
        self.abs_errors = np.full((2, horizon, WINDOW), np.nan)
        self.n_abs = np.zeros((2, horizon), dtype=np.int64)  # errors written per horizon
        self.t = 0  # values observed (origins recorded)

    def __setstate__(self, state: dict) -> None:
        """Refuse a state whose arrays the kernels would index out of bounds
        (an edited file)."""
        C, H, t = state.get("n_candidates"), state.get("horizon"), state.get("t")
        if not (type(C) is int and C >= 1 and type(H) is int and H >= 1 and type(t) is int and t >= 0):
            raise ValueError("the combination's candidates, horizon and count must be positive integers")
        for name, shape, dtype in (
            ("made", (H, C + 1, H), np.float32),
            ("origin", (H,), np.float64),
            ("unit", (H,), np.float64),
            ("sq_errors", (C + 1, H), np.float64),
            ("counts", (C + 1, H), np.float64),
            ("abs_errors", (2, H, WINDOW), np.float64),
            ("n_abs", (2, H), np.int64),
        ):
            a = state.get(name)
            if not (type(a) is np.ndarray and a.dtype == dtype and a.shape == shape and a.flags.c_contiguous):
                raise ValueError(f"the combination's {name} must be a {dtype.__name__} array of shape {shape}")
        if np.any(state["n_abs"] < 0) or np.any(state["counts"] < 0) or np.any(state["sq_errors"] < 0):
            raise ValueError("the combination's counts and sums of squares must not be negative")
        self.__dict__.update(state)

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

    def combine(self, forecasts: np.ndarray, margin: float = MARGIN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The forecast to give, the candidates' mixture, and which of the
        two is given at each horizon (1: the mixture, 0: the first
        candidate), from their ``forecasts`` (shape ``(n_candidates,
        horizon)``, float64; NaN where a candidate has none): the mixture
        where its mean squared error is below ``margin`` times the first
        candidate's, or where the first candidate has not been scored
        enough. Where no candidate has been, the mixture is the last
        candidate's forecast (the forecasters' path without the network)."""
        horizon = forecasts.shape[1]
        mixture, out = np.empty(horizon), np.empty(horizon)
        choice = np.empty(horizon, dtype=np.int64)
        K.combination_combine(self.sq_errors, self.counts, forecasts, MIN_COUNT, TRIM, margin, self.n_candidates - 1,
                              mixture, out, choice)
        return out, mixture, choice

    def record(self, forecasts: np.ndarray, mixture: np.ndarray, at: float = 0.0) -> None:
        """Keep the forecasts made now of the next ``horizon`` values (the
        first ``horizon`` columns; missing ones NaN), the value now being
        ``at`` (they are kept as float32 changes from it: a change beyond
        the row's largest; NaN forecasts stay NaN)."""
        H = self.horizon
        if forecasts.shape != (self.n_candidates, forecasts.shape[1]) or forecasts.shape[1] < H or len(mixture) < H:
            raise ValueError(f"record takes the forecasts of {self.n_candidates} candidates over at least {H} steps")
        K.combination_record(self.made, self.origin, self.unit, self.t % H, np.ascontiguousarray(forecasts, np.float64),
                             np.ascontiguousarray(mixture, np.float64), float(at))

    def observe(self, z: float) -> None:
        """The next value arrived: score the forecasts made for it."""
        K.combination_observe(self.made, self.origin, self.unit, self.sq_errors, self.counts, self.abs_errors, self.n_abs, self.t, z,
                              DISCOUNT, THIN)
        self.t += 1

    def quantiles(self, choice: np.ndarray, coverage: float) -> np.ndarray:
        """At each horizon 1..``len(choice)``, the conformal quantile of the
        absolute errors of the forecast given there (``choice``: 1 the
        mixture's, 0 the first candidate's); inf where none is known; beyond
        the tracked horizons, the last one's grown as the square root of the
        horizon."""
        H = self.horizon
        q = np.empty(len(choice))
        for h, ring in enumerate(choice.tolist()):
            j = min(h, H - 1)
            n = int(min(self.n_abs[ring, j], WINDOW))
            if n:
                k = min(math.ceil((n + 1) * coverage), n)
                q[h] = np.partition(self.abs_errors[ring, j, :n], k - 1)[k - 1]
                if h >= H:
                    q[h] *= math.sqrt((h + 1) / H)
            else:
                q[h] = np.inf
        return q

    def interval(self, given: np.ndarray, choice: np.ndarray, coverage: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds around the forecasts ``given``."""
        q = self.quantiles(choice, coverage)
        return given - q, given + q
