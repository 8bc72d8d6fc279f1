"""Per-point bookkeeping of the anomaly detectors: scaled changes, prediction
errors, the evidence of each point and the reported anomaly score, in one
kernel call each.

Evidence is ``-log10(Q) / 30`` (capped at 1) for a tail probability ``Q``
under the point's null model, the largest of:

- the **error tail**: ``Q`` of the raw score (an error measure) under an
  exponential tail fitted above the level ``u = mean + sd`` of the raw scores'
  long-run distribution, ``Q = p exp(-(x - u) p / e)`` with ``p`` the long-run
  rate of raw scores above ``u`` and ``e`` the long-run mean of their excess
  ``max(x - u, 0)`` (so ``e / p`` is the mean excess of those above ``u``);
  peaks over a threshold, as in extreme value theory: the log of an error
  has a roughly exponential upper tail when the error's is a power law;
- the same for the **recent error**, the mean of the raw score with the
  last ``k - 1`` ones, under the long-run distribution of those means
  (Numenta's anomaly likelihood averages the raw scores the same way): it
  catches a sustained rise that no single error shows;
- the **range** (given the values: :func:`score`, :func:`score_raw`): a
  value beyond the range ``[low, high]`` of the ``n`` values seen so far by
  ``e`` range widths has ``Q = (n + 1) ** -(1 + e)``: the chance that the
  last of ``n + 1`` exchangeable values is their maximum is ``1 / (n + 1)``,
  and under an exponential tail the excess beyond the maximum of ``n``
  values, in units of their range (about ``log n`` tail scales), is
  exceeded by ``e`` with probability ``n ** -e``. Numenta's NAB detector
  flags such "spatial" anomalies outright. The factor ``1 / (n + 1)``
  counts at a **breakout** only: when none of the feature's last ``k``
  values was beyond its range then. Within an excursion, a record is no
  surprise (a series creeping upwards sets one at every step, each by a
  hair, and each had a little more evidence than the last, as ``n`` grew,
  so the refractory rule let each through), and ``Q = (n + 1) ** -e``, of
  the excess alone: a leap far beyond the excursion's last record still
  counts. With several features, the feature with the most evidence counts;
- for the alarms only, a further ``-log10 Q`` from another model of the
  point (:func:`point_with`): the larger of the detector's seasonal
  errors, calibrated by the kernels near the end of this module with
  statistics of their own (:mod:`streamrnn.anomaly_season`), and of a
  record of the recent values (:func:`recent_log10`, at the end).
- for the memory only (:func:`point_with`), the
  ``-log10 Q`` of a **quiet stretch**, the last ``QUIET_WINDOW`` changes
  calmer than usual, under a tail model of its own (the quiet state, below).

**News.** For the alarms, each error's ``Q`` is at least the fraction of the
errors counted since the grace period that were as large (from the
histograms; none as large: the tail's ``Q`` alone). An exponential tail fitted
to mostly small errors is sure that a large one is rare; when errors this
large recur (a square wave's daily jump, a regular burst of spikes), their
frequency says how rare they are, and they raise no alarm once they are
usual (on NAB's shared corpus, seed 0: standard score 53.5 to 60.4; halves 55.1 and
53.9 to 60.1 and 61.3).
The memory takes the tail's ``Q`` alone, so that the quiet scores of a
stationary stream keep their calibration.

The **reported score** of a point is ``0.5 + evidence / 2`` when it is an
alarm: evidence at least :data:`ALARM` (``Q <= 0.01``) and above the
evidence of each of the ``k`` points before it, none of which was an alarm
at :data:`THRESHOLD` (a refractory rule: an alarm is news once; a run of
unusual points raises one alarm, and a second only when the evidence grows,
and at the threshold only ``k`` points after the last: one alarm is one
alarm; on NAB's shared corpus, seed 0, halves 67.3 and 63.0 to 67.5 and
64.6). Any other point reports half the probability
that a stream of independent, uniform tail probabilities would have a
**memory** no greater than this point's: the memory is the largest
evidence seen since the first ``g`` raw scores (the grace period, while the
statistics settle), its own included, fading by half every ``h`` points
(the alarm memory's half-life); in units ``m`` of ``-log10 Q``, that
probability is the product over ages ``i`` of ``1 - 10 ** (-m / d ** i)``
(``d = 0.5 ** (1 / h)``), computed as an integral (:func:`_log_calm`). So
alarms score in [0.533, 1] (:data:`THRESHOLD`, 0.55, at ``Q = 1e-3``), the
other points in (0, 0.5), ranked by how strong and how recent the last
unusual stretch was (a stream just after an incident ranks above one long
calm; a long anomaly keeps scoring near 0.5 while it lasts), and spread
about uniformly on a stationary stream, so quantile filters get a
continuous score. A point not scored reports :data:`NOT_SCORED` (0.0; every
scored point reports at least :data:`TINY`).

Everything is one-sided: large errors, and values beyond the range on the
side they left by.

The refractory rule looks back ``k`` points only. Requiring an alarm to
beat the memory as well (so a strong alarm silences weaker ones for
hundreds of points) raised the NAB score by 0.6 on both halves of the
corpus, but hid a level shift 200 points after a spike, a second incident
any user would want flagged: not taken.

The detector's numbers live in one float64 array ``st``:

``st[S_N]``, ``st[S_SCORED]``, ``st[S_POS]``, ``st[S_ALPHA]``, ``st[S_WINDOW]``
    changes seen since the history (re)started, raw scores recorded, the next
    slot of the rings, the long-run smoothing factor, the rings' length ``k``;
``st[S_TAIL : S_TAIL + 4]``, ``st[S_TAIL_RECENT : S_TAIL_RECENT + 4]``
    mean, variance, rate above ``u`` and mean excess over ``u`` of the raw
    scores and of the recent errors (:func:`_tail_update`);
``st[S_MEMORY]``, ``st[S_DECAY]``, ``st[S_GRACE]``
    the memory after the last point, its factor of decay per point
    (``0.5 ** (1 / h)``), and the raw scores ``g`` it does not remember;
``st[S_SEEN]``, ``st[S_HIST : S_HIST + B]``, ``st[S_HIST + B : HEAD]``
    the raw scores counted since the grace period, and the histograms (``B
    = SEEN_BINS`` bins over ``[0, SEEN_TOP]``) of their raw scores and
    recent errors;
``st[HEAD : HEAD + k]``, ``st[HEAD + k : HEAD + 2 k]``
    the rings of the last raw scores and of the last (alarm) evidence
    (plus :data:`FLAG` for an alarm at :data:`THRESHOLD`);
then, for ``F`` features, ``last``, ``scale``, ``prediction``, ``low``,
``high`` and ``calm`` (each ``F``): the :data:`PER_FEATURE` blocks; ``calm``
counts the values recorded since the feature was last beyond its range (at
most ``k``). ``scale`` is the root
mean square of the feature's changes, kept as a root and updated as a ratio,
so that values near the largest or the smallest floats neither overflow nor
underflow it (a sum of squares overflowed to infinity, and the next change
made every later score NaN). Every change counts in full: one huge change
lowers the scaled size of the later ones for long (winsorising the changes
at ``CLIP`` scales would not, but cost 2.7 points of NAB score).
"""

