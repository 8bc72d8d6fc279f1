"""Evaluating anomaly detectors on labelled series.

**NAB score** (the Numenta Anomaly Benchmark's scoring, standard profile
``A_TP = 1, A_FP = -0.11, A_FN = -1``). Each file has anomaly windows; the
first 15 % of its rows, at most 750, are not scored (probation). A row whose
anomaly score reaches the threshold is a detection:

- a window with detections scores ``A_TP * S(p) / S(-1)`` for its earliest
  one, where ``p = -(right - i + 1) / width`` is the detection's position
  (-1 at the left edge, about 0 at the right) and ``S(p) = 2 sigmoid(-5 p) - 1``
  (``S = -1`` for ``p >= 3``); later detections in a window count nothing;
- a window without one scores ``A_FN``;
- a detection outside windows scores ``|A_FP| * S(q)`` (a negative value),
  with ``q = |i - right_prev| / (width_prev - 1)`` after a window and
  ``q = 3`` (``S = -1``) before the first.

A corpus score is the sum over its files at one threshold, normalised so
that the detector that never fires scores 0 and the one that fires at the
start of every window and nowhere else scores 100:
``100 (S - S_null) / (S_perfect - S_null)``. :func:`nab_corpus_score` finds
the threshold that maximises it, the one choice NAB's protocol allows.

**Point metrics.** A row inside a window is positive. :func:`roc_auc` (the
Mann-Whitney statistic, ties counted half) and :func:`average_precision`
(the area under the precision-recall steps) are computed over scored rows.

**At an alarm budget.** :func:`alarm_report` flags the highest-scoring
fraction of scored rows (never more: tied scores are flagged all or none)
and reports the windows detected, the false alarms and the detection delay.

A NaN score means **not scored** (a detector's warm-up or a missing value;
streamrnn's detectors report such points as :data:`streamrnn.anomaly.NOT_SCORED`,
the CLI as an empty cell): the row is never a detection and takes no part in
the point metrics. An infinite score raises ``ValueError`` naming its row
(and its file).

NAB's three cost profiles are in :data:`PROFILES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

STANDARD = {"tp": 1.0, "fp": 0.11, "fn": 1.0}  # NAB's standard cost profile (weights)
#: NAB's cost profiles (its ``config/profiles.json``): a false positive costs
#: twice as much under ``reward_low_FP_rate``, a false negative twice as much
#: under ``reward_low_FN_rate``.
PROFILES = {
    "standard": STANDARD,
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}


def scaled_sigmoid(position: float) -> float:
    """NAB's ``S(p)``: 0.9866 at p = -1, 0 at p = 0, -0.9866 at p = 1, -1 for p >= 3."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_length(n_rows: int, fraction: float = 0.15) -> int:
    """Rows at the start of a file that are not scored: 15 %, at most 750."""
    return int(min(math.floor(fraction * n_rows), fraction * 5000))


def window_rows(timestamps, windows) -> list[tuple[int, int]]:
    """Row ranges (first, last, both included) of windows given by their first
    and last timestamps (matched to the first row with that timestamp)."""
    index: dict = {}
    for i, t in enumerate(timestamps):
        index.setdefault(t, i)
    rows = []
    for start, end in windows:
        if start not in index or end not in index:
            raise ValueError(f"window [{start}, {end}] does not match the timestamps")
        rows.append((index[start], index[end]))
    return rows


@dataclass
class LabelledSeries:
    """One scored file: its length and its windows as row ranges."""

    name: str
    n_rows: int
    windows: list = field(default_factory=list)  # [(first row, last row)], sorted

    def __post_init__(self):
        end = -1
        for a, b in self.windows:
            if not end < a <= b < self.n_rows:
                raise ValueError(f"{self.name}: window ({a}, {b}) must lie within its {self.n_rows} rows, "
                                 "after the window before it")
            end = b

    def labels(self) -> np.ndarray:
        """Point labels: True inside a window."""
        y = np.zeros(self.n_rows, dtype=bool)
        for a, b in self.windows:
            y[a : b + 1] = True
        return y

    def scored(self) -> np.ndarray:
        """Rows after the probation period."""
        mask = np.zeros(self.n_rows, dtype=bool)
        mask[probation_length(self.n_rows) :] = True
        return mask


