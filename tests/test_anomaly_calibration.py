"""The detectors' scores as documented probabilities, on any stationary
stream, and under River's filters and metrics."""

import math

import numpy as np
import pytest
from river import anomaly, metrics

from streamrnn.anomaly import NOT_SCORED, THRESHOLD, PredictiveDetector, ReconstructionDetector
from streamrnn.evaluate import roc_auc

N = 20_000
SETTLED = 2_000  # points left out while the statistics settle (twice the long half-life)


def stationary(kind: str, n: int = N, seed: int = 0) -> np.ndarray:
    """Stationary streams of different scales, periods, noise laws and
    dimensions (rows are points)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    if kind == "tiny-daily-normal":
        return 1e-3 * (np.sin(2 * np.pi * t / 24) + 0.2 * rng.normal(size=n))[:, None]
    if kind == "huge-weekly-student":
        return 1e4 * (3.0 + np.sin(2 * np.pi * t / 7) + 0.3 * rng.standard_t(3, size=n))[:, None]
    if kind == "ar1-laplace-3d":
        e = rng.laplace(size=(n, 3))
        y = np.zeros((n, 3))
        for i in range(1, n):
            y[i] = 0.8 * y[i - 1] + e[i]
        return y
    if kind == "square-uniform-2d":
        square = np.where((t // 25) % 2 == 0, 1.0, -1.0)
        return 100.0 * np.stack([square + 0.1 * rng.uniform(-1, 1, size=n), rng.uniform(-1, 1, size=n)], axis=1)
    raise ValueError(kind)


KINDS = ["tiny-daily-normal", "huge-weekly-student", "ar1-laplace-3d", "square-uniform-2d"]


def points(Y: np.ndarray) -> list[dict]:
    return [{f"f{j}": float(v) for j, v in enumerate(row)} for row in Y]


def flags_of_river_filters(xs: list[dict], seed: int) -> tuple[list, list, list]:
    """Each point's flag under River's ThresholdFilter at the documented
    threshold and under its QuantileFilter(q=0.995), each around its own
    default detector, and the detector's scores (the threshold filter's)."""
    by_threshold = anomaly.ThresholdFilter(PredictiveDetector(seed=seed), threshold=THRESHOLD)
    by_quantile = anomaly.QuantileFilter(PredictiveDetector(seed=seed), q=0.995)
    flags_t, flags_q, scores = [], [], []
    for x in xs:
        s = by_threshold.score_one(x)
        scores.append(s)
        flags_t.append(by_threshold.classify(s))
        by_threshold.learn_one(x)
        flags_q.append(by_quantile.classify(by_quantile.score_one(x)))
        by_quantile.learn_one(x)
    return flags_t, flags_q, scores


@pytest.mark.parametrize("kind", KINDS)
def test_on_any_stationary_stream_the_default_threshold_flags_its_documented_rate(kind):
    """Under River's ThresholdFilter at the documented threshold (alarms at a
    tail probability of 1e-3), about one point in a thousand is flagged,
    whatever the stream's scale, period, noise law and dimension: at most
    twice as many, and at least 0.4 per 1,000 (the tails are conservative
    on light-tailed noise: 0.44 per 1,000 on normal noise); River's
    QuantileFilter(q=0.995) flags 0.25-1 % of the points; and scores spread
    over (0, 0.5) below the alarms: River's ROCAUC with its 10 thresholds
    sees them."""
    flags_t, flags_q, scores = flags_of_river_filters(points(stationary(kind)), seed=0)
    rate_t = np.mean(flags_t[SETTLED:])
    rate_q = np.mean(flags_q[SETTLED:])
    assert 0.4e-3 <= rate_t <= 2e-3, rate_t
    assert 0.0025 <= rate_q <= 0.01, rate_q  # (0.29 % on the square wave: River's P2 estimate of the quantile)
    scores = np.array(scores[SETTLED:])
    deciles = np.quantile(scores, [0.1, 0.5, 0.9])  # (uniform on (0, 0.5) if successive Q were independent)
    assert 0.0 < deciles[0] < 0.2 and 0.1 < deciles[1] < 0.4 and 0.3 < deciles[2] < 0.5, deciles


def anomalous_stream(seed: int = 0):
    """A daily wave with a spike, a flattened day (a long anomaly), a burst
    of noise and a level shift; returns the points and the anomalous rows."""
    rng = np.random.default_rng(seed)
    n = 6000
    t = np.arange(n)
    y = np.sin(2 * np.pi * t / 48) + 0.05 * rng.normal(size=n)
    labels = np.zeros(n, dtype=bool)
    y[2500] += 2.0
    labels[2500] = True
    y[3500:3600] = 0.05 * rng.normal(size=100)  # the wave stops for two periods
    labels[3500:3600] = True
    y[4500:4520] += 0.8 * rng.normal(size=20)
    labels[4500:4520] = True
    y[5500:] += 3.0
    labels[5500] = True
    return points(y[:, None]), labels


def test_a_long_anomaly_keeps_scoring_while_it_lasts_and_river_ranks_it():
    """A flattened stretch of two periods scores high over its span (not only
    at its start), so its points rank above the usual ones; River's ROCAUC
    with its default 10 thresholds agrees with the exact ROC-AUC."""
    xs, labels = anomalous_stream()
    detector = PredictiveDetector(seed=0)
    river_auc = metrics.ROCAUC()
    scores = []
    for x, y in zip(xs, labels):
        s = detector.score_one(x)
        scores.append(s)
        if s != NOT_SCORED:
            river_auc.update(bool(y), s)
        detector.learn_one(x)
    scores = np.array(scores)
    span = scores[3500:3600]
    usual = scores[1000:2500]
    assert np.median(span) > np.quantile(usual, 0.9)
    assert np.mean(span > np.median(usual)) > 0.8  # high over the span, not at its start only
    assert scores[2500] >= THRESHOLD and scores[5500] >= THRESHOLD
    exact = roc_auc(labels[1000:], scores[1000:])
    assert exact > 0.8
    assert abs(river_auc.get() - exact) < 0.05


@pytest.mark.parametrize("protect", [True, False])
def test_threshold_filter_flags_one_point_per_alarm(protect):
    """A spike and a level shift are each flagged once under River's
    ThresholdFilter at the documented threshold, whether
    or not it withholds the flagged points from learning (a point scored and
    withheld is learned when the next one is scored: the history has no
    hole, so a level shift is not flagged at every later point)."""
    rng = np.random.default_rng(1)
    n = 4000
    y = np.sin(np.arange(n) / 6) + 0.05 * rng.normal(size=n)
    y[2000] += 3.0
    y[3000:] += 2.5
    xs = points(y[:, None])
    model = anomaly.ThresholdFilter(PredictiveDetector(seed=0), threshold=THRESHOLD, protect_anomaly_detector=protect)
    flags = []
    for x in xs:
        flags.append(model.classify(model.score_one(x)))
        model.learn_one(x)
    flags = np.array(flags)
    assert flags[2000] and flags[1995:2100].sum() == 1
    # the shift flagged once; a few later records of the new level, each
    # after a calm stretch, are alarms of their own (Q ~ 1 / n each)
    assert flags[3000] and not flags[3001:3020].any() and flags[3000:].sum() <= 6


@pytest.mark.parametrize("cls", [PredictiveDetector, ReconstructionDetector])
def test_warm_up_and_missing_points_are_not_scored_under_rivers_filters(cls):
    """The first point, the grace period and a point with a missing value
    score NOT_SCORED (0.0, which no scored point reports; every scored point
    scores above 0); River's ThresholdFilter never flags them, its
    QuantileFilter's running quantile stays finite, and every point is
    learned though the filters withhold those they flag."""
    xs = points(stationary("tiny-daily-normal", n=600))
    xs[400] = {"f0": None}
    detector = cls(seed=0, grace_period=50)
    by_quantile = anomaly.QuantileFilter(detector, q=0.9)
    scores, flags = [], []
    for x in xs:
        s = by_quantile.score_one(x)
        scores.append(s)
        flags.append(by_quantile.classify(s))
        by_quantile.learn_one(x)
    scores = np.array(scores)
    not_scored = scores == NOT_SCORED
    # (the reconstruction detector has a raw score at the first point already)
    warm_up = 51 if cls is PredictiveDetector else 50
    assert not_scored[:warm_up].all() and not_scored[400] and not_scored.sum() == warm_up + 1
    assert (scores[~not_scored] > 0).all() and (scores < 1).all()
    assert math.isfinite(by_quantile.quantile.get())
    # River's QuantileFilter flags with >=: while the not-scored 0.0 is all
    # it has seen, it flags it (the detector learns such points all the
    # same); past the warm-up it flags about 10 % of the scored points
    flags = np.array(flags)
    assert 0.05 < flags[200:][~not_scored[200:]].mean() < 0.2
    assert not flags[400]  # its quantile is above 0 by then
    threshold = anomaly.ThresholdFilter(cls(seed=0, grace_period=50), threshold=THRESHOLD)
    for x, s in zip(xs, scores):
        assert not (s == NOT_SCORED and threshold.classify(threshold.score_one(x)))
        threshold.learn_one(x)
    assert detector.n_skipped == threshold.anomaly_detector.n_skipped == 1


@pytest.mark.parametrize("protect", [True, False])
def test_an_escalating_burst_is_one_alarm_and_a_later_incident_another(protect):
    """Under River's ThresholdFilter at the documented threshold, a burst
    whose values climb further out at every step (each with more evidence
    than the last) is flagged once: no alarm at the threshold within
    ``short_window`` points after one; a spike after them is flagged again."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=3000)
    y[1500:1506] += np.array([4.0, 8.0, 12.0, 16.0, 20.0, 24.0])
    y[2500] += 30.0
    model = anomaly.ThresholdFilter(PredictiveDetector(seed=0), threshold=THRESHOLD, protect_anomaly_detector=protect)
    flags = []
    for x in points(y[:, None]):
        flags.append(model.classify(model.score_one(x)))
        model.learn_one(x)
    flags = np.array(flags)
    assert flags[1500] and flags[1490:1520].sum() == 1
    assert flags[2500] and flags[2490:2520].sum() == 1
    assert flags[1000:].sum() <= 4  # (the burst, the spike and at most two others)