import math

import numpy as np
from numba import njit

from .. import config

_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy", fastmath=config.FASTMATH)

S_N, S_SCORED, S_POS, S_ALPHA, S_WINDOW = 0, 1, 2, 3, 4
S_TAIL, S_TAIL_RECENT = 5, 9  # mean, variance, rate above u, mean excess over u
S_MEMORY, S_DECAY, S_GRACE = 13, 14, 15
S_SEEN = 16  # raw scores counted in the histograms
#: Bins of the histograms of the raw scores and of the recent errors, over
#: [0, SEEN_TOP] (a score beyond it counts in the last bin).
SEEN_BINS = 256
SEEN_TOP = 3.2
S_HIST = 17
HEAD = S_HIST + 2 * SEEN_BINS
#: HEAD before the histograms were kept.
OLD_HEAD = 16
PER_FEATURE = 6
CLIP = 10.0
FLOAT_MAX = 1.7976931348623157e308
RATIO_MAX = 1e100  # a change this many scales is taken as this many: its square stays finite
#: Evidence is -log10(Q) / SCALE, capped at 1.
SCALE = 30.0
LN10 = math.log(10.0)
#: The least evidence an alarm has: Q = 0.01.
ALARM = 2.0 / SCALE
#: The least reported score of an alarm (at Q = 0.01); every other scored point scores below it.
ALARM_SCORE = 0.5 + 0.5 * ALARM
#: The default threshold: the reported score of an alarm at Q = 1e-3.
THRESHOLD = 0.5 + 0.5 * 3.0 / SCALE
#: The reported score of a point that is not scored (no scored point reports it).
NOT_SCORED = 0.0
#: Added to a point's evidence in the ring of the last evidences when it was
#: an alarm at THRESHOLD (evidence is at most 1): the next ``k`` points raise none.
FLAG = 2.0
#: The least reported score of a scored point.
TINY = 1e-12


def _calm_table(n: int = 6001, low: float = 1e-6, high: float = 60.0):
    """``G(m) = integral from m to infinity of -ln(1 - 10 ** -u) du / u`` on
    a grid uniform in ``ln m`` (trapezoids in ``ln u``; 0 past ``high``)."""
    log_u = np.linspace(math.log(low), math.log(high), n)
    f = -np.log1p(-(10.0 ** -np.exp(log_u)))
    steps = 0.5 * (f[1:] + f[:-1]) * np.diff(log_u)
    return log_u[0], log_u[1] - log_u[0], np.append(np.cumsum(steps[::-1])[::-1], 0.0)


CALM_LOG_LOW, CALM_STEP, CALM_G = _calm_table()


def state_size(k: int, n_features: int) -> int:
    """Length of ``st`` for rings of ``k`` and ``n_features`` features."""
    return HEAD + 2 * k + PER_FEATURE * n_features


def stats_size(k: int) -> int:
    """Length of the part of ``st`` that holds the score statistics (kept
    when the per-feature history restarts)."""
    return HEAD + 2 * k


@njit(inline="always")
def _blocks(st, n_features):
    k = int(st[S_WINDOW])
    a = HEAD + 2 * k
    F = n_features
    return (st[a : a + F], st[a + F : a + 2 * F], st[a + 2 * F : a + 3 * F],
            st[a + 3 * F : a + 4 * F], st[a + 4 * F : a + 5 * F], st[a + 5 * F : a + 6 * F])


@njit(inline="always")
def _tail_log10(st, i, x):
    """``-log10 Q`` of ``x`` under the exponential tail of the statistics at
    ``st[i : i + 4]``; 0 at or below ``u``. Above ``u`` when no excess was
    ever seen (the raw scores so far were constant): the limit of the tail,
    certainty (capped evidence), once past the grace period and ``k`` raw
    scores, else 0."""
    mean, var, rate, excess = st[i], st[i + 1], st[i + 2], st[i + 3]
    u = mean + math.sqrt(var)
    if x <= u:
        return 0.0
    if excess <= 0.0 or rate <= 0.0:
        # (the first raw score is 0, the first change having no scale: a window of them first)
        return SCALE if st[S_SCORED] >= max(st[S_GRACE], st[S_WINDOW]) else 0.0
    return -math.log10(rate) + (x - u) * rate / (excess * LN10)


