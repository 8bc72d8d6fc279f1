"""Anomaly detectors on the Numenta Anomaly Benchmark's real series.

Reads ``../shared/data/nab`` (or ``--data``): every CSV under ``data/`` (the
shared split: 31 of NAB's real series and its 11 artificial ones) with its
windows from ``labels/combined_windows.json``. Each detector sees each
series once, in order, with one set of default parameters: for every point,
``score_one`` then ``learn_one`` on ``{"value": v}``. Scored as NAB's own
scorer does (:mod:`streamrnn.evaluate`: windows, scaled sigmoid, probation,
normalisation between the null and the perfect detector) with one threshold
over the corpus, optimised for each of NAB's three profiles (standard,
reward_low_FP_rate, reward_low_FN_rate). Reported per detector: the three
scores, the standard threshold and the score per category at it (a
category's raw scores summed and normalised as the corpus'; artificialNoAnomaly,
without windows, has none: its false alarms count in the corpus score), the mean ROC-AUC and average
precision of point labels over the real files (scored rows only), window recall,
false alarms and median delay at a 1 % alarm budget, and µs per point. River's HalfSpaceTrees
(behind a MinMaxScaler), GaussianScorer and PredictiveAnomalyDetection run in
the same run.

Run: ``python benchmarks/bench_nab.py [--detectors ...] [--streamrnn-only] [--seed S] [--halves] [--diagnose]
[--limit-rows N]`` (``--streamrnn-only`` skips River's baselines, the slow part, when iterating;
``--seed`` seeds streamrnn's detectors, 0 by default; ``--halves`` adds the NAB score of each half
of the corpus, the files taken alternately in sorted order: a split fixed in advance, so that a
change developed on one half can be checked on the other; ``--diagnose`` adds what each score is
made of: windows detected, flagged rows outside windows, where detections fall in their windows,
how many are new extremes).
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import statistics
import time

import numpy as np
from river import anomaly, linear_model, optim, preprocessing, time_series

from streamrnn.anomaly import NOT_SCORED, PredictiveDetector, ReconstructionDetector
from streamrnn.evaluate import (
    PROFILES, LabelledSeries, alarm_report, average_precision, nab_corpus_score, nab_file_score, nab_row_weights, roc_auc,
    window_rows,
)

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"


def load_corpus(root: pathlib.Path, limit_rows: int | None = None):
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    corpus = []
    for path in sorted((root / "data").glob("*/*.csv")):
        key = f"{path.parent.name}/{path.name}"
        with path.open() as f:
            rows = list(csv.DictReader(f))
        if limit_rows:
            rows = rows[:limit_rows]
        stamps = [r["timestamp"] for r in rows]
        values = np.array([float(r["value"]) for r in rows])
        # window bounds in the labels carry microseconds; the CSVs do not
        bounds = [(a.split(".")[0], b.split(".")[0]) for a, b in windows.get(key, [])]
        bounds = [(a, b) for a, b in bounds if a in set(stamps) and b in set(stamps)]
        corpus.append((LabelledSeries(key, len(rows), window_rows(stamps, bounds)), values))
    return corpus


def predictive_anomaly_detection():
    """River's PredictiveAnomalyDetection with its docstring settings."""
    period = 12
    model = time_series.SNARIMAX(
        p=period, d=1, q=period, m=period, sd=1,
        regressor=preprocessing.StandardScaler() | linear_model.LinearRegression(optimizer=optim.SGD(0.005)),
    )
    return anomaly.PredictiveAnomalyDetection(model, horizon=1, n_std=3.5, warmup_period=15)


STREAMRNN = ("PredictiveDetector (lstm)", "PredictiveDetector (gru)", "ReconstructionDetector (lstm)")


def detectors(seed: int = 0) -> dict:
    """name -> (factory, takes the value as y: River's supervised detectors);
    streamrnn's detectors seeded with ``seed``."""
    return {
        "PredictiveDetector (lstm)": (lambda: PredictiveDetector(cell="lstm", seed=seed), False),
        "PredictiveDetector (gru)": (lambda: PredictiveDetector(cell="gru", seed=seed), False),
        "ReconstructionDetector (lstm)": (lambda: ReconstructionDetector(cell="lstm", seed=seed), False),
        "HalfSpaceTrees": (lambda: preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42), False),
        "GaussianScorer": (anomaly.GaussianScorer, True),
        "PredictiveAnomalyDetection": (predictive_anomaly_detection, True),
    }


def run(make, supervised: bool, values: np.ndarray, not_scored: bool = False) -> tuple[np.ndarray, float]:
    """Scores of one file (NaN where ``not_scored`` and the detector said
    NOT_SCORED) and the cost per point."""
    model = make()
    scores = np.empty(len(values))
    start = time.perf_counter()
    for i, v in enumerate(values):
        if supervised:
            scores[i] = model.score_one(None, float(v))
            model.learn_one(None, float(v))
        else:
            x = {"value": float(v)}
            scores[i] = model.score_one(x)
            model.learn_one(x)
    cost = (time.perf_counter() - start) / len(values)
    if not_scored:
        scores[scores == NOT_SCORED] = np.nan
    return scores, cost


