"""Quickstart: one-step-ahead forecasting of River's bundled WaterFlow series
with ``OnlineRNN``, learning online, one sample at a time.

The network sees the standardised current level and its last change, and
learns the next change (a residual over the persistence forecast), so it
starts out as good as persistence and improves from there. Prequential
protocol: predict y[t+1] from what was seen up to t, then learn it.

Run: ``python examples/quickstart.py [--cell lstm] [--seed 0]``
"""

import argparse

import numpy as np
from river import datasets, metrics, stats

from streamrnn import OnlineRNN


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="lstm", choices=["rnn", "gru", "lstm"])
    parser.add_argument("--hidden-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    y = np.array([target for _, target in datasets.WaterFlow()], dtype=float)
    model = OnlineRNN(cell=args.cell, input_size=2, hidden_size=args.hidden_size, k1=1, k2=16, lr=args.lr,
                      seed=args.seed)
    level, change = stats.Var(), stats.Var()  # running mean and variance (Welford)
    mae_model, mae_persistence = metrics.MAE(), metrics.MAE()

    x_prev = None
    for t in range(1, len(y) - 1):
        level.update(y[t])
        change.update(y[t] - y[t - 1])
        scale = max(change.get(), 1e-12) ** 0.5
        x = np.array([(y[t] - level.mean.get()) / max(level.get(), 1e-12) ** 0.5, (y[t] - y[t - 1]) / scale])
        if x_prev is not None:  # the change seen now is the target of the previous input
            model.learn(x_prev, [x[1]])
        forecast = y[t] + scale * model.predict(x)[0]
        mae_model.update(y[t + 1], forecast)
        mae_persistence.update(y[t + 1], y[t])
        x_prev = x

    print(f"WaterFlow, {len(y)} hourly values, one-step-ahead prequential MAE")
    print(f"  OnlineRNN({args.cell}, hidden={args.hidden_size}): {mae_model.get():.4f}")
    print(f"  persistence:                     {mae_persistence.get():.4f}")
    print(f"  steps {model.n_steps}, updates {model.n_updates}, skipped {model.n_skipped}")


if __name__ == "__main__":
    main()