@njit(inline="always")
def _tail_update(st, i, x, alpha, first):
    """Add ``x`` to the statistics at ``st[i : i + 4]``: the rate above and
    the mean excess over ``u`` (from the mean and variance before ``x``),
    then the mean and variance, all exponentially weighted by ``alpha``."""
    if first:
        st[i] = x
        st[i + 1] = 0.0
        return
    over = x - (st[i] + math.sqrt(st[i + 1]))
    st[i + 2] += alpha * ((1.0 if over > 0.0 else 0.0) - st[i + 2])
    st[i + 3] += alpha * (max(over, 0.0) - st[i + 3])
    delta = x - st[i]
    st[i] += alpha * delta
    st[i + 1] = (1.0 - alpha) * (st[i + 1] + alpha * delta * delta)


@njit(inline="always")
def _recent(st, raw):
    """The mean of ``raw`` and the last ``k - 1`` raw scores (fewer at first)."""
    k = int(st[S_WINDOW])
    m = min(int(st[S_SCORED]), k - 1)
    pos = int(st[S_POS])
    total = raw
    for i in range(m):
        total += st[HEAD + (pos - 1 - i) % k]
    return total / (m + 1)


@njit(inline="always")
def _bin(x):
    """The histogram bin of a raw score or recent error ``x`` (>= 0)."""
    if not x > 0.0:  # (0 and NaN)
        return 0
    return min(int(x * (SEEN_BINS / SEEN_TOP)), SEEN_BINS - 1)


@njit(inline="always")
def _seen_log10(st, j, x):
    """``-log10`` of the fraction of the raw scores (``j = 0``) or recent
    errors (``j = 1``) counted so far that were at least ``x`` (those of
    ``x``'s bin taken as spread evenly over it; the last bin counts whole):
    how often an error this large was seen; ``inf`` when never (or nothing
    counted yet)."""
    n = st[S_SEEN]
    first = S_HIST + j * SEEN_BINS
    b = _bin(x)
    count = 0.0
    for i in range(first + b + 1, first + SEEN_BINS):
        count += st[i]
    if b < SEEN_BINS - 1:  # the part of x's bin above x, its errors taken as spread evenly
        count += st[first + b] * min(max(b + 1.0 - x * (SEEN_BINS / SEEN_TOP), 0.0), 1.0)
    else:
        count += st[first + b]
    if count <= 0.0 or n <= 0.0:
        return math.inf
    return -math.log10(min(count / n, 1.0))


@njit(inline="always")
def _error_log10(st, raw):
    """``-log10 Q`` of the error evidence, the larger of the raw score's and
    the recent error's: of the alarms (each ``Q`` the larger of its tail
    model's and of the fraction of the errors counted so far that were as
    large: an error that recurs is no news), and of the memory (the tail
    models' alone)."""
    recent = _recent(st, raw)
    tail_raw = _tail_log10(st, S_TAIL, raw)
    tail_recent = _tail_log10(st, S_TAIL_RECENT, recent)
    news = max(min(tail_raw, _seen_log10(st, 0, raw)), min(tail_recent, _seen_log10(st, 1, recent)))
    return news, max(tail_raw, tail_recent)


@njit(inline="always")
def _beyond(value, low, high):
    """How many range widths ``value`` lies beyond ``[low, high]`` (0 or
    less inside it, 0 while the range is a single value)."""
    width = high - low
    if width > 0.0:
        return max(value - high, low - value) / width
    return 0.0


@njit(inline="always")
def _range_log10(st, values):
    """``-log10 Q`` of the range evidence, the largest over the features of
    ``(1 + e) log10(n + 1)`` for a value breaking out of its feature's range
    (none of its last ``k`` values beyond their range) and ``e log10(n +
    1)`` for one within an excursion (``e`` range widths beyond, ``n``
    values seen); 0 inside every range or while a range is a single
    value."""
    F = values.shape[0]
    _, _, _, low, high, calm = _blocks(st, F)
    k = st[S_WINDOW]
    best = 0.0
    for j in range(F):
        e = _beyond(values[j], low[j], high[j])
        if e > 0.0:
            if calm[j] >= k:
                e += 1.0
            if e > best:
                best = e
    return best * math.log10(st[S_N] + 2.0)


@njit(inline="always")
def _evidence(log10_q):
    return min(log10_q / SCALE, 1.0)


@njit(inline="always")
def _memory(st, evidence):
    """The memory with ``evidence`` added: the larger of ``evidence`` and the
    memory after the last point, decayed by one point."""
    return max(evidence, st[S_MEMORY] * st[S_DECAY])


@njit(inline="always")
def _log_calm(m, decay):
    """``ln P(M <= m)`` for the memory ``M`` (in units of ``-log10 Q``) of a
    stream whose tail probabilities are independent and uniform: ``M`` is
    the largest ``L_i d ** i`` over the ages ``i >= 0`` of exponential
    ``L_i`` (``P(L > l) = 10 ** -l``), so the log-probability is the sum of
    ``ln(1 - 10 ** (-m / d ** i))``, here its integral ``-G(m) / -ln d``
    plus half its first term, less a twelfth of its slope there
    (Euler-Maclaurin)."""
    if m <= 0.0:
        return -math.inf
    x = (math.log(m) - CALM_LOG_LOW) / CALM_STEP
    last = CALM_G.shape[0] - 1
    if x >= last:
        g = 0.0
    else:
        x = max(x, 0.0)
        i = int(x)
        g = CALM_G[i] + (x - i) * (CALM_G[i + 1] - CALM_G[i])
    tail = 10.0 ** -m
    slope = tail * LN10 * m * -math.log(decay) / (1.0 - tail)
    return g / math.log(decay) + 0.5 * math.log1p(-tail) - slope / 12.0


