"""Many sensors, one recurrent model each: ``ModelBank`` learning and
predicting in batches, and ``KeyedForecaster`` for a River-style stream.

Synthetic, seeded sensors: each a daily-like cycle (its own period of 12 to
48 steps, amplitude, phase and level) plus noise and a slow random walk.
Every batch brings the next ``--batch`` readings of every sensor. As in the
quickstart, each sensor's model learns its next change from its last one
(scaled by the running root mean square of that sensor's changes): a
residual over persistence. ``ModelBank.learn_many`` returns the prediction
made before each row was learned, so the errors printed are prequential.
Printed: learn_many and predict_many throughput (rows per second and µs per
row, the median over batches: the first calls also compile), and the
one-step MAE against persistence over the whole stream and its last quarter.
``KeyedForecaster(GRUForecaster)`` runs on the first ``--keyed`` sensors one
reading at a time, for comparison. Timings on a busy machine vary a lot:
a parallel kernel call waits for its slowest thread (see ``--threads``).

With ``--plot PATH`` it draws one sensor's last readings and the bank's
one-step forecasts of them (``streamrnn.plot``; needs matplotlib).

Run: ``python examples/many_sensors.py [--sensors 500] [--steps 600] [--batch 24] [--plot sensor.png]``
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from streamrnn import GRUForecaster, ModelBank
from streamrnn.keyed import KeyedForecaster


def make_sensors(n: int, steps: int, seed: int) -> np.ndarray:
    """Readings of ``n`` synthetic sensors, shape ``(n, steps)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    period = rng.integers(12, 49, size=(n, 1))
    amplitude = rng.uniform(1.0, 10.0, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    level = rng.uniform(-50.0, 50.0, size=(n, 1))
    cycle = amplitude * (np.sin(2 * np.pi * t / period + phase) + 0.3 * np.sin(4 * np.pi * t / period))
    drift = np.cumsum(rng.normal(0.0, 0.02, size=(n, steps)), axis=1) * amplitude
    noise = rng.normal(0.0, 0.05, size=(n, steps)) * amplitude
    return level + cycle + drift + noise


def run_bank(y: np.ndarray, batch: int, bank: ModelBank) -> dict:
    """Stream ``y`` (sensors x steps) through ``bank`` in batches of ``batch``
    steps per sensor. Returns the one-step forecasts (NaN in the warm-up
    batch) and the median cost per row of a batch's calls."""
    n, steps = y.shape
    change = np.diff(y, axis=1)  # change[:, t] = y[:, t + 1] - y[:, t]
    forecasts = np.full((n, steps), np.nan)  # forecasts[:, t]: the forecast of y[:, t]
    sum_sq, count = np.zeros(n), 0  # of the changes learned so far
    learn_us, predict_us = [], []  # µs per row, each batch
    for b, start in enumerate(range(1, steps - 1, batch)):
        # rows t = start .. stop - 1: input change[:, t - 1], target change[:, t]
        stop = min(start + batch, steps - 1)
        width = stop - start
        inputs, targets = change[:, start - 1 : stop - 1], change[:, start:stop]
        if b == 0:  # warm-up batch: scaled by its own inputs, not scored
            scale = np.sqrt((inputs**2).mean(axis=1))
        else:
            scale = np.sqrt(sum_sq / count)
        scale = np.maximum(scale, 1e-12)[:, None]
        keys = np.repeat(np.arange(n), width)  # a key's rows in order
        began = time.perf_counter()
        out = bank.learn_many(keys, (inputs / scale).reshape(-1, 1), (targets / scale).reshape(-1, 1))
        learn_us.append(1e6 * (time.perf_counter() - began) / len(keys))
        if b > 0:  # the forecast of y[t + 1]: y[t] plus the predicted change
            forecasts[:, start + 1 : stop + 1] = y[:, start:stop] + out[:, 0].reshape(n, width) * scale
        sum_sq += (targets**2).sum(axis=1)
        count += width
        # one step ahead for every sensor, from its carried state (changes nothing)
        began = time.perf_counter()
        bank.predict_many(np.arange(n), targets[:, -1:] / scale)
        predict_us.append(1e6 * (time.perf_counter() - began) / n)
    return {
        "forecasts": forecasts,
        "learn_us_per_row": float(np.median(learn_us)),
        "learn_rows_per_s": 1e6 / float(np.median(learn_us)),
        "predict_us_per_row": float(np.median(predict_us)),
        "predict_rows_per_s": 1e6 / float(np.median(predict_us)),
    }


def errors(y: np.ndarray, forecasts: np.ndarray, columns: slice) -> tuple[float, float]:
    """MAE of the forecasts and of persistence on the scored cells of ``columns``."""
    actual, forecast, last = y[:, 1:][:, columns], forecasts[:, 1:][:, columns], y[:, :-1][:, columns]
    scored = np.isfinite(forecast)
    return float(np.abs(forecast - actual)[scored].mean()), float(np.abs(last - actual)[scored].mean())


def run_keyed(y: np.ndarray, seed: int) -> dict:
    """``KeyedForecaster`` on the rows of ``y``, interleaved as a stream of
    ``(sensor, reading)``: forecast one step, then learn the reading."""
    model = KeyedForecaster(GRUForecaster(hidden_size=16), seed=seed)
    n, steps = y.shape
    forecasts = np.full((n, steps), np.nan)
    began = time.perf_counter()
    for t in range(steps):
        for key in range(n):
            if t >= 2:
                forecasts[key, t] = model.forecast(key, 1)[0]
            model.learn_one(key, float(y[key, t]))
    seconds = time.perf_counter() - began
    return {"forecasts": forecasts, "us_per_row": 1e6 * seconds / (n * steps)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=500)
    parser.add_argument("--steps", type=int, default=600, help="readings per sensor")
    parser.add_argument("--batch", type=int, default=24, help="readings per sensor in a batch")
    parser.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    parser.add_argument("--hidden-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--keyed", type=int, default=20, metavar="N",
                        help="sensors also run through KeyedForecaster one reading at a time (0: none)")
    parser.add_argument("--threads", type=int, help="Numba threads for the bank's kernels (default: Numba's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="PATH", help="save a plot of one sensor's forecasts there")
    args = parser.parse_args(argv)
    if args.sensors < 1 or args.steps < 3 or args.batch < 1:
        parser.error("need at least 1 sensor, 3 steps and batches of 1 step")
    if args.batch > args.steps - 1:
        parser.error("--batch must be smaller than --steps (the last readings are forecast, not learned)")
    if args.threads is not None:
        numba.set_num_threads(args.threads)  # results do not depend on it, only the speed

    y = make_sensors(args.sensors, args.steps, args.seed)
    bank = ModelBank(cell=args.cell, hidden_size=args.hidden_size, k1=4, k2=16, lr=args.lr, seed=args.seed)
    result = run_bank(y, args.batch, bank)
    print(f"{args.sensors} synthetic sensors x {args.steps} readings, batches of {args.batch} readings per sensor")
    print(f"ModelBank({args.cell}, hidden={args.hidden_size}): {len(bank)} models, "
          f"{numba.get_num_threads()} Numba threads")
    print(f"  learn_many    {result['learn_us_per_row']:7.2f} µs/row   {result['learn_rows_per_s']:12,.0f} rows/s")
    print(f"  predict_many  {result['predict_us_per_row']:7.2f} µs/row   {result['predict_rows_per_s']:12,.0f} rows/s")
    last_quarter = slice(3 * (args.steps - 1) // 4, None)
    summary = {}
    for name, columns in (("all", slice(None)), ("last quarter", last_quarter)):
        mae, persistence = errors(y, result["forecasts"], columns)
        summary[name] = (mae, persistence)
        print(f"  one-step MAE, {name:<12}: bank {mae:.4f}, persistence {persistence:.4f} "
              f"({100 * (mae / persistence - 1):+.1f} %)")
    result["mae"] = summary

    if args.keyed > 0:
        k = min(args.keyed, args.sensors)
        keyed = run_keyed(y[:k], args.seed)
        mae, persistence = errors(y[:k], keyed["forecasts"], slice(None))
        result["keyed"] = {"us_per_row": keyed["us_per_row"], "mae": (mae, persistence)}
        print(f"KeyedForecaster(GRUForecaster) on {k} sensors, one reading at a time: "
              f"{keyed['us_per_row']:.1f} µs/row (learn_one + forecast(1)); "
              f"one-step MAE {mae:.4f}, persistence {persistence:.4f}")

    if args.plot:
        from streamrnn import plot

        shown = slice(-min(args.steps, 200), None)
        ax = plot.forecast(y[0, shown], result["forecasts"][0, shown],
                           index=np.arange(args.steps)[shown], title="sensor 0: ModelBank one-step forecasts")
        ax.set_xlabel("step")
        plot.save(ax, args.plot)
        print(f"plot written to {args.plot}")
    return result


if __name__ == "__main__":
    main()
