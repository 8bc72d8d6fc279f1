"""Keyed LSTMs on Ray shards: stream-samples per second of an in-process
ModelBank and of ShardedBank on 1 and 2 shards, checkpoint time and size,
recovery time after a shard is killed, and projected 16-node figures.

N models (LSTM, hidden 32, input 1, float32, key-derived seeds); keys are
integer ids in a numpy array. Two batch shapes: fleet ticks (one row per key,
``batch`` keys at a time, cycling through the fleet) and 16-row batches
(``batch / 16`` keys, 16 rows each). Each figure is the median of
``--repeats`` timed batches after one warm-up pass over every key (which
creates the models and compiles or loads the kernels). All banks run in the
same process run, one after another, on the same machine; ratios are taken
within the run. The in-process bank and the 1-shard bank use ``--threads``
Numba threads; each of 2 shards uses ``--threads / 2`` (the cores shared out),
and also ``--threads`` (oversubscribed) for comparison.

Projection to a cluster of ``--nodes`` nodes of ``--cores`` cores each (one
shard per core, one driver splitting the batches)::

    rate(nodes) = min(nodes * cores * r_core,  1 / d_row)

where ``r_core`` is the measured 2-shard rate per core here and ``d_row``
the driver's measured cost per row (splitting a batch by shard with NumPy and
gathering the outputs, outside the shards' work). Not modelled: the network
(16 bytes per row in, 4 out: ~6 Gbit/s at 50 M rows/s), Ray's scheduling
across nodes, stragglers.

Run: ``python benchmarks/bench_ray.py [--models 10000] [--batches 1000,10000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import numba
import numpy as np

from streamrnn import ModelBank

CONFIG = dict(cell="lstm", input_size=1, hidden_size=32, dtype="float32")


def batches(n_models: int, batch: int, rows_per_key: int, rng):
    """Batches of ``batch`` rows cycling through the fleet: ``batch //
    rows_per_key`` keys per batch, each with ``rows_per_key`` rows in turn."""
    per = max(batch // rows_per_key, 1)
    start = 0
    while True:
        ids = (start + np.arange(per)) % n_models
        keys = np.tile(ids, rows_per_key).astype(np.int64)
        yield keys, rng.normal(size=(len(keys), 1)).astype(np.float32), rng.normal(size=(len(keys), 1)).astype(
            np.float32)
        start = (start + per) % n_models


def warm(bank, n_models: int, rng) -> None:
    """Create every model (one row each, in batches of 10,000)."""
    for lo in range(0, n_models, 10_000):
        ids = np.arange(lo, min(lo + 10_000, n_models), dtype=np.int64)
        bank.learn_many(ids, rng.normal(size=(len(ids), 1)), rng.normal(size=(len(ids), 1)))


def rate(bank, n_models: int, batch: int, rows_per_key: int, repeats: int, seed: int = 0) -> float:
    """Median stream-samples (rows) per second of ``learn_many``."""
    gen = batches(n_models, batch, rows_per_key, np.random.default_rng(seed))
    bank.learn_many(*next(gen))  # (warm-up of this shape)
    times = []
    for _ in range(repeats):
        keys, X, Y = next(gen)
        t = time.perf_counter()
        bank.learn_many(keys, X, Y)
        times.append(time.perf_counter() - t)
    return len(keys) / statistics.median(times)


def driver_cost(bank, n_models: int, batch: int, repeats: int) -> float:
    """Seconds per row the driver spends splitting a batch by shard and
    putting the outputs back in order (no shard work)."""
    keys = np.arange(batch, dtype=np.int64) % n_models
    out_parts = None
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        parts = bank._split(keys)
        taken = [bank._take(keys, rows) for rows in parts]
        if out_parts is None:
            out_parts = {s: np.zeros((len(k), 1), np.float32) for s, k in enumerate(taken)}
        bank._gather(parts, out_parts, (batch, 1))
        times.append(time.perf_counter() - t)
    return statistics.median(times) / batch


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--batches", default="1000,10000", help="batch sizes in rows, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--groups", type=int, default=4096)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--cores", type=int, default=16)
    parser.add_argument("--no-oversubscribed", action="store_true", help="skip 2 shards x --threads threads")
    args = parser.parse_args(argv)
    import ray

    from streamrnn.distributed import ShardedBank

    sizes = [int(b) for b in args.batches.split(",")]
    shapes = [("fleet tick", 1), ("16-row", 16)]
    rng = np.random.default_rng(0)
    numba.set_num_threads(args.threads)
    print(f"N = {args.models} LSTMs (hidden 32, float32), batch sizes {sizes}, median of {args.repeats}; "
          f"{os.cpu_count()} cores, Numba {numba.__version__}, Ray {ray.__version__}, threads {args.threads}")
    results: dict = {}

    def measure(name, bank):
        warm(bank, args.models, rng)
        for shape, rows in shapes:
            for b in sizes:
                results[(name, shape, b)] = r = rate(bank, args.models, b, rows, args.repeats)
                print(f"{name:<28} {shape:<10} batch {b:>7}: {r:>10,.0f} samples/s", flush=True)

    bank = ModelBank(seed=0, seed_by_key=True, **CONFIG)
    measure("in-process ModelBank", bank)
    del bank
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    print(f"ray.init: {time.perf_counter() - t:.1f} s")
    half = max(args.threads // 2, 1)
    variants = [("ShardedBank 1 shard", 1, args.threads), (f"ShardedBank 2 shards x {half}t", 2, half)]
    if not args.no_oversubscribed and half != args.threads:
        variants.append((f"ShardedBank 2 shards x {args.threads}t", 2, args.threads))
    folder = tempfile.mkdtemp(prefix="bench_ray_")
    try:
        for name, n, threads in variants:
            sharded = ShardedBank(n_shards=n, n_groups=args.groups, seed=0, threads=threads, **CONFIG)
            measure(name, sharded)
            if threads == half or n == 1:
                path = os.path.join(folder, f"{n}")
                t = time.perf_counter()
                sharded.checkpoint(path, offset=0)
                took = time.perf_counter() - t
                size = folder_bytes(path)
                results[(name, "checkpoint")] = (took, size)
                print(f"{name:<28} checkpoint of {args.models} models: {took:.2f} s, {size / 2**20:.0f} MiB "
                      f"in {len(os.listdir(path)) - 1} group files", flush=True)
                keys, X, Y = next(batches(args.models, sizes[-1], 1, rng))
                sharded.learn_many(keys, X, Y)  # (a batch to replay)
                t = time.perf_counter()
                sharded.learn_many(keys, X, Y)
                normal = time.perf_counter() - t
                ray.kill(sharded._actors[0])
                t = time.perf_counter()
                sharded.learn_many(keys, X, Y)
                recovery = time.perf_counter() - t - normal
                results[(name, "recovery")] = recovery
                print(f"{name:<28} recovery after a kill (restart, load {args.models // n} models, replay 2 "
                      f"batches): {recovery:.2f} s", flush=True)
            if n == 2 and threads == half:
                results["driver"] = d = driver_cost(sharded, args.models, sizes[-1], args.repeats)
                print(f"driver cost (split + gather, batch {sizes[-1]}): {d * 1e6:.3f} µs a row", flush=True)
            sharded.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        ray.shutdown()

    print("\nratios (batches >= 10,000 rows; targets: 1 shard >= 0.8 x in-process, 2 shards >= 1.5 x 1 shard)")
    two = variants[1][0]
    for shape, _ in shapes:
        for b in sizes:
            one = results[("ShardedBank 1 shard", shape, b)] / results[("in-process ModelBank", shape, b)]
            scale = results[(two, shape, b)] / results[("ShardedBank 1 shard", shape, b)]
            print(f"{shape:<10} batch {b:>7}: 1 shard / in-process {one:.2f}, 2 shards / 1 shard {scale:.2f}")
    b = sizes[-1]
    r_core = results[(two, "fleet tick", b)] / 2
    d = results["driver"]
    projected = min(args.nodes * args.cores * r_core, 1 / d)
    print(f"\nprojected, {args.nodes} nodes x {args.cores} cores, fleet ticks of {b} rows: "
          f"min({args.nodes} * {args.cores} * {r_core:,.0f}, 1 / {d * 1e6:.3f} µs) = {projected:,.0f} samples/s "
          f"({'the driver' if 1 / d < args.nodes * args.cores * r_core else 'the shards'} limit it)")
    took, size = results[(two, "checkpoint")]
    per_model = took / args.models * 2  # (2 shards writing at once: seconds per model per shard)
    print(f"projected checkpoint of 100,000 models on {args.nodes * args.cores} shards: "
          f"{100_000 / (args.nodes * args.cores) * per_model:.2f} s if the storage keeps up "
          f"({size / args.models / 1e3:.0f} kB a model)")
    return results


if __name__ == "__main__":
    main()