@njit(inline="always")
def _is_alarm(st, evidence):
    """Whether a point of ``evidence`` is an alarm: at least ``ALARM``,
    above each of the last ``k`` points' evidence (fewer at first), and
    none of them an alarm at :data:`THRESHOLD` (marked in the ring by
    :data:`FLAG`)."""
    if evidence < ALARM:
        return False
    k = int(st[S_WINDOW])
    m = min(int(st[S_SCORED]), k)
    pos = int(st[S_POS])
    for i in range(m):
        e = st[HEAD + k + (pos - 1 - i) % k]
        if e >= FLAG or e >= evidence:
            return False
    return True


@njit(inline="always")
def _reported(st, evidence, model):
    """``0.5 + evidence / 2`` if it is an alarm (:func:`_is_alarm`);
    otherwise half the probability that a stream without anomalies would
    have a memory (with the tail models' evidence ``model`` added) no
    greater (at least ``TINY``)."""
    if _is_alarm(st, evidence):
        return 0.5 + 0.5 * evidence
    return max(0.5 * math.exp(_log_calm(SCALE * _memory(st, model), st[S_DECAY])), TINY)


@njit(inline="always")
def _evidences(st, raw, range_log10):
    """The evidence of a point's alarms and of its memory: ``-log10(Q) /
    30`` of the larger of its error's and its range's (capped at 1)."""
    news, model = _error_log10(st, raw)
    return _evidence(max(news, range_log10)), _evidence(max(model, range_log10))


@njit(inline="always")
def _scaled(d, scale, n):
    """The change ``d`` (±inf where it overflowed) in units of ``scale``,
    clipped to [-CLIP, CLIP]; ±CLIP for a change after ``n > 0`` zero
    changes, 0 for none."""
    if scale > 0.0:
        return min(max(d / scale, -CLIP), CLIP)
    if n > 0 and d != 0.0:
        return CLIP if d > 0.0 else -CLIP
    return 0.0


@njit(inline="always")
def _rescaled(d, scale, n):
    """``scale`` with the change ``d`` added as the ``n + 1``-th: the root
    of the mean of the squares, updated as a ratio so that it neither
    overflows nor underflows (a change is taken as at most ``RATIO_MAX``
    scales, an overflowed one included, and the scale as at most the largest
    float: it stays finite, and no later change divided by it is NaN)."""
    if scale > 0.0:
        r = min(abs(d) / scale, RATIO_MAX)
        return min(scale * math.sqrt(1.0 + (r * r - 1.0) / (n + 1.0)), FLOAT_MAX)
    return min(abs(d), FLOAT_MAX) / math.sqrt(n + 1.0)


@njit(**_JIT)
def scaled_changes(st, values, z):
    """Changes since the last values over their running root mean square,
    clipped to [-10, 10], into ``z`` (a change after only zero changes is
    10 or -10); returns the raw score: the logarithm of one plus the root
    mean square of the prediction errors."""
    F = values.shape[0]
    last, scale, prediction, _, _, _ = _blocks(st, F)
    err = 0.0
    for j in range(F):
        zj = _scaled(values[j] - last[j], scale[j], st[S_N])
        z[j] = zj
        e = zj - prediction[j]
        err += e * e
    return math.log1p(math.sqrt(err / F))


@njit(**_JIT)
def error_evidence(st, raw):
    """The evidence of a raw score alone (no range): ``-log10(Q) / 30``, capped at 1."""
    return _evidences(st, raw, 0.0)[0]


@njit(**_JIT)
def evidence(st, values, raw):
    """The evidence of ``values`` with raw score ``raw``: the larger of the
    error's and the range's."""
    return _evidences(st, raw, _range_log10(st, values))[0]


@njit(**_JIT)
def likelihood(st, raw):
    """The reported score of a raw score alone (no range evidence)."""
    ev, model = _evidences(st, raw, 0.0)
    return _reported(st, ev, model)


@njit(**_JIT)
def score(st, values, z):
    """The reported score of ``values``; changes nothing but ``z``."""
    raw = scaled_changes(st, values, z)
    ev, model = _evidences(st, raw, _range_log10(st, values))
    return _reported(st, ev, model)


@njit(**_JIT)
def _push(st, raw, ev, model):
    """Add a raw score and its point's evidence to the rings, the tail
    models' evidence ``model`` to the memory (past the grace period), the
    raw score and recent error to the histograms (past it too) and to their
    statistics (a running mean at first, exponentially weighted once past
    the half-life)."""
    k = int(st[S_WINDOW])
    recent = _recent(st, raw)
    scored = st[S_SCORED]
    alpha = max(st[S_ALPHA], 1.0 / (scored + 1.0))
    _tail_update(st, S_TAIL, raw, alpha, scored == 0)
    _tail_update(st, S_TAIL_RECENT, recent, alpha, scored == 0)
    if scored >= st[S_GRACE]:  # (the errors of the grace period, while the network settles, are not counted)
        st[S_HIST + _bin(raw)] += 1.0
        st[S_HIST + SEEN_BINS + _bin(recent)] += 1.0
        st[S_SEEN] += 1.0
    flag = FLAG if _is_alarm(st, ev) and 0.5 + 0.5 * ev >= THRESHOLD else 0.0  # (before the rings move on)
    st[S_MEMORY] = _memory(st, model) if scored >= st[S_GRACE] else 0.0
    pos = int(st[S_POS])
    st[HEAD + pos] = raw
    st[HEAD + k + pos] = ev + flag
    st[S_POS] = (pos + 1) % k
    st[S_SCORED] = scored + 1


