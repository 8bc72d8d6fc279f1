"""How calibrated PredictiveDetector's scores are on stationary streams.

On the four stationary streams of ``tests/test_anomaly_calibration.py``
(different scales, periods, noise laws and numbers of features; 20,000
points each, the first 2,000 left out), prints the points flagged per 1,000
by River's ``ThresholdFilter`` at the documented threshold (an alarm at a
tail probability of 1e-3), the percentage flagged by River's
``QuantileFilter(q=0.995)``, and the deciles of the scores; then the cost of
``score_one`` + ``learn_one`` per point (the fastest of the batches of 200
points: the least disturbed by other work on the machine).

Run: ``python benchmarks/bench_calibration.py [--seed S]``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

from streamrnn.anomaly import THRESHOLD, PredictiveDetector

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from test_anomaly_calibration import KINDS, SETTLED, flags_of_river_filters, points, stationary  # noqa: E402


def cost_per_point(seed: int, n: int = 30_000, batch: int = 200) -> float:
    """µs per point of score_one + learn_one on a noisy sine, fastest batch."""
    rng = np.random.default_rng(seed)
    xs = [{"value": float(v)} for v in np.sin(np.arange(n) / 10) + 0.1 * rng.normal(size=n)]
    detector = PredictiveDetector(seed=seed)
    for x in xs[:2000]:
        detector.score_one(x)
        detector.learn_one(x)
    best = np.inf
    for start in range(2000, n, batch):
        t = time.perf_counter()
        for x in xs[start : start + batch]:
            detector.score_one(x)
            detector.learn_one(x)
        best = min(best, (time.perf_counter() - t) / batch)
    return 1e6 * best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the detectors (default 0)")
    args = parser.parse_args(argv)
    print(f"| stream | ThresholdFilter({THRESHOLD:.2f}) per 1,000 | QuantileFilter(0.995) % | score deciles 10/50/90 |")
    print("|---|---|---|---|")
    for kind in KINDS:
        flags_t, flags_q, scores = flags_of_river_filters(points(stationary(kind)), seed=args.seed)
        deciles = np.quantile(scores[SETTLED:], [0.1, 0.5, 0.9])
        print(f"| {kind} | {1000 * np.mean(flags_t[SETTLED:]):.2f} | {100 * np.mean(flags_q[SETTLED:]):.2f} | "
              + " / ".join(f"{d:.3f}" for d in deciles) + " |", flush=True)
    print(f"\nscore_one + learn_one: {cost_per_point(args.seed):.1f} µs per point (fastest batch of 200)")


if __name__ == "__main__":
    main()