def nab_row_weights(series: LabelledSeries, profile: dict = STANDARD) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the score a detection there would earn (see the module's
    description), and the index of its window (-1 outside, -2 in probation)."""
    n = series.n_rows
    weights = np.empty(n)
    window_of = np.full(n, -1)
    max_tp = scaled_sigmoid(-1.0)
    prev_right = prev_width = None
    w = 0
    i = 0
    while i < n:
        if w < len(series.windows) and i == series.windows[w][0]:
            left, right = series.windows[w]
            width = float(right - left + 1)
            for j in range(left, right + 1):
                weights[j] = scaled_sigmoid(-(right - j + 1) / width) * profile["tp"] / max_tp
                window_of[j] = w
            prev_right, prev_width = right, width
            w += 1
            i = right + 1
            continue
        if prev_right is None:
            position = 3.0
        else:
            position = abs(prev_right - i) / (prev_width - 1) if prev_width > 1 else 3.0
        weights[i] = scaled_sigmoid(position) * profile["fp"]
        i += 1
    window_of[: probation_length(n)] = -2
    return weights, window_of


def _check_finite(s: np.ndarray, where: str = "") -> None:
    """Refuse an infinite score, naming its row (and ``where``: the file);
    NaN (not scored) passes."""
    if np.isinf(s).any():
        row = int(np.flatnonzero(np.isinf(s))[0])
        raise ValueError(f"{where}score of row {row} is infinite; scores must be finite (NaN: not scored)")


def _file_scores(series: LabelledSeries, scores) -> np.ndarray:
    """``scores`` as float64, one per row of ``series`` and all finite."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (series.n_rows,):
        raise ValueError(f"{series.name}: scores of shape {s.shape} for {series.n_rows} rows")
    _check_finite(s, f"{series.name}: ")
    return s


def _corpus_scores(corpus: list[LabelledSeries], scores: list) -> list[np.ndarray]:
    """One checked score array per file of ``corpus``."""
    if len(scores) != len(corpus):
        raise ValueError(f"{len(scores)} score arrays for {len(corpus)} files")
    return [_file_scores(series, s) for series, s in zip(corpus, scores)]


def nab_file_score(series: LabelledSeries, scores, threshold: float, profile: dict = STANDARD) -> float:
    """NAB's raw score of one file at ``threshold``."""
    scores = _file_scores(series, scores)
    weights, window_of = nab_row_weights(series, profile)
    hit = scores >= threshold
    total = float(weights[hit & (window_of == -1)].sum())
    for w in range(len(series.windows)):
        rows = window_of == w
        if not rows.any():  # a window inside the probation period is not scored
            continue
        found = hit & rows
        total += float(weights[found].max()) if found.any() else -profile["fn"]
    return total


@dataclass
class NABResult:
    """Corpus score at the best threshold."""

    score: float  # normalised, 100 = perfect, 0 = never fires
    threshold: float
    raw: float
    null: float
    perfect: float
    per_file: dict  # name -> normalised score of the file at the corpus threshold


def nab_corpus_score(corpus: list[LabelledSeries], scores: list, profile: dict = STANDARD) -> NABResult:
    """Normalised NAB score of a corpus at the one threshold that maximises
    it, found exactly over every distinct anomaly score."""
    events_score, events_delta = [], []
    null = perfect = 0.0
    n_windows = []
    scores = _corpus_scores(corpus, scores)
    for series, s in zip(corpus, scores):
        weights, window_of = nab_row_weights(series, profile)
        outside = (window_of == -1) & ~np.isnan(s)  # (a row not scored is never a detection)
        events_score.append(s[outside])
        events_delta.append(weights[outside])
        counted = 0
        for w in range(len(series.windows)):
            rows = np.flatnonzero(window_of == w)
            if rows.size == 0:
                continue
            counted += 1
            rows = rows[~np.isnan(s[rows])]
            order = rows[np.argsort(-s[rows], kind="stable")]
            best = np.maximum.accumulate(weights[order])
            gain = np.diff(np.concatenate([[-profile["fn"]], best]))  # running improvements
            keep = gain > 0
            events_score.append(s[order][keep])
            events_delta.append(gain[keep])
        null -= profile["fn"] * counted
        perfect += profile["tp"] * counted
        n_windows.append(counted)
    score = np.concatenate(events_score)
    delta = np.concatenate(events_delta)
    order = np.argsort(-score, kind="stable")
    score, cumulative = score[order], null + np.cumsum(delta[order])
    # the corpus score at threshold t counts every event with score >= t: the
    # last event of each run of equal scores
    last = np.flatnonzero(np.r_[score[1:] != score[:-1], True])
    candidates = np.r_[null, cumulative[last]]
    thresholds = np.r_[np.inf, score[last]]
    best = int(np.argmax(candidates))
    raw, threshold = float(candidates[best]), float(thresholds[best])

    def normalise(value, lo, hi):
        return 100.0 * (value - lo) / (hi - lo) if hi > lo else 0.0

    per_file = {}
    for series, s, k in zip(corpus, scores, n_windows):
        if k:
            per_file[series.name] = normalise(
                nab_file_score(series, s, threshold, profile), -profile["fn"] * k, profile["tp"] * k
            )
    return NABResult(normalise(raw, null, perfect), threshold, raw, null, perfect, per_file)


