"""Throughput of a ModelBank of independent LSTMs on the CPU threads.

N models (hidden 32, input 1, float32, k1 = k2 = 16); each batch holds one
row per model (``--rows-per-key`` rows each). Reported: µs per stream-sample
(one row of one model) for ``learn_many`` and ``predict_many``, median of
repeated batches after warm-up, with Numba's thread count and layer; then
the same stream through a SharedWeightsBank (one set of weights, a state and
window per key; rows run in arrival order on one thread). Keys are strings
("sensor-17"), then the same keys as a numpy array of integer ids, which the
banks map to slots without Python objects.

Run: ``python benchmarks/bench_bank.py [--models 1000] [--threads 2]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np

from streamrnn import ModelBank, SharedWeightsBank


def rates(bank, keys, X, Y, repeats: int) -> tuple[list, list]:
    """Seconds per row of ``learn_many`` and of ``predict_many``, ``repeats`` times each."""
    learn, predict = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        bank.learn_many(keys, X, Y)
        learn.append((time.perf_counter() - t) / len(keys))
        t = time.perf_counter()
        bank.predict_many(keys, X)
        predict.append((time.perf_counter() - t) / len(keys))
    return learn, predict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--rows-per-key", type=int, default=16)
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cell", default="lstm")
    args = parser.parse_args(argv)
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    keys = [f"sensor-{i}" for i in range(args.models)] * args.rows_per_key
    n = len(keys)
    X = rng.normal(size=(n, 1)).astype(np.float32)
    Y = rng.normal(size=(n, 1)).astype(np.float32)
    print(f"{args.models} {args.cell.upper()}s, hidden 32, float32, k1 = k2 = 16, {args.rows_per_key} rows per key "
          f"per batch")
    for cls in (ModelBank, SharedWeightsBank):
        bank = cls(seed=0, cell=args.cell, hidden_size=32, k1=16, k2=16)
        bank.learn_many(keys, X, Y)  # creates the models, compiles
        bank.predict_many(keys, X)
        learn, predict = rates(bank, keys, X, Y, args.repeats)
        ids = np.tile(np.arange(args.models), args.rows_per_key)  # the same keys as integer ids
        bank.learn_many(ids, X, Y)
        learn_ids, predict_ids = rates(bank, ids, X, Y, args.repeats)
        threads = f"{numba.get_num_threads()} threads ({numba.threading_layer()})" if cls is ModelBank else "1 thread"
        print(f"{cls.__name__}, {threads}, µs per stream-sample, string keys / integer-id array keys:")
        print(f"  learn_many:   {1e6 * statistics.median(learn):.3f} / {1e6 * statistics.median(learn_ids):.3f}")
        print(f"  predict_many: {1e6 * statistics.median(predict):.3f} / {1e6 * statistics.median(predict_ids):.3f}")


if __name__ == "__main__":
    main()
