"""``streamrnn demo``: forecasting and anomaly detection on River's bundled
WaterFlow series (hourly flow through a pipeline branch, with four known
anomalous segments: three low-value moments and one pumping peak)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TextIO

import numpy as np

from .commands import check_plot
from .options import DEFAULT_THRESHOLD

HORIZON = 12
PEAKS = 5


def score_peaks(scores: np.ndarray, times: list, k: int, apart: dt.timedelta = dt.timedelta(days=1)) -> list[int]:
    """Indices of the ``k`` highest scores at least ``apart`` from each other,
    in time order.

    >>> t0 = dt.datetime(2024, 1, 1)
    >>> score_peaks(np.array([0.1, 0.5, 0.4, 0.2]), [t0 + dt.timedelta(hours=12 * i) for i in range(4)], 2)
    [1, 3]
    """
    chosen: list[int] = []
    for t in np.argsort(-scores, kind="stable"):
        if scores[t] <= 0 or len(chosen) == k:
            break
        if all(abs(times[t] - times[c]) >= apart for c in chosen):
            chosen.append(int(t))
    return sorted(chosen)


def demo(args: argparse.Namespace, stdout: TextIO) -> int:
    """Run the demo; the plot's path is checked first (not after the run)."""
    from river import datasets

    if not args.no_plot:
        check_plot(args.plot, needed=False)

    from ..anomaly import PredictiveDetector
    from ..forecasting import LSTMForecaster

    rows = list(datasets.WaterFlow())
    times = [x["Time"] for x, _ in rows]
    y = np.array([v for _, v in rows], dtype=float)
    n = len(y)
    out = lambda text="": print(text, file=stdout)  # noqa: E731
    out(f"WaterFlow: {n} hourly values, {times[0]:%Y-%m-%d} to {times[-1]:%Y-%m-%d} (River's bundled data set)")

    # forecasting: learn y[t], then forecast y[t+1..t+12] (honest protocol)
    model = LSTMForecaster(seed=args.seed)
    errors = np.full((n, HORIZON), np.nan)
    naive = np.full((n, HORIZON), np.nan)
    one_step = np.full(n, np.nan)
    for t in range(n):
        model.learn_one(y[t], {"Time": times[t]})
        steps = min(HORIZON, n - 1 - t)
        if steps == 0:
            future = model.forecast(HORIZON, [{"Time": times[t] + (k + 1) * (times[t] - times[t - 1])}
                                              for k in range(HORIZON)])
            break
        step = times[t] - times[t - 1] if t else times[1] - times[0]
        f = np.array(model.forecast(HORIZON, [{"Time": times[t] + (k + 1) * step} for k in range(HORIZON)]))
        errors[t, :steps] = np.abs(f[:steps] - y[t + 1 : t + 1 + steps])
        naive[t, :steps] = np.abs(y[t] - y[t + 1 : t + 1 + steps])
        one_step[t + 1] = f[0]
    scored = slice(HORIZON, None)  # after a first half-day of learning
    out(f"\nForecasting with LSTMForecaster(seed={args.seed}), learning every value then forecasting "
        f"{HORIZON} h ahead:")
    out(f"  {'':<14}{'MAE +1':>10}{'MAE +12':>10}{'MAE mean':>10}")
    for name, e in (("LSTMForecaster", errors), ("persistence", naive)):
        e = e[scored]
        out(f"  {name:<14}{np.nanmean(e[:, 0]):>10.3f}{np.nanmean(e[:, -1]):>10.3f}{np.nanmean(e):>10.3f}")

    # anomaly detection: score each value before learning it
    detector = PredictiveDetector(seed=args.seed)
    scores = np.empty(n)
    for t in range(n):
        x = {"flow": y[t]}
        scores[t] = detector.score_one(x)
        detector.learn_one(x)
    flags = scores >= DEFAULT_THRESHOLD
    out(f"\nAnomaly detection with PredictiveDetector(seed={args.seed}), scoring each value before learning it:")
    out(f"  {int(flags.sum())} of {n} hours at or above the alarm threshold {DEFAULT_THRESHOLD} "
        f"(a tail probability of 1e-3)")
    out("  highest score peaks, at least a day apart (the series has four known anomalous segments):")
    for t in score_peaks(scores, times, PEAKS):
        out(f"    {times[t]:%Y-%m-%d %H:%M}  score {scores[t]:.3f}  flow {y[t]:7.2f}"
            f"  (median of the day before {np.median(y[max(0, t - 24):t]):.2f})")

    if not args.no_plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            out("\n(no plot: matplotlib is not installed; pip install streamrnn[plot])")
            return 0
        from .. import plot

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
        plot.forecast(y, one_step, index=times, future=future, ax=top,
                      title=f"WaterFlow: one-step forecasts and the last {HORIZON}-hour forecast")
        plot.anomalies(scores, threshold=DEFAULT_THRESHOLD, flags=flags, values=y, index=times, ax=bottom,
                       title="PredictiveDetector anomaly score")
        fig.tight_layout()
        plot.save(fig, args.plot)
        out(f"\nPlot written to {args.plot}")
    return 0
