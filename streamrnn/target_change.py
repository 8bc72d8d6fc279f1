"""What a recurrent regressor's network learns of its target: its level, its
change over the last revealed target, or (``"auto"``) both, the forecast
being, row by row, the candidate with the smallest recent absolute error
among the level head, the change head and no change at all (no change
unless a head errs clearly less).

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
from .features import CLIP, GUARD_WARMUP, RunningScaler
from .kernels import sequential as K
from .smoothing import SHIFT_AFTER

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
        self.changes = np.zeros(2)  # count and sum of the (capped) absolute changes
        self.errors = np.zeros(3)  # running mean absolute errors of change, no change and level
        self.scored = np.zeros(1, dtype=np.int64)  # rows scored

    @property
    def outputs(self) -> int:
        return 2 if self.mode == "auto" else 1

    def scale(self) -> float:
        """The running mean absolute change (1 before there is one)."""
        count, total = self.changes.tolist()
        return total / count if count > 0 and total > 0 else 1.0

    def choice(self) -> int:
        """The candidate that forecasts now (of ``"auto"``)."""
        if self.scored[0] < GUARD_WARMUP:
            return NO_CHANGE
        e = self.errors.tolist()
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

    def learn_targets(self, y_scaler: RunningScaler, scaled: bool, y: np.ndarray, carried: np.ndarray) -> tuple:
        """The network's targets ``T`` for the targets ``y`` (float64) of
        one entity in order, their revealed-target inputs ``R`` (from the
        entity's ``carried`` standardised targets and base, which move on)
        and what scoring them needs; the target's statistics (of
        ``y_scaler``, with ``scaled``) and the change scale take them in."""
        n = len(y)
        T, R, seen = np.empty((n, self.outputs)), np.empty((n, len(carried) - 1)), np.empty((n, 5))
        mode = {"level": K.LEVEL, "change": K.CHANGE, "auto": K.AUTO}[self.mode]
        K.regression_targets(y_scaler.stats, y_scaler.beyond, float(y_scaler.glitch), float(y_scaler.glitch_out),
                             GUARD_WARMUP, SHIFT_AFTER, CLIP, bool(scaled), mode, y, carried, self.changes,
                             T, R, seen)
        return T, R, seen

    def score(self, out: np.ndarray, y: np.ndarray, seen: np.ndarray) -> None:
        """Score the candidates on learned rows, from the outputs the
        network gave before learning them and ``seen`` (of :meth:`learn_targets`)."""
        if self.mode == "auto":
            K.score_candidates(out, y, seen, self.errors, self.scored, ERROR_SPAN)
