"""Keyed LSTMs on Ray shards: stream-samples per second of an in-process
ModelBank and of ShardedBank on 1 and 2 shards, checkpoint time and size,
recovery time after a shard is killed, and projected 16-node figures.

N models (LSTM, hidden 32, input 1, float32, key-derived seeds); keys are
integer ids in a numpy array. Two batch shapes: fleet ticks (one row per key,
``batch`` keys at a time, cycling through the fleet) and 16-row batches
(``batch / 16`` keys, 16 rows each). Each figure is the median of
``--repeats`` timed batches after one warm-up pass over every key (which
creates the models and compiles or loads the kernels). All banks live at
once and are timed in turn, batch after batch, so that each repeat sees the
same load from the machine's neighbours; ratios are taken within the run.
The in-process bank and the 1-shard bank use ``--threads`` Numba threads;
each of 2 shards uses ``--threads / 2`` (the cores shared out), compared also
with 1 shard of ``--threads / 2`` threads (scaling at a fixed number of
threads per shard); ``--oversubscribed`` adds 2 shards of ``--threads``
threads each.

Projection to a cluster of ``--nodes`` nodes of ``--cores`` cores each (one
shard per core, one driver splitting the batches)::

    rate(nodes) = min(nodes * cores * r_core,  1 / d_row)

where ``r_core`` is the measured 2-shard rate per core here and ``d_row``
the driver's measured cost per row (splitting a batch by shard with NumPy and
gathering the outputs, outside the shards' work). Not modelled: the network
(16 bytes per row in, 4 out: ~6 Gbit/s at 50 M rows/s), Ray's scheduling
across nodes, stragglers.

Run: ``python benchmarks/bench_ray.py [--models 10000] [--batches 1000,10000] [--repeats 5] [--k1 16]``
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


def run_rate(bank, n_models: int, batch: int, rows_per_key: int, repeats: int, seed: int, depth: int) -> float:
    """Stream-samples per second over ``repeats`` batches learned with
    ``depth`` batches in flight (``learn_many_async``; 1: ``learn_many``
    calls one after another)."""
    gen = batches(n_models, batch, rows_per_key, np.random.default_rng(seed))
    work = [next(gen) for _ in range(repeats)]
    t = time.perf_counter()
    if depth == 1:
        for keys, X, Y in work:
            bank.learn_many(keys, X, Y)
    else:
        flights = []
        for keys, X, Y in work:
            flights.append(bank.learn_many_async(keys, X, Y))
            if len(flights) == depth:
                flights.pop(0).result()
        for flight in flights:
            flight.result()
    return sum(len(k) for k, _, _ in work) / (time.perf_counter() - t)


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
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--k1", type=int, default=1, help="TBPTT k1 (1, the default: an update every step)")
    parser.add_argument("--k2", type=int, default=16)
    parser.add_argument("--groups", type=int, default=256)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--cores", type=int, default=16)
    parser.add_argument("--oversubscribed", action="store_true", help="also 2 shards x --threads threads each")
    args = parser.parse_args(argv)
    import ray

    from streamrnn.distributed import ShardedBank, start_ray

    config = dict(CONFIG, k1=args.k1, k2=args.k2)
    sizes = [int(b) for b in args.batches.split(",")]
    shapes = [("fleet tick", 1), ("16-row", 16)]
    rng = np.random.default_rng(0)
    numba.set_num_threads(args.threads)
    print(f"N = {args.models} LSTMs (hidden 32, float32, k1 = {args.k1}, k2 = {args.k2}), batch sizes {sizes}, "
          f"median of {args.repeats}, the banks timed in turn; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}, Numba {numba.__version__}, Ray {ray.__version__}, threads {args.threads}")
    t = time.perf_counter()
    start_ray(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)  # (shards at niceness 0)
    print(f"ray.init: {time.perf_counter() - t:.1f} s")
    half = max(args.threads // 2, 1)
    two = f"ShardedBank 2 shards x {half}t"
    banks = {"in-process ModelBank": ModelBank(seed=0, seed_by_key=True, **config),
             "ShardedBank 1 shard": ShardedBank(n_shards=1, n_groups=args.groups, seed=0, threads=args.threads,
                                                **config),
             two: ShardedBank(n_shards=2, n_groups=args.groups, seed=0, threads=half, **config)}
    if half != args.threads:  # the shards' scaling at a fixed number of threads per shard
        banks[f"ShardedBank 1 shard x {half}t"] = ShardedBank(n_shards=1, n_groups=args.groups, seed=0,
                                                              threads=half, **config)
    if args.oversubscribed and half != args.threads:
        banks[f"ShardedBank 2 shards x {args.threads}t"] = ShardedBank(
            n_shards=2, n_groups=args.groups, seed=0, threads=args.threads, **config)
    for bank in banks.values():
        warm(bank, args.models, rng)
    results: dict = {}
    for shape, rows in shapes:
        for b in sizes:
            times = {name: [] for name in banks}
            gens = {name: batches(args.models, b, rows, np.random.default_rng(1)) for name in banks}
            for name, bank in banks.items():
                bank.learn_many(*next(gens[name]))  # (warm-up of this shape)
            for _ in range(args.repeats):
                for name, bank in banks.items():  # in turn: each repeat sees the same neighbours' load
                    keys, X, Y = next(gens[name])
                    t = time.perf_counter()
                    bank.learn_many(keys, X, Y)
                    times[name].append(time.perf_counter() - t)
            for name in banks:
                results[(name, shape, b)] = r = len(keys) / statistics.median(times[name])
                print(f"{name:<28} {shape:<10} batch {b:>7}: {r:>10,.0f} samples/s "
                      f"({1e6 / r:.2f} µs a sample)", flush=True)
    b = sizes[-1]
    print(f"\nruns of {args.repeats} batches of {b} rows, each shard bank with 2 batches in flight "
          "(learn_many_async), the in-process bank run before each; median of 3 runs", flush=True)
    for shape, rows in shapes:
        for name, bank in banks.items():
            if name == "in-process ModelBank":
                continue
            ratios, rates = [], []
            for run in range(3):
                base = run_rate(banks["in-process ModelBank"], args.models, b, rows, args.repeats, 10 + run, 1)
                rates.append(run_rate(bank, args.models, b, rows, args.repeats, 10 + run, 2))
                ratios.append(rates[-1] / base)
            results[(name, shape, b, "in flight")] = statistics.median(ratios)
            print(f"{name:<28} {shape:<10} batch {b:>7}: {statistics.median(rates):>10,.0f} samples/s, "
                  f"{statistics.median(ratios):.2f} x in-process", flush=True)
    results["driver"] = d = driver_cost(banks[two], args.models, sizes[-1], args.repeats)
    print(f"driver cost (split + gather, batch {sizes[-1]}, 2 shards): {d * 1e6:.3f} µs a row", flush=True)
    del banks["in-process ModelBank"]
    folder = tempfile.mkdtemp(prefix="bench_ray_")
    try:
        for name in ("ShardedBank 1 shard", two):
            sharded = banks[name]
            path = os.path.join(folder, name.split()[1])
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
            results[(name, "recovery")] = recovery = time.perf_counter() - t - normal
            print(f"{name:<28} recovery after a kill (a new actor loads {args.models // sharded.n_shards} models, "
                  f"replays 2 batches): {recovery:.2f} s beyond the batch's {normal:.2f} s", flush=True)
    finally:
        for bank in banks.values():
            bank.close()
        shutil.rmtree(folder, ignore_errors=True)
        ray.shutdown()

    print("\nratios in this run (targets, batches >= 10,000 rows: 1 shard >= 0.8 x in-process, "
          "2 shards >= 1.5 x 1 shard)")
    for shape, _ in shapes:
        for b in sizes:
            one = results[("ShardedBank 1 shard", shape, b)] / results[("in-process ModelBank", shape, b)]
            scale = results[(two, shape, b)] / results[("ShardedBank 1 shard", shape, b)]
            line = f"{shape:<10} batch {b:>7}: 1 shard / in-process {one:.2f}, 2 shards / 1 shard {scale:.2f}"
            narrow = results.get((f"ShardedBank 1 shard x {half}t", shape, b))
            if narrow:
                line += f" (/ 1 shard x {half}t: {results[(two, shape, b)] / narrow:.2f})"
            flying = results.get(("ShardedBank 1 shard", shape, b, "in flight"))
            if flying:
                line += (f"; 2 batches in flight: 1 shard / in-process {flying:.2f}, 2 shards / in-process "
                         f"{results[(two, shape, b, 'in flight')]:.2f}")
            print(line)
    b = sizes[-1]
    r_core = results[(two, "fleet tick", b)] / 2
    cap = args.nodes * args.cores * r_core
    projected = min(cap, 1 / d)
    print(f"\nprojected, {args.nodes} nodes x {args.cores} cores, fleet ticks of {b} rows: "
          f"min({args.nodes} * {args.cores} * {r_core:,.0f}, 1 / {d * 1e6:.3f} µs) = {projected:,.0f} samples/s "
          f"(limited by {'the one driver' if 1 / d < cap else 'the shards'})")
    took, size = results[(two, "checkpoint")]
    per_model = took / (args.models / 2)  # (2 shards writing at once)
    print(f"projected checkpoint of 100,000 models on {args.nodes * args.cores} shards: "
          f"{100_000 / (args.nodes * args.cores) * per_model:.2f} s if the storage keeps up "
          f"({size / args.models / 1e3:.0f} kB a model); here, 100,000 on 2 shards: "
          f"{100_000 / 2 * per_model:.1f} s")
    return results


if __name__ == "__main__":
    main()
