"""M4 Hourly: where a global forecaster's ``learn_many`` row goes, against
its arithmetic floor. The first series' training parts (less their last 48
values) are streamed interleaved by time index, one ``learn_many`` per
index, up to ``--start`` untimed; from there to ``--stop`` blocks of 10
indices alternate between untimed (the whole row's CPU time) and timed,
where each kernel a row calls is timed at its call (CPU time, the timer's
own cost subtracted). Each kernel's 500th call (or 50th, for one called
once a ``learn_many``) is kept and replayed hot:
from Python, from a compiled loop (no dispatch), and its arguments handed
to a compiled no-op (their dispatch alone). A study of cost, not a
benchmark of results.

Run: ``python benchmarks/study_m4_floor.py [--series 50] [--start 250] [--stop 450]``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_m4 as B  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", type=int, default=50)
    p.add_argument("--start", type=int, default=250)
    p.add_argument("--stop", type=int, default=450)
    a = p.parse_args(argv)
    if not os.path.isdir(B.DATA):
        sys.exit(f"M4 data not found at {B.DATA} (skipped)")
    import numpy as np
    from numba import njit

    from streamrnn import GlobalForecaster, corrector_store, forecasting, seasonal
    from streamrnn.kernels import recurrent, shared_weights

    _, train, _ = B.load()
    train = [t[: -B.H] for t in train[: a.series]]
    lengths = np.array([len(s) for s in train])
    clock = time.process_time_ns
    spent, calls, kept, timing = {}, {}, {}, [False]

    def timed(owner, name, label):
        f = getattr(owner, name)

        def g(*args):
            if not timing[0]:
                return f(*args)
            t = clock()
            r = f(*args)
            spent[label] = spent.get(label, 0) + clock() - t
            calls[label] = calls.get(label, 0) + 1
            if calls[label] in (50, 500):  # (the 50th for a kernel called once a learn_many)
                kept[label] = (f, copy.deepcopy(args))
            return r

        setattr(owner, name, g)

    timed(shared_weights, "shared_learn", "shared network's TBPTT step (shared_learn)")
    timed(recurrent, "forecast_recursive", "its 4-step forecast (forecast_recursive)")
    timed(forecasting, "scaled_column", "scaled_column")
    timed(forecasting, "record_origin", "record_origin")
    timed(forecasting, "observe_smoothed", "observe_smoothed")
    timed(forecasting, "observe_record", "observe_record")
    timed(corrector_store, "corrector_batch", "corrector_batch (one call a learn_many)")
    timed(seasonal, "seasonal_base_update", "seasonal_base_update")

    class Noop:
        @staticmethod
        def f(*args):
            return None

    timed(Noop, "f", "noop")
    timing[0] = True
    for _ in range(20000):
        Noop.f(*range(30))
    timing[0] = False
    overhead = spent.pop("noop") / calls.pop("noop")
    kept.pop("noop", None)

    model = GlobalForecaster(seed=0)

    def feed(t0, t1):
        rows = 0
        for t in range(t0, t1):
            keys = np.flatnonzero(lengths > t).tolist()
            model.learn_many(keys, [float(train[k][t]) for k in keys])
            rows += len(keys)
        return rows

    feed(0, a.start)
    whole = {False: [0, 0], True: [0, 0]}  # CPU ns and rows, untimed and timed blocks
    for t0 in range(a.start, a.stop, 10):
        timing[0] = (t0 // 10) % 2 == 1
        t = clock()
        rows = feed(t0, min(t0 + 10, a.stop))
        whole[timing[0]][0] += clock() - t
        whole[timing[0]][1] += rows
        timing[0] = False

    @njit
    def loop(f, n, args):
        for _ in range(n):
            f(*args)

    @njit
    def noop(*args):
        return 0

    rows = whole[True][1]
    print(f"{a.series} series, time indices {a.start}-{a.stop}, load {os.getloadavg()[0]:.1f}; "
          f"timer {overhead / 1e3:.2f} us a call (subtracted)")
    print(f"whole row: {whole[False][0] / whole[False][1] / 1e3:.1f} CPU us untimed, "
          f"{whole[True][0] / rows / 1e3:.1f} timed")
    print(f"{'kernel':44s} {'calls/row':>9s} {'us/call':>8s} {'us/row':>7s} {'hot py':>7s} {'hot njit':>8s} "
          f"{'dispatch':>8s}  (us a call)")
    sums = [0.0, 0.0, 0.0]
    n = 2000
    for label in spent:
        per_call = (spent[label] / calls[label] - overhead) / 1e3
        per_row = calls[label] / rows
        f, args = kept[label]
        t = clock()
        for _ in range(n):
            f(*args)
        hot_py = (clock() - t) / n / 1e3
        loop(f, 10, args)
        t = clock()
        loop(f, n, args)
        hot = (clock() - t) / n / 1e3
        noop(*args)
        t = clock()
        for _ in range(n):
            noop(*args)
        dispatch = (clock() - t) / n / 1e3
        for i, v in enumerate((per_call, hot, dispatch)):
            sums[i] += v * per_row
        print(f"{label:44s} {per_row:9.3f} {per_call:8.2f} {per_call * per_row:7.2f} {hot_py:7.2f} {hot:8.2f} "
              f"{dispatch:8.2f}")
    print(f"per row: kernels as called {sums[0]:.1f} us, their compiled work hot {sums[1]:.1f} us, "
          f"their arguments' dispatch {sums[2]:.1f} us")


if __name__ == "__main__":
    main()
