"""Streams that exercise every branch of the River estimators' per-row
path (features appearing mid-stream and in any key order, missing ones
absent, None or NaN, ints and bools, unknown features at prediction, dates,
glitches, classes appearing over time, entities, mini-batches), and what a
model gives on them: each prediction in order and the state it ends in.

``tests/fixtures/river_layer_reference.npz`` holds these figures as the
estimators computed them before their per-row path was fused into one
kernel call (``python tests/river_streams.py`` writes it again), so that
test can assert that every prediction stayed bit-identical.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import pathlib

import numpy as np
import pandas as pd

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "river_layer_reference.npz"


def _regression_rows(n: int, seed: int) -> list:
    """Rows ``(x, y)`` of a persistent target with five features, their key
    order, presence and types varying along the stream."""
    rng = np.random.default_rng(seed)
    rows, level = [], 10.0
    for t in range(n):
        level += rng.normal(0, 0.3)
        x = {"a": float(rng.normal()), "b": float(level + rng.normal(0, 0.1)), "c": int(rng.integers(0, 5))}
        if t >= 40:  # a feature that appears mid-stream
            x["late"] = float(rng.normal(3, 2))
        if 60 <= t < 90:  # absent for a while
            del x["a"]
        if t % 17 == 5:
            x["b"] = None  # missing as None
        if t % 23 == 7:
            x["c"] = math.nan  # missing as NaN
        if t % 11 == 3:
            x = dict(reversed(list(x.items())))  # another key order
        if t % 29 == 13:
            x["flag"] = bool(t % 2)  # a bool feature, now and then
        if t % 31 == 0:
            x["np"] = np.float32(t / 10)  # a numpy scalar
        if t == 150:
            x["b"] = 1e9  # a glitch in a feature
        y = level + 0.5 * x.get("a", 0.0) if t != 170 else 1e12  # a glitch in the target
        rows.append((x, float(y) if t % 13 else int(round(y))))
    return rows


def _classification_rows(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    rows, state = [], 0
    for t in range(n):
        state = state if rng.random() < 0.8 else 1 - state
        x = {"u": float(rng.normal(state, 1.0)), "v": float(rng.normal())}
        if t >= 30:
            x["w"] = float(rng.normal(-state, 0.5))
        if 50 <= t < 70:
            del x["u"]
        if t % 19 == 4:
            x["v"] = None
        if t % 7 == 2:
            x = dict(reversed(list(x.items())))
        label = ["up", "down"][state] if t < 120 else ["up", "down", "flat"][(state + t) % 3]  # a class appears
        rows.append((x, label))
    return rows


def _dated(rows: list) -> list:
    start = dt.datetime(2024, 1, 1)
    return [({**x, "when": start + dt.timedelta(hours=7 * t)}, y) for t, (x, y) in enumerate(rows)]


def _keyed(rows: list, key: str, n_keys: int) -> list:
    return [({**x, key: (t * 7) % n_keys if t % 9 else None}, y) for t, (x, y) in enumerate(rows)]


def scenarios() -> dict:
    """``name -> (make, rows, kind)``: a model factory, its rows and
    ``"regression"`` or ``"classification"``."""
    from streamrnn import GRUClassifier, GRURegressor, LSTMClassifier, LSTMRegressor, RNNClassifier, RNNRegressor

    reg, clf = _regression_rows(220, 0), _classification_rows(200, 1)
    small = dict(hidden_size=8, k2=6, seed=3)
    return {
        "lstm_regressor": (lambda: LSTMRegressor(seed=0), reg, "regression"),
        "lstm_regressor_k1": (lambda: LSTMRegressor(k1=4, seed=1), reg, "regression"),
        "gru_regressor_change": (lambda: GRURegressor(model_change="change", revealed_targets=0, **small), reg,
                                 "regression"),
        "rnn_regressor_level": (lambda: RNNRegressor(model_change="level", scale_target=False, revealed_targets=2,
                                                     loss="huber", **small), reg, "regression"),
        "lstm_regressor_float64": (lambda: LSTMRegressor(dtype="float64", num_layers=2, **small), reg, "regression"),
        "lstm_regressor_dates": (lambda: LSTMRegressor(**small), _dated(reg[:80]), "regression"),
        "gru_regressor_keyed": (lambda: GRURegressor(key="site", max_idle=40, **small), _keyed(reg, "site", 4),
                                "regression"),
        "lstm_classifier": (lambda: LSTMClassifier(seed=0), clf, "classification"),
        "rnn_classifier_plain": (lambda: RNNClassifier(revealed_targets=0, **small), clf, "classification"),
        "gru_classifier_float64": (lambda: GRUClassifier(dtype="float64", revealed_targets=1, **small), clf,
                                   "classification"),
        "lstm_classifier_keyed": (lambda: LSTMClassifier(key="site", **small), _keyed(clf, "site", 3),
                                  "classification"),
    }


def _proba_vector(p: dict, classes: list) -> list:
    return [p.get(c, -1.0) for c in classes] + [float(len(p))]


def run(make, rows: list, kind: str) -> dict:
    """The figures of one scenario: each prediction (``predict_one`` of each
    row before it is learned, of the row with an unknown feature added, and
    of its mini-batch), then the model's state at the end."""
    model = make()
    out: list = []
    classes = sorted({str(y) for _, y in rows}) if kind == "classification" else None
    for t, (x, y) in enumerate(rows):
        if kind == "regression":
            out.append(model.predict_one(x))
            out.append(model.predict_one({**x, "unknown": 1.5}))
        else:
            out.extend(_proba_vector(model.predict_proba_one(x), classes))
            out.extend(_proba_vector(model.predict_proba_one({**x, "unknown": 1.5}), classes))
        if 100 <= t < 130 and t % 10 == 0 and not any(isinstance(v, dt.date) for v in x.values()):
            # a mini-batch of the next rows, learned as a whole
            batch = rows[t : t + 10]
            X = pd.DataFrame([{k: (math.nan if v is None else v) for k, v in bx.items()} for bx, _ in batch])
            if kind == "regression":
                out.extend(model.predict_many(X).tolist())
                model.learn_many(X, pd.Series([by for _, by in batch], dtype=float))
            else:
                P = model.predict_proba_many(X)
                out.extend(P.reindex(columns=classes, fill_value=-1.0).to_numpy().ravel().tolist())
                model.learn_many(X, pd.Series([by for _, by in batch]))
        if 100 <= t < 130 and not any(isinstance(v, dt.date) for v in x.values()):
            continue  # learned in its mini-batch
        model.learn_one(x, y)
    net = model._net
    state = {
        "outputs": np.array(out, dtype=np.float64),
        # (the network's weights, moments, state and window: their digest)
        "buf": np.frombuffer(hashlib.sha256(net.__getstate__()["_buf"].tobytes()).digest(), dtype=np.uint8),
        "ctr": np.array(net._ctr),
        "x_stats": np.array(model._x_scaler.stats),
        "carried": np.array(model._carried, dtype=np.float64),
    }
    if kind == "regression":
        state["y_stats"] = np.array(model._y_scaler.stats)
        state["errors"] = np.array(model._target.errors)
    return state


def environment() -> str:
    """What the figures' last bits depend on besides the code: the kernels'
    machine code (Numba, LLVM's target CPU, bounds checking changes the code
    of the fast-math kernels) and NumPy's exponential (its SIMD one on
    AVX-512)."""
    import platform

    import numba
    from llvmlite import binding

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        cpu += ", avx512f" if " avx512f" in info else ""
    except (OSError, StopIteration):
        pass
    return (f"numpy {np.__version__}, numba {numba.__version__}, {cpu} ({binding.get_host_cpu_name()}), "
            f"boundscheck {bool(numba.config.BOUNDSCHECK)}")


def compute() -> dict:
    """Every scenario's figures, flattened to ``"<scenario>/<figure>"``, and
    the :func:`environment` they were computed in."""
    figures = {"environment": np.array(environment())}
    for name, (make, rows, kind) in scenarios().items():
        for part, value in run(make, rows, kind).items():
            figures[f"{name}/{part}"] = value
    return figures


if __name__ == "__main__":
    np.savez_compressed(FIXTURE, **compute())
    print(f"wrote {FIXTURE}")
