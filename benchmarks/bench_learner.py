"""Per-call cost of ``OnlineRNN`` beside a hand-written PyTorch online loop.

For each cell at hidden size 32, input 1, k2 = 16, in float32 and float64:
``predict``, ``learn`` with k1 = 1, ``learn`` with k1 = k2 = 16 (per sample),
and ``learn_many`` (per sample). When torch is importable, the same model as
a PyTorch loop in the same run: ``predict`` is one step from the carried
state under ``no_grad``; ``learn`` keeps the last k2 inputs and the state
before them, and every k1 steps re-runs that window, backpropagates the loss
of the last k1 predictions, clips and takes an Adam step.

Each figure is the median over ``--repeats`` runs of ``--calls`` calls after
a warm-up. Run: ``python benchmarks/bench_learner.py [--quick] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np

from streamrnn import OnlineRNN

H, I, K2 = 32, 1, 16


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import os

    import numba

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numba {numba.__version__}"


def median_us(fn, calls: int, repeats: int, args=None) -> float:
    """Median over ``repeats`` of the mean time per call, after a warm-up:
    ``fn(*a)`` for ``a`` in ``args`` (the calls' arguments, built beforehand
    so the loop measures little but the calls), else ``fn(i)``."""
    if args is None:
        args = [(i,) for i in range(calls)]
    for a in args[:200]:
        fn(*a)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for a in args:
            fn(*a)
        runs.append((time.perf_counter() - start) / len(args))
    return 1e6 * statistics.median(runs)


def bench_streamrnn(cell: str, dtype: str, calls: int, repeats: int, data) -> dict:
    X, Y = (a.astype(dtype) for a in data)
    n = len(X)
    out = {}
    m = OnlineRNN(cell=cell, input_size=I, hidden_size=H, k1=1, k2=K2, dtype=dtype, seed=0)
    xs = [(X[i % n],) for i in range(calls)]
    xys = [(X[i % n], Y[i % n]) for i in range(calls)]
    out["predict"] = median_us(m.predict, calls, repeats, xs)
    out["learn k1=1"] = median_us(m.learn, calls, repeats, xys)
    m16 = OnlineRNN(cell=cell, input_size=I, hidden_size=H, k1=K2, k2=K2, dtype=dtype, seed=0)
    out["learn k1=16"] = median_us(m16.learn, calls, repeats, xys)
    for k1 in (1, K2):
        mm = OnlineRNN(cell=cell, input_size=I, hidden_size=H, k1=k1, k2=K2, dtype=dtype, seed=0)
        block = 256
        out[f"learn_many k1={k1}"] = median_us(
            lambda i: mm.learn_many(X[(i * block) % n : (i * block) % n + block],
                                    Y[(i * block) % n : (i * block) % n + block]),
            max(calls // block, 4), repeats,
        ) / block
    return out


def bench_torch(cell: str, dtype: str, calls: int, repeats: int, data) -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)  # fastest for one tiny model
    tdtype = getattr(torch, dtype)
    X, Y = (torch.from_numpy(a.astype(dtype)) for a in data)
    n = len(X)
    out = {}

    def make():
        torch.manual_seed(0)
        rnn = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](I, H, dtype=tdtype)
        head = torch.nn.Linear(H, 1, dtype=tdtype)
        params = list(rnn.parameters()) + list(head.parameters())
        return rnn, head, params, torch.optim.Adam(params, lr=1e-3)

    rnn, head, _, _ = make()
    state = [None]

    def predict(i):
        with torch.no_grad():
            y, _ = rnn(X[i % n].view(1, 1, I), state[0])
            return head(y[0, 0])

    with torch.no_grad():
        _, state[0] = rnn(X[:5].view(5, 1, I))
    out["predict"] = median_us(predict, calls, repeats)

    for k1 in (1, K2):
        rnn, head, params, opt = make()
        window: list = []
        s = {"live": None, "since": 0}  # carried state (None: zeros), steps since the update

        def learn(i, k1=k1, rnn=rnn, head=head, params=params, opt=opt, window=window, s=s):
            x, y = X[i % n].view(1, 1, I), Y[i % n]
            before = s["live"]
            with torch.no_grad():
                out_t, s["live"] = rnn(x, before)
                pred = head(out_t[0, 0])
            window.append((x, y, before))
            if len(window) > K2:
                window.pop(0)
            s["since"] += 1
            if s["since"] >= k1:
                s["since"] = 0
                xs = torch.cat([w[0] for w in window])
                ys = torch.stack([w[1] for w in window])
                h0 = window[0][2]
                outs, _ = rnn(xs, h0)
                loss = torch.nn.functional.mse_loss(head(outs[-k1:, 0]), ys[-k1:])
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
            return pred

        out[f"learn k1={k1}"] = median_us(learn, max(calls // 4, 50), repeats)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    parser.add_argument("--cells", default="rnn,gru,lstm")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.repeats = 1000, 3

    rng = np.random.default_rng(0)
    data = (rng.normal(size=(8192, I)), rng.normal(size=(8192, 1)))
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "rows": []}
    print(f"# {results['machine']}, {results['date']}")
    print("| cell | dtype | predict µs | learn k1=1 µs | learn k1=k2=16 µs | learn_many k1=1 µs/sample "
          "| learn_many k1=16 µs/sample | torch predict µs | torch learn k1=1 µs | torch learn k1=16 µs "
          "| speed-up predict / learn k1=1 / k1=16 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cell in args.cells.split(","):
        for dtype in ("float32", "float64"):
            ours = bench_streamrnn(cell, dtype, args.calls, args.repeats, data)
            theirs = None if args.no_torch else bench_torch(cell, dtype, args.calls, args.repeats, data)
            row = {"cell": cell, "dtype": dtype, "streamrnn": ours, "torch": theirs}
            results["rows"].append(row)
            t = theirs or {}
            fmt = lambda v: f"{v:.2f}" if v is not None else "–"  # noqa: E731
            ratios = " / ".join(
                f"{t[k] / ours[k]:.0f}x" if k in t else "–" for k in ("predict", "learn k1=1", "learn k1=16")
            )
            print(f"| {cell} | {dtype} | {fmt(ours['predict'])} | {fmt(ours['learn k1=1'])} | "
                  f"{fmt(ours['learn k1=16'])} | {fmt(ours['learn_many k1=1'])} | {fmt(ours['learn_many k1=16'])} | "
                  f"{fmt(t.get('predict'))} | {fmt(t.get('learn k1=1'))} | {fmt(t.get('learn k1=16'))} | {ratios} |")
            sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
