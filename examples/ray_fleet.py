"""A fleet of sensors on Ray shards: a checkpoint, a killed shard, a lost
driver, and the same answers as one in-process bank.

A synthetic, seeded fleet (``--sensors`` sensors, each a noisy cycle of its
own period, amplitude and level) streams in fleet ticks of ``--batch`` steps
per sensor. Each sensor's LSTM learns its next reading from its last one
(scaled by the fleet's spread) in a ``ShardedBank`` of ``--shards`` Ray
actors on a local cluster. Midway the bank checkpoints (its key groups' files
and the stream offset); later one shard's process is killed: the next batch
restarts it, reloads its groups from the checkpoint and replays the batches
since, and the stream goes on without an error. Then the driver's bank is
dropped and restored from the checkpoint, and the stream replayed from its
offset. Printed: the one-step MAE against persistence, the checkpoint's time
and size, the recoveries, and whether the predictions and every model equal
those of one in-process ``ModelBank(seed_by_key=True)`` that saw the stream
without failures (they do, bit for bit).

Run: ``python examples/ray_fleet.py [--sensors 10000] [--steps 48] [--shards 2] [--batch 4]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from streamrnn import ModelBank


def make_fleet(n: int, steps: int, seed: int) -> np.ndarray:
    """Readings of ``n`` sensors, shape ``(n, steps)``, scaled to unit spread."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    period = rng.integers(6, 25, size=(n, 1))
    y = rng.uniform(1, 3, size=(n, 1)) * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3, size=(n, 1)))
    return y + rng.uniform(-1, 1, size=(n, 1)) + rng.normal(0, 0.05, size=(n, steps))


def ticks(y: np.ndarray, batch: int):
    """``(offset, keys, X, Y)``: ``batch`` steps of every sensor at a time
    (the input a reading, the target the next one), keys integer ids."""
    n, steps = y.shape
    for start in range(0, steps - 1, batch):
        stop = min(start + batch, steps - 1)
        keys = np.tile(np.arange(n), stop - start)  # a sensor's rows in order
        yield start, keys, y[:, start:stop].T.reshape(-1, 1), y[:, start + 1 : stop + 1].T.reshape(-1, 1)


def same_models(sharded, bank, sample: int = 50) -> bool:
    """Whether ``sharded`` holds the keys of ``bank`` and (for ``sample`` of
    them) the same models, bit for bit."""
    if len(sharded) != len(bank):
        return False
    return all(np.array_equal(sharded.model(k).__getstate__()["_buf"], bank.model(k).__getstate__()["_buf"])
               for k in bank.keys[:: max(len(bank) // sample, 1)])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--batch", type=int, default=4, help="steps per sensor in a batch")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--hidden-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import ray

    from streamrnn.distributed import ShardedBank, start_ray

    start_ray(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    y = make_fleet(args.sensors, args.steps, args.seed)
    stream = list(ticks(y, args.batch))
    config = dict(cell="lstm", hidden_size=args.hidden_size, seed=args.seed)
    reference = ModelBank(seed_by_key=True, **config)
    expected = [reference.learn_many(keys, X, Y) for _, keys, X, Y in stream]

    bank = ShardedBank(n_shards=args.shards, n_groups=256, **config)
    checkpoint_at, kill_at = len(stream) // 2, 3 * len(stream) // 4
    got, folder = [], tempfile.mkdtemp(prefix="ray_fleet_")
    for b, (offset, keys, X, Y) in enumerate(stream):
        if b == checkpoint_at:
            began = time.perf_counter()
            manifest = bank.checkpoint(folder, offset=b)
            took = time.perf_counter() - began
            size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
            print(f"checkpoint at batch {b}: {len(manifest['groups'])} group files, {size / 2**20:.1f} MiB, "
                  f"{took:.2f} s")
        if b == kill_at:
            ray.kill(bank._actors[0])
            print(f"batch {b}: shard 0's process killed")
        got.append(bank.learn_many(keys, X, Y))
    equal = all(np.array_equal(a, b) for a, b in zip(got, expected))
    models_equal = same_models(bank, reference)
    print(f"recoveries: {bank.recoveries}; predictions equal to one in-process bank's: {equal}; "
          f"models equal: {models_equal}")

    truth = np.concatenate([Y for *_, Y in stream[1:]])
    last = np.concatenate([X for *_, X, _ in stream[1:]])
    mae = {"persistence": float(np.abs(truth - last).mean()),
           "LSTM": float(np.abs(truth - np.concatenate(got[1:])).mean())}
    print(f"one-step MAE after the first batch: persistence {mae['persistence']:.4f}, LSTM {mae['LSTM']:.4f}")

    bank.close()  # the driver's bank lost: restore the checkpoint, replay the stream from its offset
    restored, offset = ShardedBank.restore(folder)
    for _, keys, X, Y in stream[offset:]:
        restored.learn_many(keys, X, Y)
    replayed_equal = same_models(restored, reference)
    print(f"restored from the checkpoint (offset {offset}) and replayed: models equal: {replayed_equal}")
    restored.close()
    shutil.rmtree(folder, ignore_errors=True)
    return {"recoveries": bank.recoveries, "equal": equal, "models_equal": models_equal,
            "replayed_equal": replayed_equal, "mae": mae, "offset": offset}


if __name__ == "__main__":
    main()
