"""Saving and loading models: ``streamrnn.save`` / ``streamrnn.load`` beside
``pickle`` in the same run, for a 1,000-key ModelBank (hidden 32, the
defaults), a 1,000-key SharedWeightsBank and each estimator kind, trained
on a short stream. Reported: median seconds of ``--repeats`` saves and
loads (to a file in a temporary directory) and the file size; pickle's
dumps/loads to and from the same file.

To compare with another version of streamrnn (e.g. the format 1 loader),
run the script with that version first on ``PYTHONPATH`` (it uses only
``save(model, path)`` and ``load(path)``)::

    python benchmarks/bench_persistence.py [--repeats 5] [--only bank]
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_persistence.py
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import tempfile
import time

import numpy as np

import streamrnn
from streamrnn import (GRUClassifier, LSTMForecaster, LSTMRegressor, ModelBank, OnlineRNN, SharedWeightsBank)
from streamrnn.anomaly import PredictiveDetector


def _stream(n, seed=0):
    rng = np.random.default_rng(seed)
    return [({"a": float(np.sin(t / 3)), "b": float(rng.normal())}, float(np.cos(t / 3))) for t in range(n)]


def models(only: str | None) -> dict:
    out = {}

    def want(name):
        return only is None or only in name

    for n in (1000, 1025):  # (1,025 keys: a capacity of 2,048 slots)
        if want("ModelBank"):
            bank = ModelBank(seed=0)
            keys = [f"sensor-{i}" for i in range(n)]
            bank.learn_many(keys, np.ones((n, 1)), np.ones((n, 1)))
            out[f"ModelBank {n:,} keys"] = bank
    if want("SharedWeightsBank"):
        shared = SharedWeightsBank(seed=0, capacity=16)
        keys = [f"sensor-{i}" for i in range(1000)]
        shared.learn_many(keys, np.ones((1000, 1)), np.ones((1000, 1)))
        out["SharedWeightsBank 1,000 keys"] = shared
    if want("LSTMRegressor"):
        model = LSTMRegressor(seed=0)
        for x, y in _stream(200):
            model.learn_one(x, y)
        out["LSTMRegressor"] = model
    if want("GRUClassifier"):
        model = GRUClassifier(seed=0)
        for t, (x, _) in enumerate(_stream(200)):
            model.learn_one(x, t % 3)
        out["GRUClassifier"] = model
    if want("LSTMForecaster"):
        model = LSTMForecaster(seed=0)
        for t in range(300):
            model.learn_one(10 + np.sin(2 * np.pi * t / 12) + 0.01 * t)
        out["LSTMForecaster"] = model
    if want("PredictiveDetector"):
        model = PredictiveDetector(seed=0)
        for x, _ in _stream(200):
            model.learn_one(x)
        out["PredictiveDetector"] = model
    if want("OnlineRNN"):
        rnn = OnlineRNN(hidden_size=64, seed=0)
        rnn.learn_many(np.ones((100, 1)), np.ones((100, 1)))
        out["OnlineRNN hidden 64"] = rnn
    return out


def median_time(f, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default=None, help="models whose name contains this")
    args = parser.parse_args()
    print(f"streamrnn from {os.path.dirname(streamrnn.__file__)}; median of {args.repeats}")
    print(f"{'model':30} {'save s':>8} {'load s':>8} {'MB':>8} | {'pickle dump s':>13} {'load s':>8} {'MB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        path, ppath = os.path.join(tmp, "model.npz"), os.path.join(tmp, "model.pkl")
        for name, model in models(args.only).items():
            streamrnn.save(model, path)
            streamrnn.load(path)  # warm-up (imports, compilation)
            save = median_time(lambda: streamrnn.save(model, path), args.repeats)
            load = median_time(lambda: streamrnn.load(path), args.repeats)
            size = os.path.getsize(path) / 1e6

            def dump():
                with open(ppath, "wb") as f:
                    pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)

            def undump():
                with open(ppath, "rb") as f:
                    pickle.load(f)

            pdump = median_time(dump, args.repeats)
            pload = median_time(undump, args.repeats)
            psize = os.path.getsize(ppath) / 1e6
            print(f"{name:30} {save:8.4f} {load:8.4f} {size:8.2f} | {pdump:13.4f} {pload:8.4f} {psize:8.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
