"""Forecasting River's bundled WaterFlow series 12 hours ahead with
``LSTMForecaster``, under River's own ``evaluate.evaluate`` protocol, against
a persistence forecast.

WaterFlow holds 1,268 hourly readings of a water pipe's flow. At every hour
River's protocol asks the forecaster for the next ``horizon`` values (giving
it their dates), scores them, then lets it learn the current value; so its
"+1" forecast is made two steps before its target. Printed: the MAE at +1, at
+horizon and averaged over 1..horizon, for the LSTM and for persistence (the
last value learned, repeated), and the time taken.

With ``--plot PATH`` it also draws the last days of the series, the +1
forecasts made along it and the final ``horizon``-step forecast past its end
(``streamrnn.plot``; needs matplotlib).

Run: ``python examples/forecast_waterflow.py [--horizon 12] [--seed 0] [--plot waterflow.png]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
from river import datasets, evaluate, metrics
from river.time_series.base import Forecaster

from streamrnn import LSTMForecaster


class Persistence(Forecaster):
    """Forecasts the last value learned at every step ahead."""

    def __init__(self):
        self.last = None

    def learn_one(self, y, x=None):
        self.last = y

    def forecast(self, horizon, xs=None):
        return [0.0 if self.last is None else self.last] * horizon


def evaluate_forecaster(model, horizon: int, limit: int | None = None, keep_predictions: bool = False):
    """River's protocol (``evaluate.iter_evaluate``, which ``evaluate.evaluate``
    wraps): returns the final ``HorizonMetric`` and, if asked, the +1
    forecasts by the row of their target."""
    stream = datasets.WaterFlow()
    if limit is not None:
        stream = stream.take(limit)
    stream = list(stream)
    predictions = np.full(len(stream), np.nan)
    result = None
    for t, (_, _, y_pred, result) in enumerate(evaluate.iter_evaluate(stream, model, metrics.MAE(), horizon)):
        if keep_predictions:
            # iter_evaluate's first yield is at row `horizon`: its +1 forecast is of the row after it
            predictions[horizon + t + 1] = y_pred[0]
    return result, predictions, stream


def summary(metric) -> dict:
    maes = [m.get() for m in metric.metrics]
    return {"+1": maes[0], f"+{len(maes)}": maes[-1], "mean": float(np.mean(maes))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=12, help="steps forecast at each hour (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden-size", type=int, default=32)
    parser.add_argument("--limit", type=int, help="use only the first LIMIT rows")
    parser.add_argument("--plot", metavar="PATH", help="save a plot of the forecasts there (PNG, SVG, PDF...)")
    parser.add_argument("--plot-last", type=int, default=240, metavar="N",
                        help="hours of the series drawn before the final forecast (default 240; 0: all)")
    args = parser.parse_args(argv)
    if args.horizon < 1:
        parser.error("--horizon must be at least 1")
    if args.limit is not None and args.limit <= 2 * args.horizon:
        parser.error("--limit must be more than twice --horizon (River's evaluate learns --horizon rows "
                     "before it forecasts, and scores each forecast against the next --horizon rows)")

    results = {}
    print(f"WaterFlow, River's evaluate.evaluate protocol, horizon {args.horizon}: MAE")
    print(f"  {'model':<30} {'+1':>8} {'+' + str(args.horizon):>8} {'mean':>8} {'seconds':>8}")
    for name, model in (
        ("persistence", Persistence()),
        (f"LSTMForecaster(seed={args.seed})", LSTMForecaster(hidden_size=args.hidden_size, seed=args.seed)),
    ):
        start = time.perf_counter()
        metric, predictions, stream = evaluate_forecaster(model, args.horizon, args.limit, keep_predictions=True)
        seconds = time.perf_counter() - start
        row = summary(metric)
        results[name] = row
        print(f"  {name:<30} " + " ".join(f"{v:8.4f}" for v in row.values()) + f" {seconds:8.2f}")

    lstm, persistence = list(results.values())[1], list(results.values())[0]
    change = 100 * (lstm["mean"] / persistence["mean"] - 1)
    print(f"LSTM vs persistence, mean MAE over 1..{args.horizon}: {change:+.1f} %")

    if args.plot:
        from streamrnn import plot

        # `model` is the LSTM; River's protocol leaves the last `horizon` rows
        # unlearned (they were only targets): learn them, then forecast past the end
        for x, y in stream[-args.horizon:]:
            model.learn_one(y, x)
        times = [x["Time"] for x, _ in stream]
        future_times = [times[-1] + dt.timedelta(hours=k + 1) for k in range(args.horizon)]
        future = model.forecast(args.horizon, xs=[{"Time": t} for t in future_times])
        actual = [y for _, y in stream]
        shown = slice(-args.plot_last if args.plot_last > 0 else None, None)
        ax = plot.forecast(actual[shown], predictions[shown], index=times[shown], future=future,
                           future_index=future_times,
                           title=f"WaterFlow: LSTMForecaster's +1 forecasts and a final {args.horizon}-hour forecast")
        ax.set_ylabel("flow")
        plot.save(ax, args.plot)
        print(f"plot written to {args.plot}")
    return results


if __name__ == "__main__":
    main()
