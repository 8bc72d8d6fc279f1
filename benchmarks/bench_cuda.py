"""Throughput of a ModelBank of independent LSTMs on a CUDA GPU, beside the CPU.

N models (default 100 000; hidden 32, input 1, float32, k1 = k2 = 16) on the
GPU, one thread per model; each batch holds ``--rows-per-key`` rows of every
model (16: one weight update per model per batch). Reported, median of
repeated batches after warm-up, in stream-samples per second (one row of one
model):

- ``kernel``: the CUDA kernels alone, on inputs already in GPU memory, and
  the block-per-model kernels (:mod:`streamrnn.kernels.cuda.cooperative`);
- ``ModelBank``: the whole ``learn_many`` / ``predict_many`` call (grouping
  the keys, transfers, kernel);
- the same bank on the CPU (Numba threads; fewer models, per-sample rates);
- the memory-bandwidth floor: the bytes of model state a sample touches
  (parameters read in the forward step, state and window row written, and
  the update's reads and writes of parameters, gradient, moments and window,
  spread over its k1 samples), against the device's peak bandwidth and a
  measured device-to-device copy.

Run: ``python benchmarks/bench_cuda.py [--models 100000] [--cpu-models 2000]``.
Exits with a message when no CUDA GPU is present. ``--tiny`` (a few tiny
models) checks the script, also under ``NUMBA_ENABLE_CUDASIM=1``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numba
import numpy as np

from streamrnn import ModelBank
from streamrnn.kernels import layout as L


def bytes_per_sample(lay: np.ndarray, itemsize: int) -> tuple[float, float]:
    """Bytes of model state that one learned sample and one predicted sample
    must move at least (each value read or written once per use)."""
    P = int(lay[L.L_NPARAM])  # parameters (padded), as many gradients and moments
    S = 2 * int(lay[L.L_LAYERS]) * int(lay[L.L_HSTRIDE])  # carried state
    C = int(lay[L.L_CROW])  # one stored window step (input, target, prediction, gate activations)
    R = int(lay[L.L_ROW])  # one expanded window row (activations, states, their gradients)
    k1, k2 = int(lay[L.L_K1]), int(lay[L.L_K2])
    forward = P + 2 * S + C  # read the weights and state, write state and the stored step
    # an update: each stored step read and expanded into a full row (C + R),
    # the rows read and their gradients written (2 R per step) with the
    # weights read per step, the gradient written and read, parameters and
    # two moments read and written
    update = k2 * (P + C + 3 * R) + 2 * P + 6 * P
    predict = P + 2 * S  # read weights and state, write the scratch state
    return itemsize * (forward + update / k1), itemsize * predict


def device_bandwidth(cuda) -> float | None:
    """Peak memory bandwidth of the current GPU in bytes/s, from its memory
    clock and bus width (None if the driver does not say)."""
    try:
        dev = cuda.get_current_device()
        return 2 * dev.MEMORY_CLOCK_RATE * 1e3 * dev.GLOBAL_MEMORY_BUS_WIDTH / 8
    except Exception:  # noqa: BLE001 - an attribute the driver lacks
        return None


def timed(fn, repeats: int, sync=lambda: None) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs (after one warm-up)."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--cpu-models", type=int, default=2000)
    parser.add_argument("--rows-per-key", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--k", type=int, default=16, help="k1 = k2")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="a few tiny models: checks the script (simulator too)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.models, args.cpu_models, args.rows_per_key, args.hidden, args.k, args.repeats = 3, 3, 2, 3, 2, 1

    try:
        from streamrnn.kernels import cuda as KC

        cuda = KC.cuda_module()
    except RuntimeError as e:
        sys.exit(f"bench_cuda: {e}")
    simulated = KC.is_simulated()
    if simulated and not args.tiny:
        sys.exit("bench_cuda: the CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): it runs only --tiny")
    device = "Numba's CUDA simulator" if simulated else cuda.get_current_device().name
    if isinstance(device, bytes):
        device = device.decode()

    config = dict(cell=args.cell, hidden_size=args.hidden, k1=args.k, k2=args.k, dtype="float32")
    rpk = args.rows_per_key
    print(f"{args.cell.upper()}s, hidden {args.hidden}, float32, k1 = k2 = {args.k}, {rpk} rows per key per batch")
    rng = np.random.default_rng(0)
    results = {}
    for where, n_models in (("cuda", args.models), ("cpu", args.cpu_models)):
        keys = list(range(n_models)) * rpk
        n = len(keys)
        X = rng.normal(size=(n, 1)).astype(np.float32)
        Y = rng.normal(size=(n, 1)).astype(np.float32)
        t = time.perf_counter()
        bank = ModelBank(seed=0, capacity=n_models, device=where, **config)
        bank.learn_many(keys, X, Y)  # creates the models, compiles
        bank.predict_many(keys, X)
        setup = time.perf_counter() - t
        sync = cuda.synchronize if where == "cuda" else (lambda: None)
        learn = timed(lambda: bank.learn_many(keys, X, Y), args.repeats, sync)
        predict = timed(lambda: bank.predict_many(keys, X), args.repeats, sync)
        results[where] = (n, learn, predict)
        label = device if where == "cuda" else f"CPU, {numba.get_num_threads()} threads"
        print(f"ModelBank on {label}: {n_models} models, {n} rows per batch (set-up and compilation {setup:.1f} s)")
        print(f"  learn_many:   {n / learn:14,.0f} stream-samples/s ({1e9 * learn / n:9.2f} ns each)")
        print(f"  predict_many: {n / predict:14,.0f} stream-samples/s ({1e9 * predict / n:9.2f} ns each)")
        if where != "cuda":
            continue

        # the kernels alone, on inputs already in GPU memory
        slots = np.array([bank._slot_of[k] for k in range(n_models)], dtype=np.int64)[np.array(keys)]
        groups, starts, order = (cuda.to_device(a) for a in ModelBank._groups(slots))
        X_d, Y_d = cuda.to_device(X), cuda.to_device(Y)
        out_d = cuda.device_array((n, 1), dtype=np.float32)
        d = bank._dev
        k_learn = timed(lambda: KC.bank_learn(d.lay, d.ctr, d.buf, groups, starts, order, X_d, Y_d, out_d),
                        args.repeats, cuda.synchronize)
        k_predict = timed(lambda: KC.bank_predict(d.lay, d.buf, groups, starts, order, X_d, out_d),
                          args.repeats, cuda.synchronize)
        print(f"  kernel, learn:   {n / k_learn:14,.0f} stream-samples/s")
        print(f"  kernel, predict: {n / k_predict:14,.0f} stream-samples/s")
        from streamrnn.kernels.cuda import cooperative

        default = cooperative.threads_for(bank._lay)
        variants = {default, min(2 * default, cooperative.MAX_THREADS), max(default // 2, 1)}
        if args.tiny:
            variants = {default}
        for threads in sorted(variants):
            blocks = f"a block of {threads} threads per model"
            if cooperative.supports(bank._lay) is None:
                k_block = timed(lambda: KC.bank_learn(d.lay, d.ctr, d.buf, groups, starts, order, X_d, Y_d, out_d,
                                                      block_per_model=True, threads=threads),
                                args.repeats, cuda.synchronize)
                print(f"  kernel, learn, {blocks}: {n / k_block:14,.0f} stream-samples/s")
            if cooperative.supports(bank._lay, learn=False) is None:
                k_block = timed(lambda: KC.bank_predict(d.lay, d.buf, groups, starts, order, X_d, out_d,
                                                        block_per_model=True, threads=threads),
                                args.repeats, cuda.synchronize)
                print(f"  kernel, predict, {blocks}: {n / k_block:14,.0f} stream-samples/s")
        print(f"  (block per model: {cooperative.shared_elements(bank._lay, default) * 4:,} bytes of shared "
              f"memory per block at {default} threads)")

        learn_bytes, predict_bytes = bytes_per_sample(bank._lay, 4)
        copy = d.buf  # a device-to-device copy of the whole bank: achievable bandwidth
        dst = cuda.device_array_like(copy)
        t_copy = timed(lambda: KC._launch("copy_columns_kernel", copy.shape[1], copy, dst), args.repeats,
                       cuda.synchronize)
        measured = 2 * copy.size * copy.dtype.itemsize / t_copy
        peak = device_bandwidth(cuda)
        print(f"  bytes of model state per sample: learn {learn_bytes:,.0f}, predict {predict_bytes:,.0f}")
        for name, bw in (("peak", peak), ("measured copy", measured)):
            if bw and not simulated:
                print(f"  bandwidth floor at {name} {bw / 1e9:,.0f} GB/s: learn {bw / learn_bytes:,.0f}, "
                      f"predict {bw / predict_bytes:,.0f} stream-samples/s "
                      f"(kernel at {100 * learn_bytes * n / k_learn / bw:.0f}% and "
                      f"{100 * predict_bytes * n / k_predict / bw:.0f}% of it)")
    if "cpu" in results:
        (ng, lg, pg), (nc, lc, pc) = results["cuda"], results["cpu"]
        print(f"GPU / CPU per-sample speed: learn {(ng / lg) / (nc / lc):.1f}x, "
              f"predict {(ng / pg) / (nc / pc):.1f}x")
    if simulated:
        print("(simulated: the rates above say nothing about a GPU)")


if __name__ == "__main__":
    main()
