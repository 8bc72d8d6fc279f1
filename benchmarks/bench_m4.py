"""M4 Hourly: streamrnn's forecasters scored as the M4 competition scores them.

Data: ``../shared/data/m4`` (414 hourly series, train 700-960 values, test the
next 48; see its README). Protocol, one pass and no per-series tuning: each
series' training part is fed once, in order, through ``learn_one``; then
``forecast(48)`` and ``forecast_interval(48, coverage=0.95)`` are scored
against the test part with the competition's sMAPE, MASE (period 24), OWA
(relative to Naive2's published 18.383 / 2.395), the coverage of the 95 %
intervals and MSIS (the competition's mean scaled interval score, alpha 0.05).

The metric code is checked first against seasonal naive's published figures
(sMAPE 13.912, MASE 1.193, OWA 0.627): the run stops if they differ.

Rows: seasonal naive, then streamrnn's forecaster with its defaults, with
its recurrent path alone (``combine=False``, the forecaster before the
combination) and with ``seasonality=24``, each learning and (defaults and
``seasonality=24``) with its network frozen (``lr=1e-30``: the weights
never move, so its forecasts are the statistical part alone), over
``--seeds`` seeds (median); then the global forecaster
(:class:`~streamrnn.GlobalForecaster`: one network for all series, each
series keyed by its position, and its window network correcting every
series' forecasts from what it learns across them; ``lr=1e-30`` freezes
both networks), fed every series interleaved by time index
(the t-th value of every series, then the (t+1)-th, ...) and forecasting
each series as soon as its training part ends. Run:
``python benchmarks/bench_m4.py [--series N] [--subset even|odd] [--validation] [--seeds 0 1 2] [--cell lstm]
[--only NAME ...]``.

``--validation`` designs without touching the test part: each series' last
48 training values become its test part, and the values before them its
training part (the metric check still runs on the real split). The cost is
CPU time (``time.process_time``: the machine may be shared) per point
learned; the global forecaster learns each time index's values of all series
in one ``learn_many`` call.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time

import numpy as np

H = 48
PERIOD = 24
NAIVE2_SMAPE, NAIVE2_MASE = 18.383, 2.395
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "m4")


def read_series(path: str) -> dict[str, np.ndarray]:
    """One array per series id, from an M4 CSV (ragged rows)."""
    out = {}
    with open(path, newline="") as handle:
        rows = csv.reader(handle)
        next(rows)
        for row in rows:
            out[row[0]] = np.array([float(v) for v in row[1:] if v != ""])
    return out


def load(data: str = DATA) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    train = read_series(os.path.join(data, "Hourly-train.csv"))
    test = read_series(os.path.join(data, "Hourly-test.csv"))
    ids = list(train)
    return ids, [train[i] for i in ids], [test[i] for i in ids]


def smape(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(200.0 * np.abs(y - f) / (np.abs(y) + np.abs(f))))


def seasonal_scale(train: np.ndarray, m: int = PERIOD) -> float:
    """The in-sample mean absolute seasonal difference (MASE's denominator)."""
    return float(np.mean(np.abs(train[m:] - train[:-m])))


def mase(train: np.ndarray, y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(np.abs(y - f))) / seasonal_scale(train)


def msis(train: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, alpha: float = 0.05) -> float:
    """The M4 competition's mean scaled interval score."""
    width = hi - lo
    below = (2.0 / alpha) * np.maximum(lo - y, 0.0)
    above = (2.0 / alpha) * np.maximum(y - hi, 0.0)
    return float(np.mean(width + below + above)) / seasonal_scale(train)


def owa(s: float, m: float) -> float:
    return (s / NAIVE2_SMAPE + m / NAIVE2_MASE) / 2.0


def score(train, test, forecasts, intervals=None) -> dict:
    s = float(np.mean([smape(y, f) for y, f in zip(test, forecasts)]))
    m = float(np.mean([mase(t, y, f) for t, y, f in zip(train, test, forecasts)]))
    out = {"sMAPE": s, "MASE": m, "OWA": owa(s, m)}
    if intervals is not None:
        out["coverage"] = float(np.mean([np.mean((lo <= y) & (y <= hi)) for y, (lo, hi) in zip(test, intervals)]))
        out["MSIS"] = float(np.mean([msis(t, y, lo, hi) for t, y, (lo, hi) in zip(train, test, intervals)]))
    return out


def check_metrics(train, test) -> None:
    """Seasonal naive must score as published, or the metric code is wrong."""
    got = score(train, test, [np.tile(t[-PERIOD:], H // PERIOD) for t in train])
    published = {"sMAPE": 13.912, "MASE": 1.193, "OWA": 0.627}
    for name, value in published.items():
        if abs(got[name] - value) > 5e-4 * max(1.0, value) + 5e-4:
            sys.exit(f"metric check failed: seasonal naive {name} {got[name]:.4f}, published {value}")


def run_model(make, train) -> tuple[list, list, float]:
    """Feed each training part once, then forecast H steps with a 95 % interval."""
    forecasts, intervals, points = [], [], 0
    start = time.process_time()
    for series in train:
        model = make()
        for v in series.tolist():
            model.learn_one(v)
        forecasts.append(np.array(model.forecast(H)))
        lo, hi = model.forecast_interval(H, coverage=0.95)
        intervals.append((np.array(lo), np.array(hi)))
        points += len(series)
    return forecasts, intervals, 1e6 * (time.process_time() - start) / points


def run_global(make, train) -> tuple[list, list, float]:
    """Stream every training part interleaved by time index through one
    global forecaster (keys: the series' positions), each time index's values
    in one ``learn_many``; forecast each series H steps, with a 95 %
    interval, as soon as its training part ends. The cost: CPU time per
    value learned, forecasts included."""
    model = make()
    forecasts, intervals = [None] * len(train), [None] * len(train)
    lengths = np.array([len(series) for series in train])
    start = time.process_time()
    for t in range(int(lengths.max())):
        keys = np.flatnonzero(lengths > t)
        model.learn_many(keys.tolist(), [float(train[k][t]) for k in keys.tolist()])
        for key in np.flatnonzero(lengths == t + 1).tolist():
            forecasts[key] = np.array(model.forecast(key, H))
            lo, hi = model.forecast_interval(key, H, coverage=0.95)
            intervals[key] = (np.array(lo), np.array(hi))
    return forecasts, intervals, 1e6 * (time.process_time() - start) / int(lengths.sum())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--series", type=int, default=None, help="only the first N series (a quick look)")
    parser.add_argument("--subset", choices=["even", "odd"], default=None,
                        help="only the even- or odd-indexed series (designs are decided on one half, confirmed on "
                             "the other)")
    parser.add_argument("--validation", action="store_true",
                        help="score on each series' last 48 training values, learning from those before (design "
                             "without the test part)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    parser.add_argument("--only", nargs="*", default=None, help="configurations to run (names as printed)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.data):
        sys.exit(f"M4 data not found at {args.data}: this benchmark reads ../shared/data/m4 (skipped)")
    import streamrnn

    ids, train, test = load(args.data)
    check_metrics(train, test)
    if args.validation:
        train, test = [t[:-H] for t in train], [t[-H:] for t in train]
    if args.subset:
        start = 0 if args.subset == "even" else 1
        train, test = train[start::2], test[start::2]
    if args.series:
        train, test = train[: args.series], test[: args.series]
    cls = {"lstm": streamrnn.LSTMForecaster, "gru": streamrnn.GRUForecaster, "rnn": streamrnn.RNNForecaster}[args.cell]
    split = "validation (the last 48 training values)" if args.validation else "test"
    print(f"M4 Hourly, {len(train)} series, horizon {H}, {split}; seeds {args.seeds}; {cls.__name__}")
    print("| model | sMAPE | MASE | OWA | 95% coverage | MSIS | CPU µs/point |")
    print("|---|---|---|---|---|---|---|")
    naive = score(train, test, [np.tile(t[-PERIOD:], H // PERIOD) for t in train])
    print(f"| seasonal naive | {naive['sMAPE']:.3f} | {naive['MASE']:.3f} | {naive['OWA']:.3f} | | | |")
    configs = {
        "defaults": {},
        "recurrent path alone (combine=False)": {"combine": False},
        "defaults, network frozen": {"lr": 1e-30},
        "seasonality=24": {"seasonality": 24},
        "seasonality=24, network frozen": {"seasonality": 24, "lr": 1e-30},
        "global": {"global": True},
        "global, correct=False": {"global": True, "correct": False},
        "global, network frozen": {"global": True, "lr": 1e-30},
        "global, seasonality=24": {"global": True, "seasonality": 24},
    }
    for name, params in configs.items():
        if args.only and name not in args.only:
            continue
        runs = []
        for seed in args.seeds:
            if params.get("global"):
                rest = {k: v for k, v in params.items() if k != "global"}
                forecasts, intervals, cost = run_global(
                    lambda: streamrnn.GlobalForecaster(cell=args.cell, seed=seed, **rest), train)
            else:
                forecasts, intervals, cost = run_model(lambda: cls(seed=seed, **params), train)
            runs.append({**score(train, test, forecasts, intervals), "us": cost})
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        each = ", ".join(f"{r['OWA']:.3f}" for r in runs)
        print(f"| {cls.__name__} {name} (median; OWA per seed {each}) | {med['sMAPE']:.3f} | {med['MASE']:.3f} | "
              f"{med['OWA']:.3f} | {med['coverage']:.3f} | {med['MSIS']:.2f} | {med['us']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
