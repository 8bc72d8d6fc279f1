"""NAB scoring and point metrics on hand-made cases with known answers."""

import math

import numpy as np
import pytest

from streamrnn.evaluate import (
    LabelledSeries,
    alarm_report,
    average_precision,
    nab_corpus_score,
    nab_file_score,
    probation_length,
    roc_auc,
    scaled_sigmoid,
    window_rows,
)


def test_scaled_sigmoid_values_from_nab():
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == -1.0


def test_probation_is_15_percent_capped_at_750():
    assert probation_length(100) == 15
    assert probation_length(4999) == 749
    assert probation_length(100_000) == 750


def one_window(n=100):
    return LabelledSeries("f", n, [(50, 59)])  # width 10, probation 15 rows


def detections_at(*rows, n=100):
    s = np.zeros(n)
    s[list(rows)] = 1.0
    return s


def test_detection_at_the_left_edge_scores_a_full_true_positive():
    assert nab_file_score(one_window(), detections_at(50), 0.5) == pytest.approx(1.0)


def test_detection_at_the_right_edge_scores_little():
    expected = (2 / (1 + math.exp(-0.5)) - 1) / (2 / (1 + math.exp(-5)) - 1)  # S(-0.1) / S(-1)
    assert nab_file_score(one_window(), detections_at(59), 0.5) == pytest.approx(expected)
    assert expected == pytest.approx(0.248242, abs=1e-6)


def test_only_the_first_detection_in_a_window_counts():
    assert nab_file_score(one_window(), detections_at(52, 53, 58), 0.5) == pytest.approx(
        nab_file_score(one_window(), detections_at(52), 0.5)
    )


def test_missed_window_and_false_positives():
    assert nab_file_score(one_window(), np.zeros(100), 0.5) == -1.0
    # before any window: -0.11; 11 rows after a width-10 window: 0.11 * S(11 / 9)
    after = 0.11 * (2 / (1 + math.exp(5 * 11 / 9)) - 1)
    assert nab_file_score(one_window(), detections_at(20), 0.5) == pytest.approx(-1.0 - 0.11)
    assert nab_file_score(one_window(), detections_at(70), 0.5) == pytest.approx(-1.0 + after)
    assert after == pytest.approx(-0.10951, abs=1e-5)
    # a detection in the probation period is not scored
    assert nab_file_score(one_window(), detections_at(5), 0.5) == -1.0


def test_corpus_score_is_normalised_and_its_threshold_optimised():
    corpus = [one_window(), LabelledSeries("g", 200, [(100, 119), (150, 159)])]
    perfect = [detections_at(50), detections_at(100, 150, n=200)]
    assert nab_corpus_score(corpus, perfect).score == pytest.approx(100.0)
    assert nab_corpus_score(corpus, [np.zeros(100), np.zeros(200)]).score == pytest.approx(0.0)
    # graded scores: at 0.8 both first windows are found at their left edge
    # and the last is missed (1 + 1 - 1); at 0.6 a false positive before any
    # window costs 0.11; at 0.5 the last window is found at its right edge,
    # which beats missing it: the optimum
    s1 = np.zeros(100)
    s1[50] = 0.9
    s2 = np.zeros(200)
    s2[100], s2[30], s2[159] = 0.8, 0.6, 0.5
    late = (2 / (1 + math.exp(-0.5)) - 1) / (2 / (1 + math.exp(-5)) - 1)
    assert nab_file_score(corpus[1], s2, 0.8) == pytest.approx(0.0)
    assert nab_file_score(corpus[1], s2, 0.6) == pytest.approx(-0.11)
    result = nab_corpus_score(corpus, [s1, s2])
    assert result.threshold == 0.5
    assert result.raw == pytest.approx(1.0 + 1.0 - 0.11 + late)
    assert result.score == pytest.approx(100 * (result.raw + 3.0) / 6.0)
    assert result.per_file["f"] == pytest.approx(100.0)
    assert result.per_file["g"] == pytest.approx(100 * (1.0 - 0.11 + late + 2.0) / 4.0)


def test_window_rows_from_timestamps():
    ts = ["a", "b", "b", "c", "d"]
    assert window_rows(ts, [("b", "d")]) == [(1, 4)]
    with pytest.raises(ValueError, match="does not match"):
        window_rows(ts, [("x", "d")])


