"""What a recurrent regressor's network learns of its target: its level, its
change over the last revealed target, or (``"auto"``) both, the forecast
being, row by row, the candidate with the smallest recent absolute error
among the level head, the change head and no change at all.

Like the forecasters (:mod:`streamrnn.forecasting`), the change is learned
over a robust scale and from a zero head, so that an untrained change head
forecasts no change exactly: on a persistent series (the next value near the
last one) a regressor then starts at no-change and drifts from it only where
its network's changes have erred less.
"""

from __future__ import annotations

import math

import numpy as np

from .checks import check_choice
from .features import CLIP, GUARD_WARMUP

#: What the network learns: ``"auto"``, ``"level"`` or ``"change"``.
MODES = ("auto", "level", "change")
#: Each candidate's error is a running mean of its absolute errors over the
#: last rows, about this many (the mean of all of them until then).
ERROR_SPAN = 100
#: The candidates of ``"auto"``, in the order they win ties.
CHANGE, NO_CHANGE, LEVEL = 0, 1, 2
#: A head of the network forecasts only while its running error is below
#: this fraction of no-change's (no change, the simpler forecast, wins
#: near-ties: switching between near-equal candidates costs more than it gains).
MARGIN = 0.98


def check_mode(mode) -> str:
    return check_choice("model_change", mode, MODES)


class TargetChange:
    """The target side of a regressor that may model the change of its target.

    Per row, from the level ``y``, its standardised level ``z`` (NaN for a
    glitch, which is not learned) and the *base* ``b``, the last revealed
    target that was not a glitch (NaN before there is one), the network's
    targets are: the level ``z`` (modes ``"level"`` and ``"auto"``); the
    change ``(y - b) / s`` clipped to ±10 (modes ``"change"`` and
    ``"auto"``; 0 without a base), where ``s`` is the running mean absolute
    change, each change entering it capped at 10 ``s`` after the first 20
    (a mean robust to the rare jump). ``"auto"`` forecasts with whichever of
    the level ``mean + std * out[0]``, the change ``b + s * out[1]`` and no
    change ``b`` has the smallest running mean absolute error
    (:data:`ERROR_SPAN`), scored on every learned row with a base, a head
    of the network only where it errs clearly less than no change
    (:data:`MARGIN`); over the first 20 scored rows, no change.

    Examples
    --------
    >>> target = TargetChange("auto")
    >>> target.outputs
    2
    >>> target.forecast_many(np.array([[0.5, 0.7]]), base=3.0, mean=0.0, std=2.0)  # no score yet: no change
    array([3.])
    """

    def __init__(self, mode: str = "auto"):
        self.mode = check_mode(mode)
        self.changes = [0, 0.0]  # count and sum of the (capped) absolute changes
        self.errors = [0.0, 0.0, 0.0]  # running mean absolute errors of change, no change and level
        self.n_scored = 0

    @property
    def outputs(self) -> int:
        return 2 if self.mode == "auto" else 1

    def scale(self) -> float:
        """The running mean absolute change (1 before there is one)."""
        count, total = self.changes
        return total / count if count > 0 and total > 0 else 1.0

    def choice(self) -> int:
        """The candidate that forecasts now (of ``"auto"``)."""
        if self.n_scored < GUARD_WARMUP:
            return NO_CHANGE
        e = self.errors
        best = CHANGE if e[CHANGE] <= e[LEVEL] else LEVEL
        return best if e[best] < MARGIN * e[NO_CHANGE] else NO_CHANGE

    def forecast_many(self, out: np.ndarray, base: float, mean: float, std: float) -> np.ndarray:
        """The forecasts from the network's outputs ``out`` (float64, a row
        per forecast), all from the same base and scales."""
        if self.mode == "level" or not math.isfinite(base):
            return mean + std * out[:, 0] if self.mode != "change" else np.full(len(out), mean)
        if self.mode == "change":
            return base + self.scale() * out[:, 0]
        choice = self.choice()
        if choice == CHANGE:
            return base + self.scale() * out[:, 1]
        return np.full(len(out), base) if choice == NO_CHANGE else mean + std * out[:, 0]

    def forecast_one(self, out: list, base: float, mean: float, std: float) -> float:
        """:meth:`forecast_many` of one row of outputs (floats)."""
        if self.mode == "level" or base != base:
            return mean + std * out[0] if self.mode != "change" else mean
        if self.mode == "change":
            return base + self.scale() * out[0]
        choice = self.choice()
        if choice == CHANGE:
            return base + self.scale() * out[1]
        return base if choice == NO_CHANGE else mean + std * out[0]

    @staticmethod
    def _candidates(out, base, mean, std, scale) -> tuple:
        return base + scale * out[1], base, mean + std * out[0]

    def targets(self, y: float, z: float, base: float) -> tuple:
        """The network's targets for a row; then the change joins the scale."""
        if self.mode == "level":
            return (z,)
        if not math.isfinite(z):
            change = math.nan
        elif not math.isfinite(base):
            change = 0.0
        else:
            s = self.scale()
            d = abs(y - base)
            change = min(max((y - base) / s, -CLIP), CLIP)
            if self.changes[0] >= GUARD_WARMUP:
                d = min(d, CLIP * s)
            self.changes[0] += 1
            self.changes[1] += d
        return (change,) if self.mode == "change" else (z, change)

    def score(self, out, y: float, z: float, base: float, mean: float, std: float, scale: float) -> None:
        """Score the candidates on a learned row, from the outputs the
        network gave before learning it (floats) and the scales before it."""
        if self.mode != "auto" or z != z or base != base:
            return
        self.n_scored += 1
        rate = 1.0 / min(self.n_scored, ERROR_SPAN)
        errors = self.errors
        for i, c in enumerate(self._candidates(out, base, mean, std, scale)):
            e = abs(y - c)
            errors[i] += rate * ((e if e < 1e300 else 1e300) - errors[i])
