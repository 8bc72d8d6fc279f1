"""Online standardisation of feature vectors (Welford's running mean and
variance), one kernel for single rows and batches so both give identical
results."""

import math

from numba import njit

from .. import config

_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy", fastmath=config.FASTMATH)


@njit(**_JIT)
def standardize_rows(stats, X, out, update, clip):
    """Standardise the rows of ``X`` into ``out``, in order.

    ``stats`` is float64 ``(3, F)``: count, mean and sum of squared
    deviations per feature. A value is scaled with the statistics of the
    values before it, ``(x - mean) / std``, clipped to ``[-clip, clip]`` (0
    while fewer than two values were seen; with a zero sum of squared
    deviations — equal values, or deviations below ~1e-154, whose squares
    underflow — 0 for a value equal to the mean and ``±clip`` for any
    other); then, when
    ``update``, it joins the statistics. NaN marks a missing value: it gives
    0 and is not counted.
    """
    count, mean, m2 = stats[0], stats[1], stats[2]
    for t in range(X.shape[0]):
        for j in range(X.shape[1]):
            x = X[t, j]
            if math.isnan(x):
                out[t, j] = 0
                continue
            z = 0.0
            if count[j] > 1:
                if m2[j] > 0:
                    z = (x - mean[j]) / math.sqrt(m2[j] / count[j])
                    z = min(max(z, -clip), clip)
                elif x != mean[j]:  # off a constant history: as far out as the clip goes
                    z = clip if x > mean[j] else -clip
            out[t, j] = z
            if update:
                count[j] += 1
                delta = x - mean[j]
                mean[j] += delta / count[j]
                m2[j] += delta * (x - mean[j])
