"""Quickstart: one-step-ahead forecasting of River's bundled WaterFlow series
with ``OnlineRNN``, learning online, one sample at a time.

Each network sees the last hourly change of the flow and learns the next one
(a residual over the persistence forecast ``y[t+1] = y[t]``). Prequential
protocol: ``learn(x_t, y_t)`` returns the prediction made *before* learning
``y_t``, so every forecast scored here was made without seeing its target.

Run: ``python examples/quickstart.py [--hidden-size 16] [--seed 0]``
"""

import argparse

import numpy as np
from river import datasets, metrics

from streamrnn import OnlineRNN


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    y = np.array([target for _, target in datasets.WaterFlow()], dtype=float)
    change = np.diff(y)
    print(f"WaterFlow: {len(y)} hourly values; one-step-ahead prequential MAE")

    persistence = metrics.MAE()
    for t in range(1, len(change)):
        persistence.update(y[t + 1], y[t])
    print(f"  {'persistence':<28} {persistence.get():.4f}")

    for cell in ("rnn", "gru", "lstm"):
        model = OnlineRNN(cell=cell, hidden_size=args.hidden_size, lr=args.lr, seed=args.seed)
        mae = metrics.MAE()
        for t in range(1, len(change)):
            predicted_change = model.learn([change[t - 1]], [change[t]])[0]
            mae.update(y[t + 1], y[t] + predicted_change)
        name = f"OnlineRNN({cell}, hidden={args.hidden_size})"
        print(f"  {name:<28} {mae.get():.4f}   ({model.n_updates} updates, {model.n_skipped} skipped)")


if __name__ == "__main__":
    main()