def category_score(series_list, scores, category: str, threshold: float) -> float:
    """NAB's normalised standard score of one category's files at the corpus
    ``threshold``: their raw scores summed, between those of the null and
    the perfect detector on them (NaN for a category without windows)."""
    raw = null = perfect = 0.0
    for series, s in zip(series_list, scores):
        if series.name.startswith(category + "/"):
            _, window_of = nab_row_weights(series)
            k = len(set(window_of[window_of >= 0].tolist()))  # windows scored (not in probation)
            raw += nab_file_score(series, s, threshold)
            null -= k
            perfect += k
    return 100.0 * (raw - null) / (perfect - null) if perfect > null else float("nan")


def diagnose(corpus, scores, threshold: float) -> str:
    """What the NAB score is made of at ``threshold``: windows detected,
    flagged rows outside windows (and their cost), where in its window the
    first detection falls (0 = left edge, 1 = right edge), and how many
    first detections are values beyond the range of all earlier values."""
    detected = windows = fp_rows = new_extremes = 0
    fp_cost, positions = 0.0, []
    for (series, values), s in zip(corpus, scores):
        weights, window_of = nab_row_weights(series)
        hit = s >= threshold
        outside = hit & (window_of == -1)
        fp_rows += int(outside.sum())
        fp_cost += float(weights[outside].sum())
        for w, (a, b) in enumerate(series.windows):
            if not (window_of[a : b + 1] == w).any():
                continue
            windows += 1
            first = np.flatnonzero(hit[a : b + 1])
            if first.size:
                detected += 1
                i = a + int(first[0])
                positions.append(first[0] / (b - a + 1))
                new_extremes += bool(i > 0 and (values[i] > values[:i].max() or values[i] < values[:i].min()))
    position = f"{np.median(positions):.2f}" if positions else "-"
    return (f"windows detected {detected}/{windows}, flagged rows outside windows {fp_rows} (cost {fp_cost:.1f}), "
            f"median position of first detections {position}, of them new extremes {new_extremes}/{detected}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--detectors", help="comma-separated names (default: all)")
    parser.add_argument("--streamrnn-only", action="store_true", help="skip River's baselines")
    parser.add_argument("--limit-rows", type=int, help="rows per file, for a quick look")
    parser.add_argument("--seed", type=int, default=0, help="seed of streamrnn's detectors (default 0)")
    parser.add_argument("--halves", action="store_true",
                        help="add the NAB score of each half of the corpus (files alternately, sorted)")
    parser.add_argument("--diagnose", action="store_true",
                        help="after the table, what each NAB score is made of at its threshold")
    args = parser.parse_args(argv)
    if not (args.data / "labels" / "combined_windows.json").exists():
        raise SystemExit(f"no NAB data at {args.data} (expected labels/combined_windows.json)")
    corpus = load_corpus(args.data, args.limit_rows)
    chosen = detectors(args.seed)
    if args.detectors:
        chosen = {k: v for k, v in chosen.items() if k in args.detectors.split(",")}
    if args.streamrnn_only:
        chosen = {k: v for k, v in chosen.items() if k in STREAMRNN}
    categories = sorted({s.name.split("/")[0] for s, _ in corpus})
    print(f"{len(corpus)} series, {sum(s.n_rows for s, _ in corpus)} rows, "
          f"{sum(len(s.windows) for s, _ in corpus)} windows")
    halves = ["NAB even files", "NAB odd files"] if args.halves else []
    print("| detector | NAB standard | low FP | low FN | threshold | " + " | ".join(categories + halves)
          + " | ROC-AUC (real) | AP (real) | recall@1% | FA/1000 | delay (rows) | µs/point |")
    print("|---|---|---|---|---|" + "---|" * len(categories + halves) + "---|---|---|---|---|---|")
    notes = []
    for name, (make, supervised) in chosen.items():
        scores, costs = [], []
        for series, values in corpus:
            s, cost = run(make, supervised, values, not_scored=name in STREAMRNN)
            scores.append(s)
            costs.append(cost)
        series_list = [s for s, _ in corpus]
        nab = nab_corpus_score(series_list, scores)
        others = [nab_corpus_score(series_list, scores, PROFILES[p]).score
                  for p in ("reward_low_FP_rate", "reward_low_FN_rate")]
        by_cat = [category_score(series_list, scores, cat, nab.threshold) for cat in categories]
        if args.halves:  # each half at its own best threshold
            by_cat += [nab_corpus_score(series_list[h::2], scores[h::2]).score for h in (0, 1)]
        aucs, aps = [], []
        for series, s in zip(series_list, scores):
            if series.name.startswith("artificial"):  # ROC-AUC and AP over the real series
                continue
            keep = series.scored()
            labels = series.labels()[keep]
            if labels.any() and not labels.all():
                aucs.append(roc_auc(labels, s[keep]))
                aps.append(average_precision(labels, s[keep]))
        report = alarm_report(series_list, scores, budget=0.01)
        print(f"| {name} | {nab.score:.1f} | {others[0]:.1f} | {others[1]:.1f} | {nab.threshold:.4g} | "
              + " | ".join(f"{c:.1f}" for c in by_cat)
              + f" | {np.mean(aucs):.3f} | {np.mean(aps):.3f} | {report.window_recall:.2f} | "
              f"{report.false_alarms_per_1000:.1f} | {report.median_delay:.0f} | "
              f"{1e6 * statistics.median(costs):.1f} |", flush=True)
        if args.diagnose:
            notes.append(f"- {name} at {nab.threshold:.4g}: {diagnose(corpus, scores, nab.threshold)}")
    if notes:
        print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
