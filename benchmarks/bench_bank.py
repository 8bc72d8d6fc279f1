"""Throughput of a ModelBank of independent LSTMs on the CPU threads.

N models (hidden 32, input 1, float32, k1 = k2 = 16); each batch holds one
row per model (``--rows-per-key`` rows each). Reported: µs per stream-sample
(one row of one model) for ``learn_many`` and ``predict_many``, median of
repeated batches after warm-up, with Numba's thread count and layer; then
the same stream through a SharedWeightsBank (one set of weights, a state and
window per key; rows run in arrival order on one thread). Keys are strings
("sensor-17"), then the same keys as a numpy array of integer ids, which the
banks map to slots without Python objects.

When torch is importable, the same LSTMs as a peer in the same run: PyTorch
with every model's weights stacked into one tensor per parameter, so that a
batch is ``rows_per_key`` steps of batched matrix products over all models
(the fastest way PyTorch has to run many small models; a Python loop over
models is much slower). ``predict`` runs the steps from the carried states
under ``no_grad``; ``learn`` runs them with autograd from the carried states
and takes one step per model as the bank does with k1 = k2 = rows per key:
loss the mean squared error of the window's predictions, each model's
gradient clipped to norm 1 on its own, Adam with lr 1e-3 (elementwise, so
one optimizer over the stacked tensors updates each model as its own
would). The peer starts from the bank's weights and states, and its
predictions are compared with the bank's.

Run: ``python benchmarks/bench_bank.py [--models 1000] [--threads 2] [--no-torch]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np

from streamrnn import ModelBank, SharedWeightsBank


def rates(bank, keys, X, Y, repeats: int) -> tuple[list, list]:
    """Seconds per row of ``learn_many`` and of ``predict_many``, ``repeats`` times each."""
    learn, predict = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        bank.learn_many(keys, X, Y)
        learn.append((time.perf_counter() - t) / len(keys))
        t = time.perf_counter()
        bank.predict_many(keys, X)
        predict.append((time.perf_counter() - t) / len(keys))
    return learn, predict


def torch_peer(bank, ids, X, Y, rows_per_key: int, threads: int, repeats: int) -> dict | None:
    """Seconds per row of the stacked-PyTorch peer's learn and predict on the
    batch ``(ids, X, Y)`` (``ids`` the integer keys 0..N-1 in turn, the rows of
    each step together), starting from ``bank``'s LSTMs; ``None`` without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    n_models = len(ids) // rows_per_key
    models = [bank.model(int(k)) for k in ids[:n_models]]
    dicts = [m.state_dict() for m in models]

    def stack(name):
        return torch.from_numpy(np.stack([d[name] for d in dicts]))

    w_ih, w_hh = stack("weight_ih_l0")[:, :, 0], stack("weight_hh_l0")  # (N, 4H), (N, 4H, H)
    b_ih, b_hh = stack("bias_ih_l0"), stack("bias_hh_l0")
    w_out, b_out = stack("head.weight")[:, 0], stack("head.bias")[:, 0]  # (N, H), (N,)
    params = [w_ih, w_hh, b_ih, b_hh, w_out, b_out]
    for p in params:
        p.requires_grad_(True)
    h0 = torch.from_numpy(np.stack([m.hidden_state[0][0] for m in models]))
    c0 = torch.from_numpy(np.stack([m.hidden_state[1][0] for m in models]))
    xs = torch.from_numpy(X).view(rows_per_key, n_models)
    ys = torch.from_numpy(Y).view(rows_per_key, n_models)

    def run(h, c):
        outs = []
        for t in range(rows_per_key):
            # bmm then the bias: 2x faster here than baddbmm, and than einsum or a broadcast product
            gates = (torch.bmm(w_hh, h[:, :, None])[:, :, 0] + b_hh) + (w_ih * xs[t][:, None] + b_ih)
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append((w_out * h).sum(dim=1) + b_out)
        return torch.stack(outs), h, c

    with torch.no_grad():
        ours = bank.predict_many(ids, X)[:, 0]
        theirs = run(h0, c0)[0].reshape(-1).numpy()
    result = {"max |peer - bank| predict": float(np.abs(ours - theirs).max())}

    def predict():
        with torch.no_grad():
            return run(h0, c0)[0]

    opt = torch.optim.Adam(params, lr=1e-3)
    state = [h0, c0]

    def learn():
        yhat, h, c = run(*state)
        loss = ((yhat - ys) ** 2).mean(dim=0).sum()  # each model's mean squared error
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            norm = sum(p.grad.reshape(n_models, -1).pow(2).sum(dim=1) for p in params).sqrt()
            scale = (1.0 / (norm + 1e-6)).clamp(max=1.0)
            for p in params:
                p.grad.mul_(scale.view(-1, *[1] * (p.dim() - 1)))
        opt.step()
        state[:] = h.detach(), c.detach()
        return yhat

    for name, f in (("learn", learn), ("predict", predict)):
        f()  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            f()
            times.append((time.perf_counter() - t) / len(ids))
        result[name] = statistics.median(times)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--rows-per-key", type=int, default=16)
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    args = parser.parse_args(argv)
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    keys = [f"sensor-{i}" for i in range(args.models)] * args.rows_per_key
    n = len(keys)
    X = rng.normal(size=(n, 1)).astype(np.float32)
    Y = rng.normal(size=(n, 1)).astype(np.float32)
    print(f"{args.models} {args.cell.upper()}s, hidden 32, float32, k1 = k2 = 16, {args.rows_per_key} rows per key "
          f"per batch")
    for cls in (ModelBank, SharedWeightsBank):
        bank = cls(seed=0, cell=args.cell, hidden_size=32, k1=16, k2=16)
        bank.learn_many(keys, X, Y)  # creates the models, compiles
        bank.predict_many(keys, X)
        learn, predict = rates(bank, keys, X, Y, args.repeats)
        ids = np.tile(np.arange(args.models), args.rows_per_key)  # the same keys as integer ids
        bank.learn_many(ids, X, Y)
        learn_ids, predict_ids = rates(bank, ids, X, Y, args.repeats)
        threads = f"{numba.get_num_threads()} threads ({numba.threading_layer()})" if cls is ModelBank else "1 thread"
        print(f"{cls.__name__}, {threads}, µs per stream-sample, string keys / integer-id array keys:")
        print(f"  learn_many:   {1e6 * statistics.median(learn):.3f} / {1e6 * statistics.median(learn_ids):.3f}")
        print(f"  predict_many: {1e6 * statistics.median(predict):.3f} / {1e6 * statistics.median(predict_ids):.3f}")
        if cls is ModelBank and args.cell == "lstm" and not args.no_torch:
            fresh = cls(seed=0, cell=args.cell, hidden_size=32, k1=16, k2=16)
            fresh.learn_many(ids, X, Y)
            peer = torch_peer(fresh, ids, X, Y, args.rows_per_key, args.threads, args.repeats)
            if peer is None:
                print("PyTorch peer: torch is not installed (pip install torch==2.13.0)")
            else:
                mine = rates(fresh, ids, X, Y, args.repeats)
                learn_ours, predict_ours = (statistics.median(r) for r in mine)
                print(f"PyTorch {__import__('torch').__version__}, every model's weights stacked, {args.threads} threads, "
                      f"µs per stream-sample (ModelBank on integer ids in the same run, ratio):")
                print(f"  learn:   {1e6 * peer['learn']:.3f} (ModelBank {1e6 * learn_ours:.3f}, "
                      f"{peer['learn'] / learn_ours:.1f}x)")
                print(f"  predict: {1e6 * peer['predict']:.3f} (ModelBank {1e6 * predict_ours:.3f}, "
                      f"{peer['predict'] / predict_ours:.1f}x); max |peer - bank| of the predictions: "
                      f"{peer['max |peer - bank| predict']:.1e}")


if __name__ == "__main__":
    main()
