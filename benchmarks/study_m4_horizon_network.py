"""M4 Hourly: can a network trained across series on windows of recent
values add to the forecaster's statistical mixture? A study, not a model of
the library.

Protocol (one pass, no per-series tuning, seed 0 for the network):

1. Each series' training part is fed once through the default forecaster
   with its network frozen (``LSTMForecaster(seed=0, lr=1e-30)``), and its
   ``forecast(48)`` is kept at every origin: the mixture ``f_t``.
2. One network (inputs: the last ``L`` values and the mixture's 48 forecasts,
   less the mean of the last 24 values, on the log scale; one hidden tanh
   layer; 48 outputs) learns online across series, in the order of the
   global forecaster's stream: at time index ``T`` every series' origin
   ``T - 48`` (whose 48 values are then known) in mini-batches of ``--mb``
   rows, Adam, L1 loss, targets clipped at ±1. Its forecast is the level plus
   its outputs (``--mode level``) or the mixture plus them (``--mode resid``).
3. At each series' last origin, the network's forecast and the mixture are
   weighed per horizon by the inverse square of their discounted (0.99 per
   origin) mean squared errors over the origins scored by then, as the
   forecaster's combination does (none beyond twice the best); with
   ``--mode resid`` and no ``--gate``, the corrected mixture is given as it is.

``--mode resid --gate`` is the design :class:`~streamrnn.GlobalForecaster`
adopted (its ``correct`` argument, :mod:`streamrnn.window_network`), there
learned row by row as the keys arrive instead of in mini-batches.

``--validation`` scores on each series' last 48 training values instead of
its test part, learning from the values before them (the forecasts at those
origins are the cached ones: online, they saw nothing later); designs are
decided there, never on the test part.

Printed: OWA of the mixture, of the network alone, of the two weighed, and
the ratio (weighed / mixture) on ``--subset`` (even- or odd-indexed series, or
all). Run: ``python benchmarks/study_m4_horizon_network.py --subset even``
(the mixtures are cached in ``--cache``, ~4 min the first time).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_m4 as B  # noqa: E402

H = 48


def mixtures(train: list[np.ndarray], cache: str) -> list[np.ndarray]:
    """The frozen default forecaster's forecasts of the next 48 values at
    every origin of each training part (cached)."""
    if os.path.exists(cache):
        with np.load(cache) as data:
            return [data[f"F{i}"].astype(np.float64) for i in range(len(train))]
    import streamrnn

    out = []
    for series in train:
        model = streamrnn.LSTMForecaster(seed=0, lr=1e-30)
        F = np.full((len(series), H), np.nan, np.float32)
        for t, v in enumerate(series.tolist()):
            model.learn_one(v)
            F[t] = model.forecast(H)
        out.append(F.astype(np.float64))
    np.savez(cache, **{f"F{i}": f.astype(np.float32) for i, f in enumerate(out)})
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subset", choices=["even", "odd", "all"], default="even")
    p.add_argument("--mode", choices=["level", "resid"], default="level")
    p.add_argument("--L", type=int, default=168, help="values in the window")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--mb", type=int, default=16)
    p.add_argument("--gate", action="store_true", help="weigh the corrected mixture too (--mode resid)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ensemble", type=int, default=1, help="networks (seeds) whose mean output is the network's")
    p.add_argument("--joint", action="store_true", help="the ensemble's members learn from their mean's error")
    p.add_argument("--mix", type=float, default=None,
                   help="with --gate: give this fixed weight to the corrected mixture instead of weighing by errors")
    p.add_argument("--discount", type=float, default=0.99, help="of the gate's squared errors, per origin")
    p.add_argument("--validation", action="store_true", help="score on the last 48 training values")
    p.add_argument("--cache", default="/tmp/m4_frozen_mixtures.npz")
    a = p.parse_args(argv)
    if not os.path.isdir(B.DATA):
        sys.exit(f"M4 data not found at {B.DATA} (skipped)")
    _, train, test = B.load()
    F = mixtures(train, a.cache)
    if a.validation:
        test = [t[-H:] for t in train]
        train = [t[:-H] for t in train]
        F = [f[:-H] for f in F]
    idx = [i for i in range(len(train)) if a.subset == "all" or (i % 2 == 0) == (a.subset == "even")]
    first = max(a.L, 24)
    X, Y, A = {}, {}, {}  # inputs, targets and the anchor of the network's outputs, per origin
    for i in idx:
        y = np.log(train[i])
        f = np.log(np.maximum(np.nan_to_num(F[i], nan=1.0), 1e-3 * train[i].mean()))
        n = len(y)
        X[i], Y[i], A[i] = np.zeros((n, a.L + H)), np.zeros((n, H)), np.zeros((n, H))
        for t in range(first, n):
            level = y[t - 23 : t + 1].mean()
            X[i][t] = np.clip(np.concatenate([y[t - a.L + 1 : t + 1] - level, f[t] - level]), -3, 3)
            A[i][t] = level if a.mode == "level" else f[t]
            if t + H < n:
                Y[i][t] = np.clip(y[t + 1 : t + 1 + H] - A[i][t], -1, 1)
    D = a.L + H
    members = []  # each member's parameters and Adam moments; the network's output is their mean
    for e in range(a.ensemble):
        rng = np.random.default_rng(a.seed + 1000 * e)
        params = [rng.normal(size=(D, a.hidden)) / np.sqrt(D), np.zeros(a.hidden), np.zeros((a.hidden, H)), np.zeros(H)]
        members.append((params, [[np.zeros_like(q), np.zeros_like(q)] for q in params]))
    steps = 0

    def forward(x):
        return None, np.mean([np.tanh(x @ q[0] + q[1]) @ q[2] + q[3] for q, _ in members], axis=0)

    lengths = {i: len(train[i]) for i in idx}
    P = {i: np.full((lengths[i], H), np.nan) for i in idx}  # the network's outputs at each origin, before learning it
    for T in range(first + H, max(lengths.values())):
        rows = [i for i in idx if T < lengths[i]]
        x = np.array([X[i][T - H] for i in rows])
        target = np.array([Y[i][T - H] for i in rows])
        out = forward(x)[1]
        for r, i in enumerate(rows):
            P[i][T - H] = out[r]
        for k in range(0, len(rows), a.mb):
            xb, yb = x[k : k + a.mb], target[k : k + a.mb]
            steps += 1
            for params, moments in members:
                hidden = np.tanh(xb @ params[0] + params[1])
                pred = hidden @ params[2] + params[3]
                if a.joint:  # the members learn their mean's error (one network of a.ensemble heads)
                    pred = forward(xb)[1]
                g = np.sign(pred - yb) / (len(xb) * H)
                dh = g @ params[2].T * (1 - hidden * hidden)
                grads = [xb.T @ dh, dh.sum(0), hidden.T @ g, g.sum(0)]
                for q, grad, (m1, m2) in zip(params, grads, moments):
                    m1 *= 0.9
                    m1 += 0.1 * grad
                    m2 *= 0.999
                    m2 += 0.001 * grad * grad
                    q -= a.lr * (m1 / (1 - 0.9**steps)) / (np.sqrt(m2 / (1 - 0.999**steps)) + 1e-8)
    base, alone, weighed, share = [], [], [], []
    for i in idx:
        t = lengths[i] - 1
        mixture = np.log(np.maximum(np.nan_to_num(F[i][t], nan=1.0), 1e-3 * train[i].mean()))
        own = A[i][t] + forward(X[i][t][None])[1][0]
        base.append(F[i][t])
        alone.append(np.exp(own))
        if a.mode == "resid" and not a.gate:
            weighed.append(np.exp(own))
            continue
        ts = np.arange(first, lengths[i] - H)
        y = np.log(train[i])
        truth = np.stack([y[s + 1 : s + 1 + H] for s in ts])
        mix = np.log(np.maximum(np.nan_to_num(F[i][ts], nan=1.0), 1e-3 * train[i].mean()))
        net = A[i][ts] + np.nan_to_num(P[i][ts])
        discount = a.discount ** (ts[-1] - ts)[:, None]
        mse_mix, mse_net = (discount * (truth - mix) ** 2).sum(0), (discount * (truth - net) ** 2).sum(0)
        best = np.minimum(mse_mix, mse_net)
        w_mix = np.where(mse_mix > 2 * best, 0.0, (best / mse_mix) ** 2)
        w_net = np.where(mse_net > 2 * best, 0.0, (best / mse_net) ** 2)
        if a.mix is not None:
            w_mix, w_net = np.full(H, 1.0 - a.mix), np.full(H, a.mix)
        share.append(float(np.mean(w_net / (w_mix + w_net))))
        weighed.append(np.exp((w_mix * mixture + w_net * own) / (w_mix + w_net)))
    tr, te = [train[i] for i in idx], [test[i] for i in idx]
    s_base, s_alone, s_weighed = (B.score(tr, te, f)["OWA"] for f in (base, alone, weighed))
    print(f"{a.subset} ({len(idx)} series){' validation' if a.validation else ''}, mode {a.mode}, L {a.L}, "
          f"hidden {a.hidden}, lr {a.lr:g}, mb {a.mb}, ensemble {a.ensemble}{' joint' if a.joint else ''}"
          f"{'' if a.mix is None else f', fixed weight {a.mix}'}, discount {a.discount}: "
          f"OWA mixture {s_base:.4f}, network alone {s_alone:.4f}, weighed {s_weighed:.4f} "
          f"(ratio {s_weighed / s_base:.4f}; network's mean weight {np.mean(share) if share else 1.0:.3f})")


if __name__ == "__main__":
    main()
