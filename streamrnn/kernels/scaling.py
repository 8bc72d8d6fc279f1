"""Online standardisation of feature vectors (Welford's running mean and
variance), one kernel for single rows and batches so both give identical
results."""

import math

from numba import njit

from .. import config
from .scoring import FLOAT_MAX

# No fast-math: re-associated, ``x / n - mean / n`` becomes ``(x - mean) / n``,
# the overflow the update avoids (and a scalar loop gains nothing from it).
_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy")

#: The rows of the statistics: count, mean, root of the sum of squared deviations.
COUNT, MEAN, ROOT = range(3)


@njit(**_JIT)
def standardize_rows(stats, X, out, update, clip, beyond, glitch, glitch_out, warmup, shift_after):
    """Standardise the rows of ``X`` into ``out``, in order.

    ``stats`` is float64 ``(3, F)``: count, mean and root of the sum of
    squared deviations per feature (kept as a root, which neither values as
    large as the floats overflow nor tiny ones underflow: a sum of squares
    overflowed beyond deviations of ~1e154 and left the feature's scale
    infinite for good). A value is scaled with the
    statistics of the values before it, ``(x - mean) / std``, clipped to
    ``[-clip, clip]`` (0 while fewer than two values were seen; with a zero
    root — equal values — 0 for a value equal to the mean and ``±clip`` for
    any other); then, when ``update``, it joins the statistics (Welford's
    update; where ``x - mean`` overflows, the mean moves by ``x / n - mean /
    n`` and the root is capped at the largest float). NaN marks a missing
    value: it gives 0 and is not counted.

    With ``glitch > 0`` (a guarded column), once ``warmup`` values were
    counted, a value beyond ``glitch`` standard deviations from the mean
    gives ``glitch_out`` and is not counted, unless it is the
    ``shift_after``-th in a row beyond them on one side (a level shift:
    counted from then on); ``beyond`` (float64 ``(F,)``) holds the signed
    count of the last values beyond them, all on one side.
    """
    for t in range(X.shape[0]):
        for j in range(X.shape[1]):
            out[t, j] = standardize_value(stats, beyond, j, X[t, j], update, clip, glitch, glitch_out, warmup,
                                          shift_after)


@njit(**_JIT)
def standardize_value(stats, beyond, j, x, update, clip, glitch, glitch_out, warmup, shift_after):
    """The value ``x`` of column ``j`` standardised as :func:`standardize_rows`
    does (and, when ``update``, joined to the statistics)."""
    # (elements indexed in two dimensions: a row taken as a view costs
    # reference counting on every call)
    if math.isnan(x):
        return 0.0
    z = 0.0
    if stats[COUNT, j] > 1:
        if stats[ROOT, j] > 0:
            z = (x - stats[MEAN, j]) / (stats[ROOT, j] / math.sqrt(stats[COUNT, j]))
            if glitch > 0 and update and stats[COUNT, j] >= warmup:
                side = 0.0
                if z > glitch:
                    side = 1.0
                elif z < -glitch:
                    side = -1.0
                if side != 0.0 and side * beyond[j] > 0:
                    beyond[j] += side
                else:
                    beyond[j] = side
                if side != 0.0 and abs(beyond[j]) < shift_after:
                    return glitch_out
            z = min(max(z, -clip), clip)
        elif x != stats[MEAN, j]:  # off a constant history: as far out as the clip goes
            z = clip if x > stats[MEAN, j] else -clip
    if update:
        stats[COUNT, j] += 1
        n = stats[COUNT, j]
        delta = x - stats[MEAN, j]
        if math.isfinite(delta):
            stats[MEAN, j] += delta / n
            # Welford's delta * (x - new mean) = delta^2 (n - 1) / n, as a root
            step = abs(delta) * math.sqrt((n - 1.0) / n)
        else:  # x and the mean far apart on either side of 0
            stats[MEAN, j] += x / n - stats[MEAN, j] / n
            step = FLOAT_MAX
        stats[ROOT, j] = min(math.hypot(stats[ROOT, j], step), FLOAT_MAX)
    return z