def test_point_metrics_against_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.1
    s = np.round(rng.normal(size=500) + y, 1)  # rounding makes ties
    assert roc_auc(y, s) == pytest.approx(sklearn_metrics.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(sklearn_metrics.average_precision_score(y, s), abs=1e-12)
    assert roc_auc([True, False], [0.5, 0.5]) == 0.5
    assert math.isnan(roc_auc([False, False], [0.1, 0.2]))


def test_alarm_report_counts_windows_false_alarms_and_delays():
    corpus = [LabelledSeries("a", 100, [(50, 59)]), LabelledSeries("b", 100, [(80, 89)])]
    a = np.zeros(100)
    a[53] = 1.0  # found 3 rows into its window
    b = np.zeros(100)
    b[30] = 1.0  # a false alarm; window b missed
    report = alarm_report(corpus, [a, b], budget=0.01)
    assert (report.windows_detected, report.windows, report.false_alarms) == (1, 2, 1)
    assert report.delays == [3] and report.window_recall == 0.5
    assert report.rows == 170


def test_scores_that_do_not_fit_their_files_are_refused():
    """A missing file or a short score array would silently change the
    figures (a file dropped by zip, labels truncated)."""
    f, g = LabelledSeries("f", 100, [(40, 49)]), LabelledSeries("g", 100, [(60, 69)])
    hit = np.zeros(100)
    hit[40] = 1
    with pytest.raises(ValueError, match="1 score arrays for 2 files"):
        nab_corpus_score([f, g], [hit])
    with pytest.raises(ValueError, match="1 score arrays for 2 files"):
        alarm_report([f, g], [hit])
    with pytest.raises(ValueError, match=r"g: scores of shape \(99,\) for 100 rows"):
        alarm_report([f, g], [hit, hit[:99]])
    for metric in (roc_auc, average_precision):
        with pytest.raises(ValueError, match="1-D of one length"):
            metric([0, 1, 1], [0.1, 0.2])
    for windows in ([(60, 69), (40, 49)], [(40, 49), (45, 50)], [(95, 100)], [(-1, 3)], [(5, 4)]):
        with pytest.raises(ValueError, match="must lie within its 100 rows"):
            LabelledSeries("h", 100, windows)


def test_infinite_scores_are_refused_naming_the_file():
    """An infinite score would count as a detection at every threshold, inf
    included (a per-file score of -109 beside a corpus score of 0)."""
    f, g = LabelledSeries("f", 100, [(50, 59)]), LabelledSeries("g", 100, [(60, 69)])
    ok = np.zeros(100)
    for bad in (np.r_[np.zeros(50), np.full(50, np.inf)], np.where(np.arange(100) == 7, -np.inf, 0.0)):
        row = int(np.flatnonzero(np.isinf(bad))[0])
        with pytest.raises(ValueError, match=rf"g: score of row {row} is infinite"):
            nab_corpus_score([f, g], [ok, bad])
        with pytest.raises(ValueError, match=rf"g: score of row {row} is infinite"):
            nab_file_score(g, bad, 0.5)
        with pytest.raises(ValueError, match=rf"g: score of row {row} is infinite"):
            alarm_report([f, g], [ok, bad], budget=0.05)
        for metric in (roc_auc, average_precision):
            with pytest.raises(ValueError, match=rf"score of row {row} is infinite"):
                metric(g.labels(), bad)


def test_nan_scores_are_rows_not_scored():
    """A NaN score (not scored) is never a detection, and the point metrics
    and the alarm budget leave its row out: the figures equal those of the
    same rows with the NaN rows removed (point metrics) or scored below
    every threshold (NAB)."""
    rng = np.random.default_rng(0)
    f, g = LabelledSeries("f", 300, [(100, 129)]), LabelledSeries("g", 300, [(200, 229), (260, 279)])
    scores = [rng.random(300), rng.random(300)]
    scores[0][100:110] += 0.5
    missing = [rng.random(300) < 0.2, rng.random(300) < 0.2]
    with_nan = [np.where(m, np.nan, s) for s, m in zip(scores, missing)]
    low = [np.where(m, -1.0, s) for s, m in zip(scores, missing)]
    got, want = nab_corpus_score([f, g], with_nan), nab_corpus_score([f, g], low)
    assert (got.score, got.threshold, got.per_file) == (want.score, want.threshold, want.per_file)
    assert nab_file_score(f, with_nan[0], 0.9) == nab_file_score(f, low[0], 0.9)
    for metric in (roc_auc, average_precision):
        labels = g.labels()
        assert metric(labels, with_nan[1]) == metric(labels[~missing[1]], scores[1][~missing[1]])
    report = alarm_report([f, g], with_nan, budget=0.05)
    assert report.rows == sum(int((s.scored() & ~m).sum()) for s, m in zip([f, g], missing))


def test_alarm_report_flags_at_most_its_budget_when_scores_tie():
    """Mostly-zero scores: a quantile threshold of 0 flagged every row; the
    budget (5 % of 85 scored rows: 5) is kept, ties flagged all or none."""
    corpus = [LabelledSeries("f", 100, [(50, 59)])]
    s = np.zeros(100)
    s[[20, 52, 70, 80]] = [0.3, 1.0, 0.5, 0.2]
    report = alarm_report(corpus, [s], budget=0.05)
    assert report.rows == 85 and report.threshold == 0.2
    assert (report.windows_detected, report.false_alarms, report.delays) == (1, 3, [2])
    # ties at the k-th highest score: the next distinct score above it
    s[[30, 31]] = 0.2  # 0.2 now ties three rows, the 4th to 6th highest
    report = alarm_report(corpus, [s], budget=0.05)
    assert report.threshold == 0.3 and report.false_alarms == 2
    # every score tied: nothing can be flagged within the budget
    report = alarm_report(corpus, [np.ones(100)], budget=0.05)
    assert report.threshold == math.inf and report.false_alarms == report.windows_detected == 0


@pytest.mark.parametrize("seed", range(5))
def test_alarm_report_flags_the_same_rows_as_the_quantile_without_ties(seed):
    rng = np.random.default_rng(seed)
    corpus = [LabelledSeries("a", 300, [(100, 119)]), LabelledSeries("b", 211, [(150, 159), (190, 199)])]
    scores = [rng.random(300), rng.random(211)]
    pooled = np.concatenate([s[series.scored()] for series, s in zip(corpus, scores)])
    for budget in (0.001, 0.01, 0.05, 0.1, 1 / 3, 0.5, 0.7, 0.99):
        report = alarm_report(corpus, scores, budget=budget)
        quantile = np.quantile(pooled, 1 - budget)
        assert (pooled >= report.threshold).sum() == (pooled >= quantile).sum() <= max(1, math.ceil(budget * len(pooled)))
        false_alarms = sum(int(((s >= quantile) & series.scored() & ~series.labels()).sum())
                           for series, s in zip(corpus, scores))
        assert report.false_alarms == false_alarms
