"""M4 Hourly: the global forecaster's window network, its design constants
varied (:mod:`streamrnn.window_network`: learning rate relative to the
recurrent network's, samples per Adam step, hidden units), scored on the
validation split only: each series' last 48 training values, learned from
the values before them (``bench_m4.py --validation``'s protocol). A study,
not a benchmark of the defaults.

Run: ``python benchmarks/study_m4_global_window.py --lr-factor 0.1 --batch 16 [--hidden 64] [--seed 0]
[--series N]``.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_m4 as B  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr-factor", type=float, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--series", type=int, default=None)
    p.add_argument("--correct", type=int, choices=[0, 1], default=1)
    a = p.parse_args(argv)
    if not os.path.isdir(B.DATA):
        sys.exit(f"M4 data not found at {B.DATA} (skipped)")
    import streamrnn
    from streamrnn import window_network as W

    for name, value in (("LR_FACTOR", a.lr_factor), ("BATCH", a.batch), ("HIDDEN", a.hidden)):
        if value is not None:
            setattr(W, name, value)
    _, train, _ = B.load()
    train, test = [t[: -B.H] for t in train], [t[-B.H :] for t in train]
    if a.series:
        train, test = train[: a.series], test[: a.series]
    forecasts, intervals, cost = B.run_global(
        lambda: streamrnn.GlobalForecaster(seed=a.seed, correct=bool(a.correct)), train)
    s = B.score(train, test, forecasts, intervals)
    print(f"validation, {len(train)} series, seed {a.seed}, correct {a.correct}, LR_FACTOR {W.LR_FACTOR}, "
          f"BATCH {W.BATCH}, HIDDEN {W.HIDDEN}: sMAPE {s['sMAPE']:.3f} MASE {s['MASE']:.4f} OWA {s['OWA']:.4f} "
          f"coverage {s['coverage']:.3f} MSIS {s['MSIS']:.2f}, {cost:.1f} CPU µs/point", flush=True)


if __name__ == "__main__":
    main()
