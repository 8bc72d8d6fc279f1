"""Per-call cost of ``OnlineRNN`` beside a hand-written PyTorch online loop,
and of the River estimators beside the network kernels they call.

For each cell at hidden size 32, input 1, k2 = 16, in float32 and float64:
``predict``, ``learn`` with k1 = 1, ``learn`` with k1 = k2 = 16 (per sample),
and ``learn_many`` (per sample). When torch is importable, the same model as
a PyTorch loop in the same run: ``predict`` is one step from the carried
state under ``no_grad``; ``learn`` keeps the last k2 inputs and the state
before them, and every k1 steps re-runs that window, backpropagates the loss
of the last k1 predictions, clips and takes an Adam step.

**The River layer** (``--river``): ``LSTMRegressor`` and ``LSTMClassifier``
at their defaults (``seed=0``) on Elec2 (``../shared/data/elec2/elec2.csv``
from the repository root, its first ``--rows`` rows; skipped without it) and
River's TrumpApproval. Regressors: Elec2's ``nswprice`` from the other
columns, TrumpApproval's own target; classifiers: Elec2's class,
TrumpApproval's "up" (the target above the previous one). Per row, µs:
``predict_one`` (``predict_proba_one`` for classifiers) and ``learn_one`` as
River calls them; beside them, in the same run and on the same rows, the
network kernels alone (``kernels.recurrent.predict_one`` and ``learn_one``
called on the network inputs the estimator built for those rows, recorded
from its row-by-row path) and the row-by-row path itself (the estimators'
path before rows took one kernel call, ``_one_call = False``), and the
network's own Python method (``OnlineRNN.predict`` and ``learn``) on the
same inputs, and the one-call kernel the estimator calls
(:mod:`streamrnn.kernels.estimator_rows`) alone on the same rows packed
beforehand. The ratio is the estimator's time over the kernel's. Each
figure is the median over ``--repeats`` passes over the rows, in CPU time
of the benchmarking thread
(wall time on a shared machine also counts other processes' turns on the
core); predictions from the state after a progressive pass, learning from
copies of it.

Measured 2026-12-07 on the project's 2-core AMD EPYC (Python 3.11.7, numba
0.68.1), under a load average of 10-12 from other jobs (CPU time, so the load
shows less than in wall time), ``--river --rows 4000 --repeats 9``; µs:

| estimator | stream | predict_one | kernel | ratio | OnlineRNN.predict | one-call kernel | row by row | learn_one | kernel | ratio | OnlineRNN.learn | one-call kernel | row by row |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
| LSTMRegressor | elec2 | 1.57 | 1.05 | 1.49 | 2.10 | 1.22 | 17.57 | 16.04 | 13.66 | 1.17 | 15.95 | 14.42 | 37.14 |
| LSTMClassifier | elec2 | 2.17 | 1.26 | 1.72 | 2.30 | 1.40 | 23.39 | 16.40 | 14.31 | 1.15 | 15.68 | 14.41 | 34.42 |
| LSTMRegressor | trump | 1.54 | 1.07 | 1.43 | 1.82 | 1.25 | 11.90 | 16.22 | 13.36 | 1.21 | 15.83 | 14.43 | 36.28 |
| LSTMClassifier | trump | 2.06 | 1.25 | 1.65 | 2.26 | 1.42 | 16.93 | 16.14 | 13.90 | 1.16 | 15.27 | 14.09 | 32.04 |

Two more runs (load 6-12): ratios 1.38 / 1.77 / 1.31 / 1.70 and 1.51 /
1.88 / 1.49 / 1.77 (predict), 1.15 / 1.13 / 1.22 / 1.15 and 1.18 / 1.12 /
1.20 / 1.15 (learn). Over the three, ``predict_one`` costs 1.31-1.51x its
kernel, ``predict_proba_one`` 1.65-1.88x (target 2x: met, the classifier
with little margin), about what
``OnlineRNN.predict`` costs alone or less: a prediction reads the feature dict in the
kernel (:mod:`streamrnn.kernels.pyobjects`), called by its compiled entry
point, the classifier's softmax taken there by NumPy's own exponential
(:mod:`streamrnn.kernels.numpy_exp`), and the guard is a token in a list.
``learn_one`` costs at most 1.22x its kernel (target 1.5x: met). The
one-call kernel column is the kernel of rows packed in Python (the path
a dict of other keys or types takes), called through Numba's dispatcher.
Before (the same machine, load 6-8, four runs): ratios 2.1-2.8
(``predict_one``), 3.3-3.6 (``predict_proba_one``), 1.15-1.23 (``learn_one``);
before the one-call path (commit e4be976): predict_one 15.9 / 20.8 / 11.1 /
15.5 µs, learn_one 33.8 / 32.1 / 33.2 / 29.9 µs in the order of the table.

Each figure is the median over ``--repeats`` runs of ``--calls`` calls after
a warm-up. Run: ``python benchmarks/bench_learner.py [--quick] [--river | --network] [--json out.json]``
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import pathlib
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


ELEC2 = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "elec2" / "elec2.csv"


def river_streams(n_rows: int) -> dict:
    """``name -> (rows of the regressor, rows of the classifier)``."""
    from river import datasets

    streams = {}
    if ELEC2.exists():
        with open(ELEC2) as f:
            rows = []
            for r in csv.DictReader(f):
                label = r.pop("class") == "UP"
                rows.append(({k: float(v) for k, v in r.items()}, label))
                if len(rows) == n_rows:
                    break
        regression = [({k: v for k, v in x.items() if k != "nswprice"}, x["nswprice"]) for x, _ in rows]
        streams["elec2"] = (regression, rows)
    trump = list(datasets.TrumpApproval())
    ups = [(x, y > trump[i - 1][1] if i else False) for i, (x, y) in enumerate(trump)]
    streams["trump"] = (trump, ups)
    return streams


class _Recorder:
    """A network that records the inputs it is given (the estimator's row-by-row path)."""

    def __init__(self, net):
        self.net, self.predicted, self.learned = net, [], []

    def predict(self, x):
        self.predicted.append(np.array(x))
        return self.net.predict(x)

    def learn(self, x, y):
        self.learned.append((np.array(x), np.array(y)))
        return self.net.learn(x, y)

    def __getattr__(self, name):
        return getattr(self.net, name)


def bench_river_layer(cls, rows: list, repeats: int) -> dict:
    """µs per row of the estimator's calls, its row-by-row path's and the
    network kernels' on the same rows (see the module's docstring)."""
    from streamrnn.kernels import estimator_rows as E
    from streamrnn.kernels import recurrent as K

    classifier = hasattr(cls, "predict_proba_one")
    new, old = cls(seed=0), cls(seed=0)
    old._one_call = False
    recorder = _Recorder(old._net)
    old._net = recorder
    for m in (new, old):
        predict = m.predict_proba_one if classifier else m.predict_one
        for x, y in rows:
            predict(x)
            m.learn_one(x, y)
    old._net = recorder.net
    net = recorder.net
    shape_in, shape_out = net._in_shape, net._out_shape
    us = [u for u in recorder.predicted if u.shape == shape_in]
    uys = [(u, y) for u, y in recorder.learned if u.shape == shape_in and y.shape == shape_out]
    xs = [x for x, _ in rows]
    out = np.empty(shape_out, net._np_dtype)
    times: dict = {k: [] for k in ("predict", "predict row-by-row", "predict kernel", "predict OnlineRNN",
                                   "predict one-call kernel", "learn", "learn row-by-row", "learn kernel",
                                   "learn OnlineRNN", "learn one-call kernel")}

    def packed(model, pairs):
        """The rows of ``pairs`` packed by ``model``'s one-call path, each its own copy."""
        path = model._row_path()
        out_rows = []
        for x, target in pairs:
            plan = path.pack(x, target)
            if plan is not None:
                out_rows.append((path.row.copy(), plan))
        return path, out_rows

    def one_call_predict(model):
        """The one-call kernel of ``model``'s predictions on rows packed beforehand."""
        path, packs = packed(model, [(x, 0.0) for x in xs])
        stats, nbuf = model._x_scaler.stats, model._net._buf
        if classifier:
            return lambda: [E.classifier_logits(r, p, stats, nbuf, path.scratch, path.shifted) for r, p in packs]
        return lambda: [E.regressor_predict(r, p, stats, nbuf, path.scratch) for r, p in packs]

    def one_call_learn(model):
        """The one-call kernel of ``model``'s learning on rows packed beforehand."""
        pairs = [(x, model._class_index[y] if classifier else y) for x, y in rows]
        path, packs = packed(model, pairs)
        sc, n = model._x_scaler, model._net
        if classifier:
            return lambda: [E.classifier_learn(r, p, sc.stats, sc.beyond, n._ctr, n._buf, path.scratch)
                            for r, p in packs]
        ys, t = model._y_scaler, model._target
        return lambda: [E.regressor_learn(r, p, sc.stats, sc.beyond, model._carried, n._ctr, n._buf, path.scratch,
                                          ys.stats, ys.beyond, t.changes, t.errors, t.scored) for r, p in packs]

    def timed(key, loop, n):
        # CPU time of this thread: on a shared machine, wall time also counts the
        # other processes' turns on the core
        start = time.thread_time()
        loop()
        times[key].append(1e6 * (time.thread_time() - start) / n)

    for _ in range(repeats):
        for key, m in (("predict", new), ("predict row-by-row", old)):
            predict = m.predict_proba_one if classifier else m.predict_one
            timed(key, lambda: [predict(x) for x in xs], len(xs))
        k_net = copy.deepcopy(net)
        lay, ctr, buf = k_net._lay, k_net._ctr, k_net._buf
        timed("predict kernel", lambda: [K.predict_one(lay, buf, u, out) for u in us], len(us))
        timed("predict OnlineRNN", lambda: [k_net.predict(u) for u in us], len(us))
        timed("predict one-call kernel", one_call_predict(new), len(xs))
        for key, m in (("learn", new), ("learn row-by-row", old)):
            c = copy.deepcopy(m)
            timed(key, lambda: [c.learn_one(x, y) for x, y in rows], len(rows))
        timed("learn kernel", lambda: [K.learn_one(lay, ctr, buf, u, y, out) for u, y in uys], len(uys))
        timed("learn OnlineRNN", lambda: [k_net.learn(u, y) for u, y in uys], len(uys))
        timed("learn one-call kernel", one_call_learn(copy.deepcopy(new)), len(rows))
    return {k: statistics.median(v) for k, v in times.items()}


def river_table(n_rows: int, repeats: int, results: dict) -> None:
    from streamrnn import LSTMClassifier, LSTMRegressor

    print("\n| estimator | stream | rows | predict_one µs | its kernel µs | ratio | OnlineRNN.predict µs "
          "| one-call kernel µs | row-by-row µs | learn_one µs | its kernel µs | ratio | OnlineRNN.learn µs "
          "| one-call kernel µs | row-by-row µs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    if not ELEC2.exists():
        print(f"(elec2 skipped: {ELEC2} not found; the copy lives in ../shared/data)")
    for stream, (regression, classification) in river_streams(n_rows).items():
        for cls, rows in ((LSTMRegressor, regression), (LSTMClassifier, classification)):
            t = bench_river_layer(cls, rows, repeats)
            results["river"].append({"estimator": cls.__name__, "stream": stream, "rows": len(rows), **t})
            print(f"| {cls.__name__} | {stream} | {len(rows)} | {t['predict']:.2f} | {t['predict kernel']:.2f} | "
                  f"{t['predict'] / t['predict kernel']:.2f} | {t['predict OnlineRNN']:.2f} | "
                  f"{t['predict one-call kernel']:.2f} | {t['predict row-by-row']:.2f} | {t['learn']:.2f} | "
                  f"{t['learn kernel']:.2f} | {t['learn'] / t['learn kernel']:.2f} | {t['learn OnlineRNN']:.2f} | "
                  f"{t['learn one-call kernel']:.2f} | {t['learn row-by-row']:.2f} |")
            sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    parser.add_argument("--cells", default="rnn,gru,lstm")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--river", action="store_true", help="the River layer's table only")
    parser.add_argument("--network", action="store_true", help="the network's table only")
    parser.add_argument("--rows", type=int, default=4000, help="Elec2 rows of the River layer's table")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.repeats, args.rows = 1000, 3, 1000

    rng = np.random.default_rng(0)
    data = (rng.normal(size=(8192, I)), rng.normal(size=(8192, 1)))
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "rows": [], "river": []}
    print(f"# {results['machine']}, {results['date']}")
    if not args.network:
        river_table(args.rows, args.repeats, results)
    if args.river:
        args.cells = ""
    print("| cell | dtype | predict µs | learn k1=1 µs | learn k1=k2=16 µs | learn_many k1=1 µs/sample "
          "| learn_many k1=16 µs/sample | torch predict µs | torch learn k1=1 µs | torch learn k1=16 µs "
          "| speed-up predict / learn k1=1 / k1=16 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cell in filter(None, args.cells.split(",")):
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
