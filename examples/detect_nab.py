"""Anomaly detection on one Numenta Anomaly Benchmark (NAB) series with
``PredictiveDetector``, scored the NAB way with ``streamrnn.evaluate``.

The detector sees the series once, in order: for every row, ``score_one``
then ``learn_one`` on ``{"value": v}``. The NAB labels (anomaly windows, from
``labels/combined_windows.json`` of the NAB folder) are used only to score:
printed are the ROC-AUC and average precision of the point labels (rows
after NAB's probation period), the NAB standard score of this file at its
best threshold, and, at an alarm budget (the top 1 % of scores by default),
the windows detected, the false alarms and the detection delays.

The NAB data is not part of streamrnn. By default the series is
``realKnownCause/machine_temperature_system_failure.csv`` in
``../shared/data/nab`` next to the repository; give the path of any NAB CSV
(``timestamp,value``) instead. Without the labels, only the scores' summary
is printed. With ``--plot PATH`` it draws the scores, the threshold, the
alarms, the labelled windows and the series (``streamrnn.plot``; needs
matplotlib).

Run: ``python examples/detect_nab.py [PATH.csv] [--cell lstm] [--budget 0.01] [--plot nab.png]``
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np
import pandas as pd

from streamrnn.anomaly import PredictiveDetector
from streamrnn.evaluate import LabelledSeries, alarm_report, average_precision, nab_corpus_score, roc_auc, window_rows

NAB = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab"
DEFAULT_SERIES = NAB / "data" / "realKnownCause" / "machine_temperature_system_failure.csv"


def find_windows(path: pathlib.Path, labels: pathlib.Path | None) -> list | None:
    """The series' labelled windows (pairs of timestamps), or None when no
    labels are found. ``labels`` defaults to the NAB layout:
    ``<nab>/labels/combined_windows.json`` beside ``<nab>/data/<category>/<file>``."""
    labels = labels or path.resolve().parents[2] / "labels" / "combined_windows.json"
    if not labels.exists():
        return None
    key = f"{path.parent.name}/{path.name}"
    windows = json.loads(labels.read_text())
    if key not in windows:
        return None
    # the labels' timestamps carry microseconds; the CSVs do not
    return [(start.split(".")[0], end.split(".")[0]) for start, end in windows[key]]


def detect(values: np.ndarray, **params) -> tuple[np.ndarray, float]:
    """Anomaly scores of the rows, each scored before it is learned, and the
    seconds taken."""
    detector = PredictiveDetector(**params)
    scores = np.empty(len(values))
    start = time.perf_counter()
    for i, v in enumerate(values):
        x = {"value": float(v)}
        scores[i] = detector.score_one(x)
        detector.learn_one(x)
    return scores, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=pathlib.Path, default=DEFAULT_SERIES,
                        help=f"a NAB series, a CSV with timestamp and value columns (default: {DEFAULT_SERIES})")
    parser.add_argument("--labels", type=pathlib.Path,
                        help="NAB's combined_windows.json (default: found from the series' path)")
    parser.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=0.01, help="fraction of rows flagged (default 0.01)")
    parser.add_argument("--limit-rows", type=int, help="use only the first rows, for a quick look")
    parser.add_argument("--plot", metavar="PATH", help="save a plot of the scores there (PNG, SVG, PDF...)")
    args = parser.parse_args(argv)
    if not 0 < args.budget < 1:
        parser.error("--budget must be between 0 and 1")
    if not args.path.exists():
        raise SystemExit(
            f"no series at {args.path}: the NAB data is not shipped with streamrnn; give the path of a NAB CSV "
            "(timestamp,value), e.g. from https://github.com/numenta/NAB/tree/master/data"
        )

    frame = pd.read_csv(args.path)
    if not {"timestamp", "value"} <= set(frame.columns):
        raise SystemExit(f"{args.path} must have 'timestamp' and 'value' columns, has {list(frame.columns)}")
    if args.limit_rows is not None:
        if args.limit_rows < 1:
            parser.error("--limit-rows must be at least 1")
        frame = frame.iloc[: args.limit_rows]
    stamps = frame["timestamp"].astype(str).tolist()
    values = frame["value"].to_numpy(dtype=float)
    windows = find_windows(args.path, args.labels)

    scores, seconds = detect(values, cell=args.cell, seed=args.seed)
    result = {"rows": len(values), "seconds": seconds}
    print(f"{args.path.name}: {len(values)} rows, PredictiveDetector({args.cell}) "
          f"{1e6 * seconds / len(values):.1f} µs per row (score_one + learn_one)")
    print(f"  anomaly scores: median {np.median(scores):.3f}, 99th percentile {np.quantile(scores, 0.99):.3f}, "
          f"max {scores.max():.3f}")

    if windows is not None:
        # windows reaching past the rows read (with --limit-rows) are left out
        known = set(stamps)
        windows = [(a, b) for a, b in windows if a in known and b in known]
    series = LabelledSeries(f"{args.path.parent.name}/{args.path.name}", len(values),
                            window_rows(stamps, windows or []))
    keep = series.scored()
    # the alarm threshold: the top `budget` of the scores after NAB's probation period
    threshold = float(np.quantile(scores[keep] if keep.any() else scores, 1 - args.budget))
    if windows is None:
        print("  no NAB labels found for this series: nothing to score against")
    else:
        labels = series.labels()
        scored_labels = labels[keep]
        print(f"  {len(windows)} labelled windows, {int(labels.sum())} rows inside them; "
              f"first {int((~keep).sum())} rows are NAB's probation (not scored)")
        if scored_labels.any() and not scored_labels.all():
            result["roc_auc"] = roc_auc(scored_labels, scores[keep])
            result["average_precision"] = average_precision(scored_labels, scores[keep])
            print(f"  ROC-AUC {result['roc_auc']:.3f}, average precision {result['average_precision']:.3f} "
                  f"(window rows: {scored_labels.mean():.3f} of scored rows)")
        if any(series.scored()[b] for _, b in series.windows):
            nab = nab_corpus_score([series], [scores])
            result["nab_score"] = nab.score
            print(f"  NAB standard score {nab.score:.1f} (0: never fires, 100: perfect) "
                  f"at its best threshold {nab.threshold:.3f}")
            report = alarm_report([series], [scores], budget=args.budget)
            result.update(windows_detected=report.windows_detected, windows=report.windows,
                          false_alarms=report.false_alarms)
            delays = ", ".join(str(d) for d in report.delays) or "-"
            print(f"  top {100 * args.budget:g} % of scores (>= {report.threshold:.3f}): "
                  f"{report.windows_detected} of {report.windows} windows detected (delays in rows: {delays}), "
                  f"{report.false_alarms} false alarm rows")

    if args.plot:
        from streamrnn import plot

        flags = (scores >= threshold) & keep
        ax = plot.anomalies(scores, threshold=threshold, flags=flags, values=values, index=stamps,
                            windows=windows or None,
                            title=f"{args.path.name}: PredictiveDetector({args.cell}) scores")
        plot.save(ax, args.plot)
        print(f"plot written to {args.plot}")
    return result


if __name__ == "__main__":
    main()
