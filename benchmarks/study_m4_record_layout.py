"""A forecaster's record of its candidates' forecasts (``(H, rows, H)``
float32, as :class:`~streamrnn.combination.HorizonCombination` keeps it for
M4 Hourly: 48 horizons, 12 rows), streamed round-robin over many keys with
other state touched between (cold, as in a global forecaster's stream):
scoring a value and recording the next origin, with the record laid out by
origin (today's: scoring reads a diagonal of 576 cache lines) or by target
time (scoring reads one contiguous block, recording writes the diagonal).
A model of the accesses (sums and copies, not the library's arithmetic),
to tell whether a new layout would pay.

Run: ``python benchmarks/study_m4_record_layout.py [--keys 414] [--steps 200]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from numba import njit

H, R = 48, 12


@njit(cache=False)
def by_origin(made, t, f, out):
    acc = 0.0
    for s in range(min(t + 1, H)):
        at = (t - s) % H
        for c in range(R):
            acc += made[at, c, s]
    nxt = (t + 1) % H
    for c in range(R):
        for s in range(H):
            made[nxt, c, s] = f[c, s]
    out[0] += acc


@njit(cache=False)
def by_target(made, t, f, out):
    acc = 0.0
    row = t % H
    for c in range(R):
        for s in range(H):
            acc += made[row, c, s]
    for c in range(R):
        for s in range(H):
            made[(t + 1 + s) % H, c, s] = f[c, s]
    out[0] += acc


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=414)
    p.add_argument("--steps", type=int, default=200)
    a = p.parse_args(argv)
    states = [np.zeros((H, R, H), np.float32) for _ in range(a.keys)]
    other = [np.ones(30000) for _ in range(a.keys)]  # the rest of a key's row touches other state
    f, out = np.ones((R, H), np.float32), np.zeros(1)
    for fn in (by_origin, by_target):
        fn(states[0], 0, f, out)
    res: dict = {}
    for _ in range(3):
        for name, fn in (("by origin", by_origin), ("by target", by_target)):
            spent = 0
            for t in range(a.steps):
                for k in range(a.keys):
                    other[k].sum()
                    t0 = time.process_time_ns()
                    fn(states[k], t, f, out)
                    spent += time.process_time_ns() - t0
            res.setdefault(name, []).append(spent / (a.steps * a.keys) / 1e3)
    print(f"{a.keys} keys, load {os.getloadavg()[0]:.1f}: CPU us a key-row (a clock read's cost included)",
          {k: [round(v, 2) for v in vs] for k, vs in res.items()})


if __name__ == "__main__":
    main()
