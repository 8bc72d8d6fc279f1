"""Throughput of a ModelBank of independent LSTMs on the CPU threads.

N models (hidden 32, input 1, float32, k1 = k2 = 16), two batch layouts:

``fleet``
    The fleet tick: each batch holds one row per key, the keys in a new
    random order each batch (as readings arrive). A model updates every 16th
    tick, all models in the same tick: ``learn_many`` is reported as the
    mean over whole cycles of 16 ticks, ``predict_many`` as the median tick.
``rows``
    ``--rows-per-key`` rows per key per batch (default 16: one update per
    model per batch); medians of repeated batches.

Reported: µs per stream-sample (one row of one model), after warm-up (for
``fleet`` also the process's CPU time, all threads, per stream-sample, and
the floor of a prediction in CPU time on one thread: reading each model's
parameters and state once, plus the arithmetic with everything in cache), keys
as integer ids (a numpy array, mapped to slots without Python objects) and,
for ``rows``, also as strings (``"sensor-17"``). With ``rows``, the same
stream through a SharedWeightsBank (one set of weights, a state and window
per key; rows in arrival order on one thread).

When torch is importable, the same LSTMs as a peer on the same layout:
PyTorch with every model's weights stacked into one tensor per parameter, so
that a batch is steps of batched matrix products over all models (the
fastest way PyTorch has to run many small models). ``predict`` runs a
batch's steps from the carried states under ``no_grad`` (gathering each
row's model input, as the keys arrive in any order); ``learn`` runs them
with autograd from the carried states and every 16 steps takes one step per
model as the bank does: loss the mean squared error of the window's
predictions, each model's gradient clipped to norm 1 on its own, Adam with
lr 1e-3 (elementwise, so one optimizer over the stacked tensors updates each
model as its own would). The peer starts from the bank's weights and
states, and its predictions are compared with the bank's.

Timings vary between processes (memory placement, thread wake-ups, other
load): ``--processes K`` runs each configuration in K separate processes, one
after another, and reports the median and range of their figures.

Run: ``python benchmarks/bench_bank.py [--models 1000 10000] [--layout fleet rows]
[--threads 2] [--processes 5] [--no-torch]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numba
import numpy as np

from streamrnn import ModelBank, SharedWeightsBank

CONFIG = dict(cell="lstm", hidden_size=32, k1=16, k2=16)
CYCLE = 16  # ticks per update (k1)
#: a bank of N models (allocated at once, no growth) runs only if N times the bytes of a model
#: times this fits the memory available: half of it is left to the machine's other work
MEMORY_MARGIN = 2.0


def model_bytes() -> int:
    """Bytes one model takes in a bank's memory."""
    bank = ModelBank(seed=0, capacity=1, **CONFIG)
    return bank._buf[0].nbytes + bank._ctr[0].nbytes