@njit(**_JIT)
def record_raw(st, raw):
    """Record a raw score with its error evidence (the reconstruction
    detector's step). Returns the evidence."""
    ev, model = _evidences(st, raw, 0.0)
    _push(st, raw, ev, model)
    return ev


@njit(inline="always")
def _extend_ranges(st, values):
    """Add ``values`` to the ranges and to the counts of calm values, and
    count them as seen."""
    F = values.shape[0]
    _, _, _, low, high, calm = _blocks(st, F)
    for j in range(F):
        calm[j] = 0.0 if _beyond(values[j], low[j], high[j]) > 0.0 else min(calm[j] + 1.0, st[S_WINDOW])
        low[j] = min(low[j], values[j])
        high[j] = max(high[j], values[j])
    st[S_N] += 1


@njit(**_JIT)
def record(st, values, z):
    """Score ``values`` (their scaled changes into ``z``), then add them to
    the statistics: the raw score and the evidence with :func:`_push`, the
    change to the scales, the values to the ranges (and the counts of calm
    values); ``values`` become the last ones. Returns the raw score."""
    F = values.shape[0]
    raw = scaled_changes(st, values, z)
    ev, model = _evidences(st, raw, _range_log10(st, values))
    _push(st, raw, ev, model)
    last, scale, _, _, _, _ = _blocks(st, F)
    for j in range(F):
        scale[j] = _rescaled(values[j] - last[j], scale[j], st[S_N])
        last[j] = values[j]
    _extend_ranges(st, values)
    return raw


@njit(**_JIT)
def score_raw(st, values, raw):
    """The reported score of ``values`` whose raw score ``raw`` was computed
    elsewhere (the reconstruction detector's); changes nothing."""
    ev, model = _evidences(st, raw, _range_log10(st, values))
    return _reported(st, ev, model)


@njit(**_JIT)
def record_raw_values(st, values, raw):
    """Record ``values`` with their raw score computed elsewhere: the evidence
    (error and range) with :func:`_push`, the values to the ranges. Returns
    the evidence."""
    ev, model = _evidences(st, raw, _range_log10(st, values))
    _push(st, raw, ev, model)
    _extend_ranges(st, values)
    return ev


@njit(**_JIT)
def restart_history(st, values):
    """Start the per-feature history at ``values`` (no change seen yet; each
    range is the value, and calm)."""
    F = values.shape[0]
    last, scale, prediction, low, high, calm = _blocks(st, F)
    for i in range(F):  # a loop: an array assigned to a slice compiles Numba's shape-error formatting (~2 s)
        last[i] = values[i]
        scale[i] = 0
        prediction[i] = 0
        low[i] = values[i]
        high[i] = values[i]
        calm[i] = st[S_WINDOW]
    st[S_N] = 0


def with_seen_counts(st, n_features: int):
    """A state saved before the histograms of the errors were kept, with
    them added (empty: nothing seen yet); any other state as it is."""
    k = int(st[S_WINDOW])
    old = OLD_HEAD + 2 * k + PER_FEATURE * n_features
    if st.shape[0] in (old, old - n_features):
        return np.concatenate([st[:OLD_HEAD], np.zeros(HEAD - OLD_HEAD), st[OLD_HEAD:]])
    return st


def with_calm_counts(st, n_features: int):
    """A state saved before the counts of calm values were kept, with them
    added (every feature calm: its next value beyond its range breaks out);
    any other state as it is."""
    k = int(st[S_WINDOW])
    if n_features and st.shape[0] == state_size(k, n_features) - n_features:
        return np.concatenate([st, np.full(n_features, float(k))])
    return st


def sums_of_squares_to_scales(st, n_features: int) -> None:
    """Turn the per-feature sums of squared changes of a state saved before
    the scales were kept into those scales (root mean squares)."""
    n = st[S_N]
    _, block, _, _, _, _ = _blocks(st, n_features)
    block[:] = (block / n) ** 0.5 if n > 0 else 0.0


@njit(**_JIT)
def set_prediction(st, prediction):
    """The scaled changes predicted for the next values."""
    F = prediction.shape[0]
    _, _, slot, _, _, _ = _blocks(st, F)
    for i in range(F):  # a loop, as in restart_history
        slot[i] = prediction[i]


# ------------------------------------------------- the reconstruction window


@njit(**_JIT)
def slide_window(window, z, target):
    """Move the window (rows oldest first) on by one point: drop its oldest
    row, append ``z``; write it, flattened, into ``target`` (the rest 0)."""
    W, F = window.shape
    for r in range(W - 1):
        for j in range(F):
            window[r, j] = window[r + 1, j]
    for j in range(F):
        window[W - 1, j] = z[j]
    for i in range(target.shape[0]):
        target[i] = 0.0
    for r in range(W):
        for j in range(F):
            target[r * F + j] = window[r, j]


@njit(**_JIT)
def reconstruction_error(reconstruction, window, z, slid):
    """The raw score of a reconstruction: the logarithm of one plus the root
    mean square of its errors on the window's points (oldest first, the
    first ``W * F`` outputs). With ``slid``, the window as it would be moved
    on by ``z`` (not changed)."""
    W, F = window.shape
    total = 0.0
    for r in range(W):
        for j in range(F):
            if slid:
                v = z[j] if r == W - 1 else window[r + 1, j]
            else:
                v = window[r, j]
            e = float(reconstruction[r * F + j]) - v
            total += e * e
    return math.log1p(math.sqrt(total / (W * F)))


