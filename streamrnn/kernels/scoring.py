"""Per-point bookkeeping of the predictive anomaly detector: scaled changes,
prediction errors and the anomaly likelihood, in one kernel call each.

The detector's numbers live in one float64 array ``st``:

``st[S_N]``, ``st[S_MEAN]``, ``st[S_VAR]``, ``st[S_SCORED]``, ``st[S_POS]``
    changes seen, the long-run mean and variance of the raw scores, raw
    scores recorded, the next slot of the ring of recent raw scores;
``st[S_ALPHA]``, ``st[S_WINDOW]``
    the long-run smoothing factor and the ring's length ``k``;
``st[HEAD : HEAD + k]``
    the ring of recent raw scores;
then, for ``F`` features, ``last``, ``sum_sq`` and ``prediction`` (each ``F``).
"""

import math

from numba import njit

from .. import config

_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy", fastmath=config.FASTMATH)

S_N, S_MEAN, S_VAR, S_SCORED, S_POS, S_ALPHA, S_WINDOW = 0, 1, 2, 3, 4, 5, 6
HEAD = 8
CLIP = 10.0


@njit(inline="always")
def _blocks(st, n_features):
    k = int(st[S_WINDOW])
    a = HEAD + k
    return st[a : a + n_features], st[a + n_features : a + 2 * n_features], st[a + 2 * n_features : a + 3 * n_features]


@njit(**_JIT)
def scaled_changes(st, values, z):
    """Changes since the last values over their running root mean square,
    clipped to [-10, 10], into ``z``; returns the raw score: the logarithm of
    one plus the root mean square of the prediction errors."""
    F = values.shape[0]
    last, sum_sq, prediction = _blocks(st, F)
    n = st[S_N]
    err = 0.0
    for j in range(F):
        d = values[j] - last[j]
        rms = math.sqrt(sum_sq[j] / n) if n > 0 else 0.0
        zj = d / rms if rms > 0 else 0.0
        zj = min(max(zj, -CLIP), CLIP)
        z[j] = zj
        e = zj - prediction[j]
        err += e * e
    return math.log1p(math.sqrt(err / F))


@njit(**_JIT)
def likelihood(st, raw):
    """The anomaly score: the normal tail probability, under the long-run
    mean and variance of the raw scores, beyond the larger of two
    deviations: of ``raw`` itself, and of the mean of ``raw`` with the ring's
    last ``k - 1`` raw scores (whose standard deviation is the raw scores'
    over the square root of their number), as a log-likelihood
    (:func:`log_likelihood`). The first catches a spike, the second a
    sustained drift."""
    k = int(st[S_WINDOW])
    m = min(int(st[S_SCORED]), k - 1)
    total = raw
    pos = int(st[S_POS])
    for i in range(m):
        total += st[HEAD + (pos - 1 - i) % k]
    recent = total / (m + 1)
    mean, var = st[S_MEAN], st[S_VAR]
    if var <= 0:
        return log_likelihood(0.0 if max(raw, recent) <= mean else 1e3)
    sd = math.sqrt(var)
    z = max((raw - mean) / sd, (recent - mean) * math.sqrt(m + 1.0) / sd)
    return log_likelihood(z)


@njit(inline="always")
def log_likelihood(z):
    """``-log10`` of the normal tail probability beyond ``z``, over 30 and
    capped at 1: monotone in the probability, 1 for a tail probability of
    1e-30 or less, and without the ties at 1.0 that the probability itself
    reaches once ``z`` passes 8. (Numenta's detectors report a log-likelihood
    the same way.)"""
    if z < 35.0:
        log_tail = math.log(0.5 * math.erfc(z / math.sqrt(2.0)))
    else:  # the asymptotic tail, where erfc underflows
        log_tail = -0.5 * z * z - math.log(z * math.sqrt(2.0 * math.pi))
    return min(-log_tail / (30.0 * math.log(10.0)), 1.0)


@njit(**_JIT)
def score(st, values, z):
    """The anomaly likelihood of ``values``; changes nothing but ``z``."""
    return likelihood(st, scaled_changes(st, values, z))


@njit(**_JIT)
def record_raw(st, raw):
    """Add a raw score to the ring of recent ones and to the long-run mean
    and variance (a running mean at first, exponentially weighted once past
    the half-life)."""
    k = int(st[S_WINDOW])
    pos = int(st[S_POS])
    st[HEAD + pos] = raw
    st[S_POS] = (pos + 1) % k
    if st[S_SCORED] > 0:
        alpha = max(st[S_ALPHA], 1.0 / (st[S_SCORED] + 1.0))
        delta = raw - st[S_MEAN]
        st[S_MEAN] += alpha * delta
        st[S_VAR] = (1.0 - alpha) * (st[S_VAR] + alpha * delta * delta)
    else:
        st[S_MEAN] = raw
        st[S_VAR] = 0.0
    st[S_SCORED] += 1


@njit(**_JIT)
def record(st, values, z):
    """Score ``values`` (their scaled changes into ``z``), then add them to
    the statistics: the raw score with :func:`record_raw`, the change to the
    sums of squares; ``values`` become the last ones. Returns the raw score."""
    F = values.shape[0]
    raw = scaled_changes(st, values, z)
    record_raw(st, raw)
    last, sum_sq, _ = _blocks(st, F)
    for j in range(F):
        d = values[j] - last[j]
        sum_sq[j] += d * d
        last[j] = values[j]
    st[S_N] += 1
    return raw


@njit(**_JIT)
def restart_history(st, values):
    """Start the per-feature history at ``values`` (no change seen yet)."""
    F = values.shape[0]
    last, sum_sq, prediction = _blocks(st, F)
    last[:] = values
    sum_sq[:] = 0
    prediction[:] = 0
    st[S_N] = 0


@njit(**_JIT)
def set_prediction(st, prediction):
    """The scaled changes predicted for the next values."""
    F = prediction.shape[0]
    _, _, slot = _blocks(st, F)
    slot[:] = prediction