def memory_available() -> int:
    """Bytes of memory available (Linux), or a large number elsewhere."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def fleet(n_models: int, threads: int, cycles: int, rng) -> dict:
    """µs per stream-sample of the fleet tick: ``learn_many`` (mean over a
    cycle of 16 ticks, median over ``cycles``) and ``predict_many`` (median
    tick), keys as integer ids in a new random order each tick."""
    bank = ModelBank(seed=0, capacity=n_models, **CONFIG)
    X = rng.normal(size=(n_models, 1)).astype(np.float32)
    Y = rng.normal(size=(n_models, 1)).astype(np.float32)
    bank.learn_many(np.arange(n_models), X, Y)  # creates the models, compiles
    bank.predict_many(np.arange(n_models), X)
    for _ in range(CYCLE - 1):  # warm-up: one whole cycle, updates included
        bank.learn_many(rng.permutation(n_models), X, Y)
    learn, predict, learn_cpu, predict_cpu = [], [], [], []
    for _ in range(cycles):
        cycle = cycle_cpu = 0.0
        for _ in range(CYCLE):
            keys = rng.permutation(n_models)
            t, c = time.perf_counter(), time.process_time()
            bank.learn_many(keys, X, Y)
            cycle += time.perf_counter() - t
            cycle_cpu += time.process_time() - c
            t, c = time.perf_counter(), time.process_time()
            bank.predict_many(keys, X)
            predict.append(time.perf_counter() - t)
            predict_cpu.append(time.process_time() - c)
        learn.append(cycle / CYCLE)
        learn_cpu.append(cycle_cpu / CYCLE)
    # wall-clock time, then the CPU time of the process (all its threads: the work done, which
    # other processes' load does not stretch as it stretches the wall-clock time)
    result = {"learn": 1e6 * statistics.median(learn) / n_models,
              "predict": 1e6 * statistics.median(predict) / n_models,
              "learn cpu": 1e6 * statistics.median(learn_cpu) / n_models,
              "predict cpu": 1e6 * statistics.median(predict_cpu) / n_models}
    result.update(predict_floor(bank, X, Y, cycles, rng))
    peer = torch_fleet_peer(bank, X, Y, threads, cycles, rng)
    if peer:
        result.update(peer)
    return result


@numba.njit(nogil=True, fastmath=True)
def stream_models(store, stride, n_param, state_at, n_state, n_models):
    """Read what a prediction of each model reads (its parameters and
    carried state), models in slot order as the bank's kernels take them;
    returns their sum (so that nothing is optimised away)."""
    total = store.dtype.type(0)
    for m in range(n_models):
        b = store[m * stride :]
        for j in range(n_param):
            total += b[j]
        for j in range(state_at, state_at + n_state):
            total += b[j]
    return total


def predict_floor(bank, X, Y, cycles: int, rng) -> dict:
    """What a fleet tick's ``predict_many`` cannot go below on this machine,
    per model and in CPU time on one thread: ``floor stream``, reading each
    model's parameters and state once (after a ``learn_many``, as in the
    timed ticks: from wherever they are then, the cache or memory), and
    ``floor compute``, its arithmetic and per-model work with everything in
    cache (one model predicted N times); ``predict floor`` their sum, to set
    beside ``predict cpu`` (all threads' CPU time per model)."""
    from streamrnn.kernels import layout as L
    from streamrnn.kernels import recurrent as K

    n = len(bank)
    lay, (store, scratch_at) = bank._lay, bank._models()
    args = (int(lay[L.L_PERSIST]), int(lay[L.L_NPARAM]), int(lay[L.L_STATE]),
            2 * int(lay[L.L_LAYERS]) * int(lay[L.L_HSTRIDE]), n)
    same = np.zeros(n, dtype=np.int64)  # every row on model 0: in cache after the first
    starts, rows, out = np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.int64), np.empty((n, 1), bank._dtype)
    stream_models(store, *args)
    stream, compute = [], []
    for _ in range(cycles * CYCLE):
        bank.learn_many(rng.permutation(n), X, Y)
        c = time.process_time()
        stream_models(store, *args)
        stream.append(time.process_time() - c)
        c = time.process_time()
        K.bank_predict_chunks(lay, store, scratch_at, same, starts, rows, X, out, n, np.zeros(3, dtype=np.int64))
        compute.append(time.process_time() - c)
    stream_us, compute_us = (1e6 * statistics.median(v) / n for v in (stream, compute))
    return {"floor stream": stream_us, "floor compute": compute_us, "predict floor": stream_us + compute_us}


def rows_rates(bank, keys, X, Y, repeats: int) -> tuple[float, float]:
    """µs per row of ``learn_many`` and of ``predict_many``, medians of ``repeats`` batches."""
    learn, predict = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        bank.learn_many(keys, X, Y)
        learn.append(time.perf_counter() - t)
        t = time.perf_counter()
        bank.predict_many(keys, X)
        predict.append(time.perf_counter() - t)
    return 1e6 * statistics.median(learn) / len(keys), 1e6 * statistics.median(predict) / len(keys)