# ------------------------------------------------- evidence from elsewhere


@njit(inline="always")
def _point(st, values, z, other_news, quiet):
    """The raw score of ``values`` (their scaled changes into ``z``), the
    evidence of its alarms (with a further ``-log10 Q`` from another model
    of the point, ``other_news``) and of its memory (with the quiet
    stretch's ``-log10 Q`` of ``quiet``, a quiet state: see below; its
    scaled change ``z`` included)."""
    raw = scaled_changes(st, values, z)
    news, model = _error_log10(st, raw)
    r = _range_log10(st, values)
    q = _quiet_log10(st, quiet, _quiet_raw(quiet, z)) if quiet.shape[0] else 0.0
    return raw, _evidence(max(news, r, other_news)), _evidence(max(model, r, q))


@njit(**_JIT)
def point_with(st, values, z, other_news, quiet, learn):
    """A point's score, or (``learn``) its learning: one kernel for both, so
    that a cold start compiles their shared arithmetic once.

    Scoring (``learn`` false) returns what :func:`score` would, with a
    further ``-log10 Q`` from another model of the point, ``other_news``,
    for the alarms (the larger counts), and the quiet stretch's for the
    memory (``quiet``: a quiet state, or an empty array for none); the
    state is left as it is. The memory keeps the tail models, the range and
    the quiet stretch alone, so that the quiet scores keep their
    calibration.

    Learning does what :func:`record` does, with the same further
    evidences; the scaled changes join the quiet state. Returns the raw
    score."""
    raw, ev, model = _point(st, values, z, other_news, quiet)
    if not learn:
        return _reported(st, ev, model)
    F = values.shape[0]
    counted = st[S_SCORED] >= st[S_GRACE]
    if quiet.shape[0]:
        _quiet_push(st, quiet, z, counted)
    _push(st, raw, ev, model)
    last, scale, _, _, _, _ = _blocks(st, F)
    for j in range(F):
        scale[j] = _rescaled(values[j] - last[j], scale[j], st[S_N])
        last[j] = values[j]
    _extend_ranges(st, values)
    return raw


# ------------------------------------------------- the quiet stretch
#
# A stretch calmer than usual (a stalled service, a sensor stuck at a value,
# a market gone quiet) shows no large error and no value out of range: each
# of its points is usual, their run is not. The quiet state of a detector
# keeps the mean square of the scaled changes of each of its last
# QUIET_WINDOW points (over the features), and a tail model of the quiet
# raw score, ``-ln(root mean square over the window + QUIET_FLOOR)``: how
# calm the last QUIET_WINDOW changes were, in units of their running root
# mean square. Its ``-log10 Q`` (the exponential tail above mean + sd, as
# the errors', at most ``log10(n + 1)`` for ``n`` quiet raw scores counted:
# the calmest of ``n + 1`` is no rarer than 1 in ``n + 1``) joins the
# memory, not the alarms: a long calm raises the score of the points that
# make it, so they rank above the usual ones, but raises no alarm (as an
# alarm it cost NAB score on the shared corpus: 65.2 to 65.0, seed 0).
#
# ``quiet[Q_TAIL : Q_TAIL + 4]``: mean, variance, rate above ``u``, mean
# excess over ``u`` of the quiet raw scores; ``quiet[Q_N]``: those counted
# (past the grace period); ``quiet[Q_FILLED]``: the changes in the ring (at
# most QUIET_WINDOW); ``quiet[Q_POS]``: its next slot; then the ring.

#: Points whose changes make a quiet stretch.
QUIET_WINDOW = 100
#: The least root mean square of a quiet stretch (in units of the changes'
#: running root mean square): a stretch of no change at all is this calm.
QUIET_FLOOR = 1e-3
Q_TAIL, Q_N, Q_FILLED, Q_POS = 0, 4, 5, 6
QUIET_HEAD = 7
#: The length of a quiet state.
QUIET_SIZE = QUIET_HEAD + QUIET_WINDOW


@njit(inline="always")
def _quiet_raw(quiet, z):
    """The quiet raw score of the last ``QUIET_WINDOW`` points, ``z`` the
    scaled changes of the last one; NaN until the ring holds the others."""
    F = z.shape[0]
    W = QUIET_WINDOW
    if quiet[Q_FILLED] < W - 1 or F == 0:
        return math.nan
    p = 0.0
    for j in range(F):
        p += z[j] * z[j]
    total = p / F
    pos = int(quiet[Q_POS])
    for i in range(W - 1):
        total += quiet[QUIET_HEAD + (pos - 1 - i) % W]
    return -math.log(math.sqrt(total / W) + QUIET_FLOOR)


@njit(inline="always")
def _quiet_log10(st, quiet, x):
    """``-log10 Q`` of the quiet raw score ``x`` under the exponential tail
    of those counted, at most ``log10(n + 1)``; 0 at or below ``u``, with
    no excess seen, before ``k`` were counted, or for NaN (none yet)."""
    n = quiet[Q_N]
    if not x == x or n < st[S_WINDOW]:
        return 0.0
    mean, var, rate, excess = quiet[Q_TAIL], quiet[Q_TAIL + 1], quiet[Q_TAIL + 2], quiet[Q_TAIL + 3]
    u = mean + math.sqrt(var)
    if x <= u or excess <= 0.0 or rate <= 0.0:
        return 0.0
    return min(-math.log10(rate) + (x - u) * rate / (excess * LN10), math.log10(n + 1.0))