# ------------------------------------------------------------- point metrics


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(xs)]
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def _labelled_scores(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """Labels as bools and scores as float64: one each per row, all scores finite."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"labels and scores must be 1-D of one length, got shapes {y.shape} and {s.shape}")
    _check_finite(s)
    scored = ~np.isnan(s)
    return y[scored], s[scored]


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: the probability that a positive outscores a
    negative, ties counting one half, over the scored rows (score not NaN).
    NaN without both classes."""
    y, s = _labelled_scores(labels, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    r = _ranks(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(labels, scores) -> float:
    """Area under the precision-recall steps (scikit-learn's definition):
    the mean of the precision at each distinct threshold, weighted by the
    recall gained there. NaN without positives."""
    y, s = _labelled_scores(labels, scores)
    n_pos = int(y.sum())
    if n_pos == 0:
        return math.nan
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp = np.cumsum(y)[last]
    flagged = last + 1
    precision = tp / flagged
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass
class AlarmReport:
    """Detection at a fixed alarm budget."""

    budget: float  # fraction of scored rows that may be flagged
    threshold: float
    windows_detected: int
    windows: int
    false_alarms: int  # flagged rows outside windows
    rows: int  # scored rows
    delays: list  # for each detected window, rows from its start to the first alarm

    @property
    def window_recall(self) -> float:
        return self.windows_detected / self.windows if self.windows else math.nan

    @property
    def false_alarms_per_1000(self) -> float:
        return 1000.0 * self.false_alarms / self.rows if self.rows else math.nan

    @property
    def median_delay(self) -> float:
        return float(np.median(self.delays)) if self.delays else math.nan


def _alarm_threshold(scores: np.ndarray, budget: float) -> float:
    """The threshold of :func:`alarm_report` over the pooled ``scores``.

    >>> _alarm_threshold(np.array([0.0, 0.0, 0.0, 0.2, 0.5, 0.9]), budget=0.5)
    0.2
    >>> _alarm_threshold(np.array([0.0, 0.0, 0.0, 0.0, 0.5, 0.9]), budget=0.5)
    0.5
    >>> _alarm_threshold(np.zeros(6), budget=0.5)
    inf
    """
    n = len(scores)
    q = 1.0 - budget
    position = n * q + (1.0 - q) - 1.0  # (n - 1) q, computed as np.quantile does
    k = n - math.ceil(position - 1e-9)  # (a rounding error in the position is no part of a row)
    if n == 0 or k < 1:
        return math.inf
    ranked = np.sort(scores)[::-1]
    threshold = float(ranked[k - 1])
    if k < n and ranked[k] == threshold:  # ties at the threshold would overspend the budget
        above = ranked[ranked > threshold]
        threshold = float(above[-1]) if above.size else math.inf
    return threshold


def alarm_report(corpus: list[LabelledSeries], scores: list, budget: float = 0.01) -> AlarmReport:
    """Flag the ``budget`` fraction of the corpus' scored rows with the highest
    anomaly scores (one threshold), and count what they find.

    A row is flagged when its score reaches the threshold. Of ``n`` scored
    rows, the budget allows ``k = n - ceil((1 - budget) (n - 1))`` (about
    ``budget * n``, at least 1: as many as reach the ``1 - budget`` quantile,
    linearly interpolated, when no two scores are equal). The threshold is
    the ``k``-th highest score; when rows tied with it would take the flags
    past ``k``, it is the next distinct score above (``inf``, flagging
    nothing, when there is none). So the flags never exceed the budget, and
    tied scores are flagged all or none.
    """
    if not 0 < budget < 1:
        raise ValueError(f"budget must be in (0, 1), got {budget!r}")
    scores = _corpus_scores(corpus, scores)
    scored = [s[series.scored() & ~np.isnan(s)] for series, s in zip(corpus, scores)]
    pooled = np.concatenate(scored)
    threshold = _alarm_threshold(pooled, budget)
    detected = windows = false_alarms = 0
    delays = []
    for series, s in zip(corpus, scores):
        keep = series.scored()
        alarms = (s >= threshold) & keep
        labels = series.labels()
        false_alarms += int((alarms & ~labels).sum())
        for a, b in series.windows:
            if not keep[b]:
                continue
            windows += 1
            hits = np.flatnonzero(alarms[a : b + 1])
            if hits.size:
                detected += 1
                delays.append(int(hits[0]))
    return AlarmReport(budget, threshold, detected, windows, false_alarms, int(pooled.size), delays)
