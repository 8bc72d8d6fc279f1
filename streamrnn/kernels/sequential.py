"""The target side of a regressor that feeds its revealed targets back and
may model their change (:mod:`streamrnn.target_change`), row by row: one
kernel for single rows and batches so both give identical results."""

import math

from numba import njit
import numpy as np

from .. import config
from .scaling import standardize_rows

# No fast-math: the same arithmetic as the scalar Python of the forecasts
# made from these figures.
_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy")

#: Modes of :class:`~streamrnn.target_change.TargetChange`, as the kernel takes them.
LEVEL, CHANGE, AUTO = 0, 1, 2


@njit(**_JIT)
def regression_targets(stats, beyond, glitch, glitch_out, warmup, shift_after, clip, scaled, mode,
                       y, carried, changes, T, R, seen):
    """For each target ``y[i]`` in order: its revealed-target inputs into
    ``R[i]`` (the carried standardised targets, latest first, 0 for none),
    its standardised level ``z`` (``stats`` then updated; NaN for a glitch,
    not learned), the network's targets into ``T[i]`` (the level ``z``, the
    change over the carried base on the scale of the running mean absolute
    change ``changes = [count, sum]`` clipped to ``±clip``, 0 without a
    base, NaN for a glitch; each change enters the scale capped at ``clip``
    scales after ``warmup`` of them) and, into ``seen[i]``, the base, the
    target's mean and standard deviation, and the change scale before it,
    and ``z``. ``carried`` (``len(R[i])`` standardised targets then the base)
    moves on past each target that is not a glitch."""
    k = carried.shape[0] - 1
    row = np.empty((1, 1))
    out = np.empty((1, 1))
    for i in range(y.shape[0]):
        base = carried[k]
        for j in range(k):
            v = carried[j]
            R[i, j] = v if v == v else 0.0
        yi = y[i]
        if scaled:
            count, mean, root = stats[0, 0], stats[1, 0], stats[2, 0]
            std = root / np.sqrt(max(count, 1.0)) if count > 1 and root > 0 else 0.0
            row[0, 0] = yi
            standardize_rows(stats, row, out, True, clip, beyond, glitch, glitch_out, warmup, shift_after)
            z = out[0, 0]
        else:
            mean, std, z = 0.0, 1.0, yi
        s = changes[1] / changes[0] if changes[0] > 0 and changes[1] > 0 else 1.0
        if mode != LEVEL:
            if z != z:
                change = math.nan
            elif base != base:
                change = 0.0
            else:
                d = abs(yi - base)
                change = min(max((yi - base) / s, -clip), clip)
                if changes[0] >= warmup:
                    d = min(d, clip * s)
                changes[0] += 1.0
                changes[1] += d
        if mode == LEVEL:
            T[i, 0] = z
        elif mode == CHANGE:
            T[i, 0] = change
        else:
            T[i, 0] = z
            T[i, 1] = change
        seen[i, 0] = base
        seen[i, 1] = mean
        seen[i, 2] = std
        seen[i, 3] = s
        seen[i, 4] = z
        if z == z:
            for j in range(k - 1, 0, -1):
                carried[j] = carried[j - 1]
            if k > 0:
                carried[0] = z
            carried[k] = yi


@njit(**_JIT)
def score_candidates(out, y, seen, errors, scored, span):
    """Score the candidates of ``"auto"`` (change head, no change, level
    head) on learned rows with a base that are no glitch, from the outputs
    ``out`` the network gave before learning them (float32 as learned) and
    ``seen`` (:func:`regression_targets`): running mean absolute errors
    ``errors`` over the last ``span`` rows (all of them until then);
    ``scored[0]`` counts the rows scored."""
    for i in range(y.shape[0]):
        base, mean, std, s, z = seen[i, 0], seen[i, 1], seen[i, 2], seen[i, 3], seen[i, 4]
        if z != z or base != base:
            continue
        scored[0] += 1
        rate = 1.0 / min(scored[0], span)
        o0 = np.float64(out[i, 0])
        o1 = np.float64(out[i, 1])
        for c in range(3):
            if c == 0:
                forecast = base + s * o1
            elif c == 1:
                forecast = base
            else:
                forecast = mean + std * o0
            e = abs(y[i] - forecast)
            errors[c] += rate * ((e if e < 1e300 else 1e300) - errors[c])