@njit(inline="always")
def _quiet_push(st, quiet, z, counted):
    """Add the quiet raw score with the scaled changes ``z`` to the tail
    model (when ``counted``: past the grace period), and their mean square
    to the ring."""
    F = z.shape[0]
    x = _quiet_raw(quiet, z)
    if counted and x == x:
        n = quiet[Q_N]
        _tail_update(quiet, Q_TAIL, x, max(st[S_ALPHA], 1.0 / (n + 1.0)), n == 0)
        quiet[Q_N] = n + 1.0
    p = 0.0
    for j in range(F):
        p += z[j] * z[j]
    pos = int(quiet[Q_POS])
    quiet[QUIET_HEAD + pos] = p / max(F, 1)
    quiet[Q_POS] = (pos + 1) % QUIET_WINDOW
    quiet[Q_FILLED] = min(quiet[Q_FILLED] + 1.0, QUIET_WINDOW)


# ------------------------------------------------- the seasonal errors
#
# A seasonal state is a scoring state of its own (the same layout; of the
# per-feature blocks only ``scale`` is used: the root mean square of the
# seasonal differences) with arrays beside it, for a period ``P``:
# ``ring[phase, c, j]``, feature ``j``'s deviation from its level at
# ``phase`` in each of the last three periods (the oldest in slot ``c``, the
# caller's count of periods modulo 3); ``level[j]``, the mean of its last
# ``P`` values, and ``last_period[phase, j]``, those values; ``recent[c,
# j]``, its last three values (any order); ``local[j]``, the root mean
# square of its differences from their median. (Deviations from the level,
# not the values themselves: after a level shift the base follows within a
# period, instead of differing for three.)

#: The seasonal base counts once its differences are this fraction of those
#: of the local one, or less (the forecasters' margin over no change).
SEASONAL_MARGIN = 0.9


@njit(inline="always")
def _median3(a, b, c):
    return max(min(a, b), min(max(a, b), c))


@njit(inline="always")
def _seasonal_base(ring, phase, level, j):
    """Feature ``j``'s seasonal base: the level (the mean of the last period)
    plus the median of the deviations from their level at ``phase`` in the
    last three periods."""
    return level[j] + _median3(ring[phase, 0, j], ring[phase, 1, j], ring[phase, 2, j])


@njit(inline="always")
def _seasonal_raw(st, ring, phase, level, values):
    """The raw score of ``values`` against their seasonal base: the
    logarithm of one plus the root mean square of the differences over
    their running root mean square (clipped)."""
    F = values.shape[0]
    _, scale, _, _, _, _ = _blocks(st, F)
    err = 0.0
    for j in range(F):
        zj = _scaled(values[j] - _seasonal_base(ring, phase, level, j), scale[j], st[S_N])
        err += zj * zj
    return math.log1p(math.sqrt(err / F))


@njit(**_JIT)
def seasonal_log10(st, ring, phase, level, local, values):
    """``-log10 Q`` of the seasonal error of ``values``, for the alarms
    (as :func:`_error_log10`, with ``Q`` at least ``1 / (n + 1)`` for
    ``n`` seasonal errors counted: a seasonal model that has seen few
    periods is not sure of its tails); 0 during the grace period
    (while the statistics settle) and unless the seasonal base is a clear
    gain over the local one (the root mean square of its differences, over
    the features, at most :data:`SEASONAL_MARGIN` times the local base's).
    Changes nothing."""
    if st[S_SCORED] < st[S_GRACE]:
        return 0.0
    F = values.shape[0]
    _, scale, _, _, _, _ = _blocks(st, F)
    mine = theirs = 0.0
    for j in range(F):
        mine += scale[j] * scale[j]
        theirs += local[j] * local[j]
    if not mine <= SEASONAL_MARGIN * SEASONAL_MARGIN * theirs:
        return 0.0
    # an error larger than all n counted is the largest of n + 1: Q >= 1 / (n + 1)
    return min(_error_log10(st, _seasonal_raw(st, ring, phase, level, values))[0], math.log10(st[S_SEEN] + 1.0))


@njit(**_JIT)
def seasonal_record(st, ring, phase, slot, recent, local, level, last_period, values):
    """Add the seasonal error of ``values`` to the statistics ``st``, its
    differences to the scales, their differences from the local base (the
    median of the last three values) to ``local``; their deviations from
    the level replace the oldest period's at ``phase`` (``slot``), and
    ``values`` the oldest of ``recent`` and those one period before in the
    level."""
    F = values.shape[0]
    raw = _seasonal_raw(st, ring, phase, level, values)
    news, model = _error_log10(st, raw)
    _push(st, raw, _evidence(news), _evidence(model))
    _, scale, _, _, _, _ = _blocks(st, F)
    n = st[S_N]
    P = last_period.shape[0]
    for j in range(F):
        scale[j] = _rescaled(values[j] - _seasonal_base(ring, phase, level, j), scale[j], n)
        local[j] = _rescaled(values[j] - _median3(recent[0, j], recent[1, j], recent[2, j]), local[j], n)
        ring[phase, slot, j] = values[j] - level[j]
        recent[int(n) % 3, j] = values[j]
        level[j] += values[j] / P - last_period[phase, j] / P
        last_period[phase, j] = values[j]
    st[S_N] = n + 1


