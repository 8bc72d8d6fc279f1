"""Forecast accuracy and cost on River's bundled series, beside River's forecasters.

Series: AirlinePassengers (monthly), WaterFlow (hourly), TrumpApproval
(daily), horizon 12. Two protocols:

honest
    at every t: learn y[t], then forecast y[t+1..t+12]; MAE at +1, at +12
    and the mean over +1..+12, over the t from ``--warmup`` on where all
    twelve targets exist (the same t for every model).
river
    ``river.evaluate.evaluate(dataset, model, MAE(), horizon=12)``, which
    forecasts before it learns the current value (its "+1" is two steps
    ahead).

Baselines in the same run: persistence, seasonal naive (period 12),
River's SNARIMAX and HoltWinters with their docstring settings, and
deep-river when it is installed. streamrnn's forecasters run with their
defaults, one set for every series, over ``--seeds`` seeds (the median is
reported). Run: ``python benchmarks/bench_forecasting.py [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from river import datasets, evaluate, metrics, time_series

import streamrnn

H = 12
SERIES = {
    "AirlinePassengers": datasets.AirlinePassengers,
    "WaterFlow": datasets.WaterFlow,
    "TrumpApproval": datasets.TrumpApproval,
}


class Persistence(time_series.base.Forecaster):
    def __init__(self):
        self.last = None

    def learn_one(self, y, x=None):
        self.last = y

    def forecast(self, horizon, xs=None):
        return [self.last if self.last is not None else 0.0] * horizon


class SeasonalNaive(time_series.base.Forecaster):
    def __init__(self, period: int = 12):
        self.period = period
        self.history: list = []

    def learn_one(self, y, x=None):
        self.history = (self.history + [y])[-self.period :]

    def forecast(self, horizon, xs=None):
        if not self.history:
            return [0.0] * horizon
        return [self.history[(len(self.history) - self.period + k) % len(self.history)] for k in range(horizon)]


class WithoutFeatures(time_series.base.Forecaster):
    """Hands a forecaster the series alone (SNARIMAX would use the dates of
    River's data sets as regression features and fail on them)."""

    def __init__(self, model):
        self.model = model

    def learn_one(self, y, x=None):
        self.model.learn_one(y)

    def forecast(self, horizon, xs=None):
        return self.model.forecast(horizon)


def baselines() -> dict:
    models = {
        "persistence": Persistence,
        "seasonal naive": SeasonalNaive,
        "SNARIMAX": lambda: WithoutFeatures(time_series.SNARIMAX(p=12, d=1, q=12, m=12, sd=1)),
        "HoltWinters": lambda: time_series.HoltWinters(
            alpha=0.3, beta=0.1, gamma=0.6, seasonality=12, multiplicative=True
        ),
    }
    try:  # deep-river's recurrent forecasters, their defaults, when installed
        from deep_river.forecasting import GRUForecaster as DeepGRU
        from deep_river.forecasting import LSTMForecaster as DeepLSTM
    except ImportError:
        pass
    else:
        models["deep-river LSTMForecaster"] = lambda: WithoutFeatures(DeepLSTM(seed=0))
        models["deep-river GRUForecaster"] = lambda: WithoutFeatures(DeepGRU(seed=0))
    return models


def honest(make, xs, ys, warmup: int) -> tuple[np.ndarray, float]:
    """MAE per horizon step over t >= warmup, and µs per learn_one + forecast.
    The features of the forecast steps (their dates) are known in advance and
    given, as River's ``evaluate`` does."""
    model = make()
    errors = np.zeros(H)
    n = 0
    start = time.perf_counter()
    for t, y in enumerate(ys):
        model.learn_one(y, xs[t])
        if t + H < len(ys) and t >= warmup:
            forecast = np.asarray(model.forecast(H, xs[t + 1 : t + 1 + H]))
            errors += np.abs(forecast - ys[t + 1 : t + 1 + H])
            n += 1
    elapsed = time.perf_counter() - start
    return errors / n, 1e6 * elapsed / len(ys)


def river_protocol(make, dataset) -> np.ndarray:
    metric = evaluate.evaluate(dataset(), make(), metrics.MAE(), horizon=H)
    return np.array([m.get() for m in metric.metrics])


def cost_us(make, ys, repeats: int = 7, with_dates=None) -> float:
    """Median over ``repeats`` runs of µs per ``learn_one`` + ``forecast(12)``
    along the series, after a warm-up (``with_dates``: the series' x)."""
    runs = []
    for _ in range(repeats):
        model = make()
        for t in range(50):  # warm-up (River's HoltWinters forecasts only after a season)
            model.learn_one(ys[t], with_dates[t] if with_dates else None)
            if t >= 24:
                model.forecast(H, with_dates[t + 1 : t + 1 + H] if with_dates else None)
        start = time.perf_counter()
        for t in range(50, len(ys) - H):
            model.learn_one(ys[t], with_dates[t] if with_dates else None)
            model.forecast(H, with_dates[t + 1 : t + 1 + H] if with_dates else None)
        runs.append((time.perf_counter() - start) / (len(ys) - H - 50))
    return 1e6 * statistics.median(runs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=12,
                        help="first t scored in the honest protocol (12: the first HoltWinters can forecast)")
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--quick", action="store_true", help="one seed")
    args = parser.parse_args(argv)
    seeds = 1 if args.quick else args.seeds

    print(f"honest protocol scored from t = {args.warmup}; µs/sample: learn_one + forecast(12) with the dates")
    print("| series | model | honest +1 | honest +12 | honest mean 1..12 | river +1 | river mean 1..12 | µs/sample |")
    print("|---|---|---|---|---|---|---|---|")
    for name, dataset in SERIES.items():
        xs = [x for x, _ in dataset()]
        ys = np.array([y for _, y in dataset()], dtype=float)
        rows = {}
        for label, make in baselines().items():
            err, us = honest(make, xs, ys, args.warmup)
            rows[label] = (err, river_protocol(make, dataset), us)
        for cell in args.cells.split(","):
            cls = getattr(streamrnn, f"{cell.upper()}Forecaster")
            honest(lambda: cls(seed=0), xs[:30], ys[:30], 0)  # compile before timing
            runs = [
                (honest(lambda: cls(seed=s), xs, ys, args.warmup), river_protocol(lambda: cls(seed=s), dataset))
                for s in range(seeds)
            ]
            med = lambda xs: np.median(np.array(xs), axis=0)  # noqa: E731
            rows[f"{cls.__name__} (median of {seeds})"] = (
                med([r[0][0] for r in runs]),
                med([r[1] for r in runs]),
                statistics.median(r[0][1] for r in runs),
            )
        for label, (err, riv, us) in rows.items():
            print(f"| {name} | {label} | {err[0]:.4g} | {err[-1]:.4g} | {err.mean():.4g} | {riv[0]:.4g} | "
                  f"{riv.mean():.4g} | {us:.1f} |", flush=True)
    xs = [x for x, _ in datasets.WaterFlow()]
    ys = np.array([y for _, y in datasets.WaterFlow()], dtype=float)
    print("\ncost on WaterFlow, median of 7 runs, µs per learn_one + forecast(12):")
    for cell in args.cells.split(","):
        cls = getattr(streamrnn, f"{cell.upper()}Forecaster")
        print(f"  {cls.__name__}: {cost_us(lambda: cls(seed=0), ys):.1f} without x, "
              f"{cost_us(lambda: cls(seed=0), ys, with_dates=xs):.1f} with the dates as x")
    for label in ("HoltWinters", "SNARIMAX"):
        print(f"  {label}: {cost_us(baselines()[label], ys):.1f} without x")


if __name__ == "__main__":
    main()