def rows(n_models: int, rows_per_key: int, threads: int, repeats: int, rng, shared: bool) -> dict:
    """µs per stream-sample with ``rows_per_key`` rows per key per batch."""
    keys = [f"sensor-{i}" for i in range(n_models)] * rows_per_key
    ids = np.tile(np.arange(n_models), rows_per_key)
    X = rng.normal(size=(len(ids), 1)).astype(np.float32)
    Y = rng.normal(size=(len(ids), 1)).astype(np.float32)
    result = {}
    for cls in (ModelBank, SharedWeightsBank) if shared else (ModelBank,):
        name = "" if cls is ModelBank else "shared "
        bank = cls(seed=0, **CONFIG)
        bank.learn_many(keys, X, Y)  # creates the models, compiles
        bank.predict_many(keys, X)
        result[f"{name}learn str"], result[f"{name}predict str"] = rows_rates(bank, keys, X, Y, repeats)
        bank = cls(seed=0, **CONFIG)
        bank.learn_many(ids, X, Y)
        bank.predict_many(ids, X)
        result[f"{name}learn"], result[f"{name}predict"] = rows_rates(bank, ids, X, Y, repeats)
        if cls is ModelBank:
            peer = torch_rows_peer(bank, ids, X, Y, rows_per_key, threads, repeats)
            if peer:
                result.update(peer)
    return result


def _stacked(bank, n_models: int):
    """The bank's LSTMs (keys 0..n-1) as stacked torch tensors: parameters
    (requiring gradients) and carried states."""
    import torch

    models = [bank.model(k) for k in range(n_models)]
    dicts = [m.state_dict() for m in models]

    def stack(name):
        return torch.from_numpy(np.stack([d[name] for d in dicts]))

    w_ih, w_hh = stack("weight_ih_l0")[:, :, 0], stack("weight_hh_l0")  # (N, 4H), (N, 4H, H)
    b_ih, b_hh = stack("bias_ih_l0"), stack("bias_hh_l0")
    w_out, b_out = stack("head.weight")[:, 0], stack("head.bias")[:, 0]  # (N, H), (N,)
    params = [w_ih, w_hh, b_ih, b_hh, w_out, b_out]
    for p in params:
        p.requires_grad_(True)
    h0 = torch.from_numpy(np.stack([m.hidden_state[0][0] for m in models]))
    c0 = torch.from_numpy(np.stack([m.hidden_state[1][0] for m in models]))
    return params, h0, c0


def _step(params, x, h, c):
    """One LSTM step of every model (``x``: (N,)), the prediction and new state."""
    import torch

    w_ih, w_hh, b_ih, b_hh, w_out, b_out = params
    # bmm then the bias: 2x faster here than baddbmm, and than einsum or a broadcast product
    gates = (torch.bmm(w_hh, h[:, :, None])[:, :, 0] + b_hh) + (w_ih * x[:, None] + b_ih)
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return (w_out * h).sum(dim=1) + b_out, h, c


def _update(params, opt, yhat, ys, n_models):
    """Each model's mean squared error over the window, gradients clipped
    per model to norm 1, one Adam step."""
    import torch

    loss = ((yhat - ys) ** 2).mean(dim=0).sum()
    opt.zero_grad()
    loss.backward()
    with torch.no_grad():
        norm = sum(p.grad.reshape(n_models, -1).pow(2).sum(dim=1) for p in params).sqrt()
        scale = (1.0 / (norm + 1e-6)).clamp(max=1.0)
        for p in params:
            p.grad.mul_(scale.view(-1, *[1] * (p.dim() - 1)))
    opt.step()