# ------------------------------------------------------- recent ranges
#
# A record of the last W values: a value beyond the range of the last W
# values of its feature (none of its last ``k`` beyond that range: a
# breakout) is the largest of W + 1 exchangeable values, ``Q = (W + 1) **
# -(1 + e)`` for ``e`` widths of that range beyond it, as the range since the
# start (:func:`_range_log10`); within an excursion ``Q = (W + 1) ** -e``. On
# a long stream whose level moved, a value inside the range of all values
# but beyond that of the recent ones is such a record. The windows are W =
# RECENT_FIRST, twice that, ... (RECENT_WINDOWS of them), each counting once
# W values were seen; a ``Q`` is multiplied by ``(J + 1) F`` (Bonferroni:
# J windows counting, the range since the start, F features). The values
# are kept as the lows and highs of blocks of RECENT_BLOCK values: a
# window's range is that of its last W / RECENT_BLOCK complete blocks and
# of the block being filled (W to W + RECENT_BLOCK - 1 values).
#
# The recent state ``rr``: ``rr[R_SEEN]`` values recorded, ``rr[R_FILL]``
# values in the block being filled, ``rr[R_POS]`` the next slot of the
# blocks' ring, then per feature (RECENT_PER_FEATURE numbers): the low and
# the high of the block being filled, the rings of the complete blocks'
# lows and highs (RECENT_BLOCKS each), and per window its count of calm
# values (as the range's), low and high over its complete blocks.

RECENT_FIRST = 4096
RECENT_WINDOWS = 3
RECENT_BLOCK = 64
RECENT_BLOCKS = (RECENT_FIRST << (RECENT_WINDOWS - 1)) // RECENT_BLOCK
R_SEEN, R_FILL, R_POS = 0, 1, 2
RECENT_HEAD = 3
RECENT_PER_FEATURE = 2 + 2 * RECENT_BLOCKS + 3 * RECENT_WINDOWS


def recent_size(n_features: int) -> int:
    """The length of a recent state for ``n_features`` features."""
    return RECENT_HEAD + RECENT_PER_FEATURE * n_features


@njit(inline="always")
def _recent_counting(rr):
    """How many windows count: those with at least W values in complete blocks."""
    complete = rr[R_SEEN] - rr[R_FILL]
    J = 0
    for w in range(RECENT_WINDOWS):
        if complete >= (RECENT_FIRST << w):
            J += 1
    return J


@njit(**_JIT)
def recent_log10(st, rr, values):
    """``-log10 Q`` of the most unusual record of ``values`` among the
    windows of the recent state ``rr`` that count (0 when none counts or
    none is a record); changes nothing."""
    F = values.shape[0]
    J = _recent_counting(rr)
    if J == 0 or F == 0:
        return 0.0
    k = st[S_WINDOW]
    fill = rr[R_FILL]
    best = 0.0
    for j in range(F):
        a = RECENT_HEAD + j * RECENT_PER_FEATURE
        c = a + 2 + 2 * RECENT_BLOCKS
        for w in range(J):
            low = rr[c + RECENT_WINDOWS + w]
            high = rr[c + 2 * RECENT_WINDOWS + w]
            if fill > 0:
                low = min(low, rr[a])
                high = max(high, rr[a + 1])
            e = _beyond(values[j], low, high)
            if e > 0.0:
                if rr[c + w] >= k:
                    e += 1.0
                v = e * math.log10((RECENT_FIRST << w) + fill + 2.0)
                if v > best:
                    best = v
    return max(best - math.log10((J + 1.0) * F), 0.0)


@njit(**_JIT)
def recent_record(st, rr, values):
    """Add ``values``, the next point, to the recent state ``rr``: the
    windows' counts of calm values, the block being filled, and, when it
    is complete, the ring of blocks and the windows' ranges."""
    F = values.shape[0]
    J = _recent_counting(rr)
    k = st[S_WINDOW]
    fill = rr[R_FILL]
    for j in range(F):
        a = RECENT_HEAD + j * RECENT_PER_FEATURE
        c = a + 2 + 2 * RECENT_BLOCKS
        for w in range(RECENT_WINDOWS):
            if w < J:
                low = rr[c + RECENT_WINDOWS + w]
                high = rr[c + 2 * RECENT_WINDOWS + w]
                if fill > 0:
                    low = min(low, rr[a])
                    high = max(high, rr[a + 1])
                beyond = _beyond(values[j], low, high) > 0.0
                rr[c + w] = 0.0 if beyond else min(rr[c + w] + 1.0, k)
            else:
                rr[c + w] = k
        if fill == 0:
            rr[a] = values[j]
            rr[a + 1] = values[j]
        else:
            rr[a] = min(rr[a], values[j])
            rr[a + 1] = max(rr[a + 1], values[j])
    rr[R_SEEN] += 1.0
    rr[R_FILL] = fill + 1.0
    if rr[R_FILL] < RECENT_BLOCK:
        return
    pos = int(rr[R_POS])
    complete = int((rr[R_SEEN]) // RECENT_BLOCK)
    for j in range(F):
        a = RECENT_HEAD + j * RECENT_PER_FEATURE
        rr[a + 2 + pos] = rr[a]
        rr[a + 2 + RECENT_BLOCKS + pos] = rr[a + 1]
        c = a + 2 + 2 * RECENT_BLOCKS
        for w in range(RECENT_WINDOWS):
            n = min((RECENT_FIRST << w) // RECENT_BLOCK, complete)
            low = rr[a + 2 + pos]
            high = rr[a + 2 + RECENT_BLOCKS + pos]
            for i in range(1, n):
                b = (pos - i) % RECENT_BLOCKS
                low = min(low, rr[a + 2 + b])
                high = max(high, rr[a + 2 + RECENT_BLOCKS + b])
            rr[c + RECENT_WINDOWS + w] = low
            rr[c + 2 * RECENT_WINDOWS + w] = high
    rr[R_POS] = (pos + 1) % RECENT_BLOCKS
    rr[R_FILL] = 0.0
