"""Cold compilation of the network's and the detector's kernels, in CPU
seconds, with a hash of the outputs: for comparing two versions of the code
(run it once with each on ``PYTHONPATH``, alternating; the hashes say whether
the outputs are the same bits).

``network``: one LSTM learner (float32, two inputs) predicts and learns 200
rows, then forecasts 12 steps with one input fed back: compiles
``predict_one``, ``learn_one`` and ``forecast_recursive`` with everything
they call. ``scoring``: the network's kernels are compiled first (not
timed), then a ``PredictiveDetector`` scores and learns 9,000 points of a
noisy daily sine with a burst, a spike and a level shift, and a two-feature
one 600 points: its scoring kernels' compilation (and ~0.5 s of running).

Each run uses a fresh ``NUMBA_CACHE_DIR`` in its own process, without the
compile worker (``STREAMRNN_COMPILE_WORKERS=0``).

::

    python benchmarks/bench_compile.py [--part network scoring] [--repeats 3]

Measured 2026-12-08 on the project's 2-core machine (other jobs beside it;
load average given), the code as it is (old) and with the kernels' small
helpers compiled instead of inlined by Numba (new; not kept: see the
README's first-run section), alternating, one process per run, CPU s:
``network`` at load 2.6-6.9 old 39.9, 42.9, 38.3, new 28.5, 28.3, 33.3 (the
same hash); ``scoring`` at load 1.1-1.7 old 18.3, 21.9, 23.2, new 13.1,
16.2, 16.3 (the same hash).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import hashlib, sys, time
import numpy as np
part = sys.argv[1]
from streamrnn.learner import OnlineRNN


def network(h):
    m = OnlineRNN(cell="lstm", input_size=2, seed=0)
    rng = np.random.default_rng(0)
    for i in range(200):
        x = rng.normal(size=2).astype(np.float32)
        h.update(np.asarray(m.predict(x)).tobytes())
        m.learn(x, np.float32([np.sin(i / 5)]))
    U = rng.normal(size=(12, 2)).astype(np.float32)
    h.update(np.asarray(m.forecast(U, feedback=((0, 1),))).tobytes())


h = hashlib.sha256()
if part == "scoring":
    network(hashlib.sha256())
    from streamrnn.anomaly import PredictiveDetector
t = time.process_time()
if part == "network":
    network(h)
else:
    rng = np.random.default_rng(1)
    n = 9000
    y = np.sin(np.arange(n) * 2 * np.pi / 24) + 0.1 * rng.normal(size=n)
    y[3000:3050] += 3
    y[6000] = -5
    y[8000:] -= 1.5
    one, two = PredictiveDetector(seed=0), PredictiveDetector(seed=0)
    scores = []
    for i, v in enumerate(y):
        scores.append(one.score_one({"a": v}))
        one.learn_one({"a": v})
        if i < 600:
            x = {"a": v, "b": float(np.cos(i))}
            scores.append(two.score_one(x))
            two.learn_one(x)
    h.update(np.asarray(scores, dtype=float).tobytes())
print(f"{time.process_time() - t:.2f} {h.hexdigest()[:16]}")
"""


def run(part: str) -> tuple[float, str]:
    """One cold run of ``part`` in a fresh process and cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, STREAMRNN_COMPILE_WORKERS="0")
        out = subprocess.run([sys.executable, "-c", CHILD, part], env=env, capture_output=True, text=True,
                             check=True).stdout.split()
    return float(out[0]), out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", nargs="+", choices=("network", "scoring"), default=["network", "scoring"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for part in args.part:
        runs = [run(part) for _ in range(args.repeats)]
        seconds = [s for s, _ in runs]
        hashes = sorted({h for _, h in runs})
        print(f"{part}: compile CPU s median {statistics.median(seconds):.1f} "
              f"(runs {', '.join(f'{s:.1f}' for s in seconds)}); load average {os.getloadavg()[0]:.1f}; "
              f"outputs {' '.join(hashes)}")


if __name__ == "__main__":
    main()