def _torch(threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def torch_fleet_peer(bank, X, Y, threads: int, cycles: int, rng) -> dict | None:
    """µs per stream-sample of the stacked-PyTorch peer on fleet ticks (keys
    in random order: each tick gathers the models' inputs), learning with
    one update per 16 ticks; None without torch."""
    torch = _torch(threads)
    if torch is None:
        return None
    n_models = X.shape[0]
    params, h0, c0 = _stacked(bank, n_models)
    x_t, y_t = torch.from_numpy(X[:, 0]), torch.from_numpy(Y[:, 0])
    keys = rng.permutation(n_models)
    with torch.no_grad():
        order = torch.from_numpy(np.argsort(keys))  # row of each model
        theirs = _step(params, x_t[order], h0, c0)[0][torch.from_numpy(keys)].numpy()
    ours = bank.predict_many(keys, X)[:, 0]
    result = {"peer max |diff| predict": float(np.abs(ours - theirs).max())}
    opt = torch.optim.Adam(params, lr=1e-3)
    state = {"h": h0, "c": c0, "yhat": [], "y": []}

    def predict(keys):
        with torch.no_grad():
            order = torch.from_numpy(np.argsort(keys))
            return _step(params, x_t[order], state["h"], state["c"])[0][torch.from_numpy(keys)]

    def learn(keys):
        order = torch.from_numpy(np.argsort(keys))
        yhat, state["h"], state["c"] = _step(params, x_t[order], state["h"], state["c"])
        state["yhat"].append(yhat)
        state["y"].append(y_t[order])
        if len(state["yhat"]) == CYCLE:
            _update(params, opt, torch.stack(state["yhat"]), torch.stack(state["y"]), n_models)
            state["h"], state["c"] = state["h"].detach(), state["c"].detach()
            state["yhat"], state["y"] = [], []
        return yhat.detach()[torch.from_numpy(keys)]

    for _ in range(CYCLE):  # warm-up
        learn(rng.permutation(n_models))
    learn_t, predict_t = [], []
    for _ in range(cycles):
        cycle = 0.0
        for _ in range(CYCLE):
            keys = rng.permutation(n_models)
            t = time.perf_counter()
            learn(keys)
            cycle += time.perf_counter() - t
            t = time.perf_counter()
            predict(keys)
            predict_t.append(time.perf_counter() - t)
        learn_t.append(cycle / CYCLE)
    result["peer learn"] = 1e6 * statistics.median(learn_t) / n_models
    result["peer predict"] = 1e6 * statistics.median(predict_t) / n_models
    return result


def torch_rows_peer(bank, ids, X, Y, rows_per_key: int, threads: int, repeats: int) -> dict | None:
    """µs per stream-sample of the stacked-PyTorch peer on the batch ``(ids,
    X, Y)`` (the keys 0..N-1 in turn, the rows of each step together),
    starting from ``bank``'s LSTMs; None without torch."""
    torch = _torch(threads)
    if torch is None:
        return None
    n_models = len(ids) // rows_per_key
    params, h0, c0 = _stacked(bank, n_models)
    xs = torch.from_numpy(X).view(rows_per_key, n_models)
    ys = torch.from_numpy(Y).view(rows_per_key, n_models)

    def run(h, c):
        outs = []
        for t in range(rows_per_key):
            yhat, h, c = _step(params, xs[t], h, c)
            outs.append(yhat)
        return torch.stack(outs), h, c

    with torch.no_grad():
        theirs = run(h0, c0)[0].reshape(-1).numpy()
    ours = bank.predict_many(ids, X)[:, 0]
    result = {"peer max |diff| predict": float(np.abs(ours - theirs).max())}
    opt = torch.optim.Adam(params, lr=1e-3)
    state = [h0, c0]

    def predict():
        with torch.no_grad():
            return run(*state)[0]

    def learn():
        yhat, h, c = run(*state)
        _update(params, opt, yhat, ys, n_models)
        state[:] = h.detach(), c.detach()

    for name, f in (("peer learn", learn), ("peer predict", predict)):
        f()  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        result[name] = 1e6 * statistics.median(times) / len(ids)
    return result


def footprint(hidden: int = 32, k2: int = 16, dtype: str = "float32") -> None:
    """Bytes per model of each cell and optimizer (input and output 1), from
    the layout: what a saved bank holds per model (its buffer up to
    ``L_PERSIST``: parameters, the optimizer's moment regions, carried
    state, the compact TBPTT window with the state before its oldest step,
    hyperparameters), what a model takes in a bank's memory (the same and
    its counters) and the scratch each thread has (one region per thread,
    not per model: the gradient and the window expanded into full rows)."""
    from streamrnn.kernels import layout as L

    size = np.dtype(dtype).itemsize
    print(f"bytes per model, hidden {hidden}, k2 = {k2}, {dtype} (KB = 1,024 bytes):")
    print(f"  {'cell':5} {'optimizer':9} {'params':>7} {'moments':>8} {'window':>7} {'saved':>7} {'in memory':>9} "
          f"{'scratch/thread':>14}")
    for cell in ("rnn", "gru", "lstm"):
        for optimizer in ("sgd", "rmsprop", "adam", "adamw"):
            bank = ModelBank(seed=0, capacity=1, cell=cell, hidden_size=hidden, k1=k2, k2=k2, optimizer=optimizer,
                             dtype=dtype)
            lay = bank._lay
            n_param, persist = int(lay[L.L_NPARAM]), int(lay[L.L_PERSIST])
            moments = n_param * (1 if lay[L.L_V] == lay[L.L_M] else 2)
            window = int(lay[L.L_CACHE] + k2 * lay[L.L_CROW] - lay[L.L_WSTATE])

            def kb(n):
                return f"{n * size / 1024:.1f}"

            print(f"  {cell:5} {optimizer:9} {kb(n_param):>7} {kb(moments):>8} {kb(window):>7} {kb(persist):>7} "
                  f"{(bank._buf[0].nbytes + bank._ctr[0].nbytes) / 1024:>9.1f} {kb(int(lay[L.L_BUF]) - persist):>14}")


def measure(args) -> list[dict]:
    """Every configuration of ``args`` in this process: one dict each."""
    numba.set_num_threads(args.threads)
    if args.no_torch:
        sys.modules["torch"] = None  # the peers see no torch
    rng = np.random.default_rng(args.seed)
    results = []
    for n_models in args.models:
        for layout in args.layout:
            row = {"models": n_models, "layout": layout, "threads": numba.get_num_threads()}
            size, available = n_models * model_bytes(), memory_available()
            if size * MEMORY_MARGIN > available:
                row["skipped"] = (f"{size / 2**30:.1f} GiB of models ({model_bytes() / 1024:.0f} KB each) would take "
                                  f"more than 1/{MEMORY_MARGIN:g} of the {available / 2**30:.1f} GiB available")
            elif layout == "fleet":
                row.update(fleet(n_models, args.threads, args.cycles, rng))
            else:
                row.update(rows(n_models, args.rows_per_key, args.threads, args.repeats, rng, not args.no_shared))
            results.append(row)
    return results


def in_processes(args, argv: list) -> list[list[dict]]:
    """``measure`` in ``args.processes`` separate processes, one after another."""
    child = [a for a in argv if not a.startswith("--processes")]
    if "--processes" in argv:  # the form "--processes K"
        i = argv.index("--processes")
        child = argv[:i] + argv[i + 2 :]
    runs = []
    for _ in range(args.processes):
        done = subprocess.run([sys.executable, os.path.abspath(__file__), *child, "--json"], check=True,
                              capture_output=True, text=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def report(runs: list[list[dict]]) -> None:
    """Median and range over the processes of every figure."""
    print(f"{len(runs)} process(es); µs per stream-sample, median [min - max] over the processes; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for rows_ in zip(*runs):
        head = rows_[0]
        layout = "fleet tick (1 row per key, random order)" if head["layout"] == "fleet" else "rows per key"
        print(f"{head['models']} LSTMs, hidden 32, float32, k1 = k2 = 16, {layout}, {head['threads']} threads:")
        if "skipped" in head:
            print(f"  not run: {head['skipped']}")
            continue
        for name in head:
            if name in ("models", "layout", "threads"):
                continue
            values = [r[name] for r in rows_]
            if "diff" in name:
                print(f"  {name}: {max(values):.1e}")
            else:
                print(f"  {name:>20}: {statistics.median(values):7.3f} [{min(values):.3f} - {max(values):.3f}]"
                      f"   (each: {' '.join(f'{v:.2f}' for v in values)})")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[1000])
    parser.add_argument("--layout", nargs="+", choices=["fleet", "rows"], default=["fleet", "rows"])
    parser.add_argument("--rows-per-key", type=int, default=16)
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--repeats", type=int, default=7, help="batches timed (rows layout)")
    parser.add_argument("--cycles", type=int, default=3, help="cycles of 16 ticks timed (fleet layout)")
    parser.add_argument("--processes", type=int, default=1, help="separate processes to run it in")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--no-shared", action="store_true", help="skip the SharedWeightsBank (rows layout)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    parser.add_argument("--footprint", action="store_true", help="print the bytes per model of each cell and "
                        "optimizer (from the layout, nothing timed) and stop")
    args = parser.parse_args(argv)
    if args.footprint:
        footprint()
        return
    if args.processes > 1:
        report(in_processes(args, argv))
        return
    results = measure(args)
    if args.json:
        print(json.dumps(results))
    else:
        report([results])


if __name__ == "__main__":
    main()
