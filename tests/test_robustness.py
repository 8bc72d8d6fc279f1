"""Models that cannot be corrupted through the API: a resize that cannot be
allocated, updates that would overflow, NaN-like feature names, feature
orders that would follow the hash seed."""

import math
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import streamrnn.learner
from streamrnn import LSTMForecaster, LSTMRegressor, ModelBank, OnlineRNN, SharedWeightsBank
from streamrnn.anomaly import PredictiveDetector
from streamrnn.features import FeatureSpace
from streamrnn.kernels import layout as L


def moments(model: OnlineRNN) -> np.ndarray:
    lay = model._lay
    return np.concatenate([model._buf[lay[r] : lay[r] + lay[L.L_NPARAM]] for r in (L.L_M, L.L_V)])


def parameters(model: OnlineRNN) -> np.ndarray:
    return np.concatenate([v.ravel() for v in model.state_dict().values()])


# ------------------------------------------------------------------ resize


@pytest.mark.parametrize("sizes", [{"output_size": 10**12}, {"input_size": 10**12}, {"output_size": 10**30}])
def test_a_resize_that_cannot_be_allocated_leaves_the_model_whole(sizes, rng):
    model, twin = OnlineRNN(cell="gru", hidden_size=8, seed=0), OnlineRNN(cell="gru", hidden_size=8, seed=0)
    X, Y = rng.normal(size=(30, 1)), rng.normal(size=(30, 1))
    model.learn_many(X[:20], Y[:20])
    twin.learn_many(X[:20], Y[:20])
    before, lay = pickle.dumps(model), model._lay
    with pytest.raises(MemoryError):
        model.resize(**sizes)
    assert model._lay is lay and (model.input_size, model.output_size) == (1, 1)
    assert pickle.dumps(model) == before
    np.testing.assert_array_equal(model.predict(X[20]), twin.predict(X[20]))
    np.testing.assert_array_equal(model.learn_many(X[20:], Y[20:]), twin.learn_many(X[20:], Y[20:]))


def test_a_resize_failing_part_way_changes_nothing(monkeypatch, rng):
    model = OnlineRNN(hidden_size=8, output_size=2, seed=0)
    model.learn_many(rng.normal(size=(10, 1)), rng.normal(size=(10, 2)))
    before = pickle.dumps(model)

    def no_memory(*args):
        raise MemoryError("no memory")

    monkeypatch.setattr(streamrnn.learner, "aligned_zeros", no_memory)  # the buffer, after the layout and counters
    with pytest.raises(MemoryError):
        model.resize(input_size=3, output_size=4)
    assert pickle.dumps(model) == before
    monkeypatch.undo()
    model.resize(input_size=3, output_size=4)
    assert model.predict(np.zeros(3)).shape == (4,)


def test_an_estimator_whose_network_cannot_grow_keeps_its_features(monkeypatch):
    model, twin = LSTMRegressor(hidden_size=4, seed=0), LSTMRegressor(hidden_size=4, seed=0)
    for m in (model, twin):
        for t in range(5):
            m.learn_one({"a": t}, t / 2)

    def no_memory(self, input_size=None, output_size=None):
        raise MemoryError("no memory")

    monkeypatch.setattr(OnlineRNN, "resize", no_memory)
    with pytest.raises(MemoryError):
        model.learn_one({"a": 1.0, "b": 2.0}, 1.0)
    monkeypatch.undo()
    assert model._features.names == ["a"] and model._x_scaler.stats.shape == (3, 1)
    assert pickle.dumps(model) == pickle.dumps(twin)
    model.learn_one({"a": 1.0, "b": 2.0}, 1.0)
    twin.learn_one({"a": 1.0, "b": 2.0}, 1.0)
    assert model._features.names == ["a", "b"] and model._net.input_size == twin._net.input_size
    assert pickle.dumps(model) == pickle.dumps(twin)


# --------------------------------------------------------------- overflows


@pytest.mark.parametrize("dtype, lr", [("float32", 1e36), ("float64", 1e303)])
def test_an_update_that_would_overflow_is_rolled_back(dtype, lr):
    model = OnlineRNN(cell="lstm", hidden_size=8, optimizer="sgd", lr=lr, clip_norm=None, dtype=dtype, seed=0)
    rng = np.random.default_rng(7)
    X, Y = 1e6 * rng.normal(size=(40, 1)), 1e6 * rng.normal(size=(40, 1))
    # the first update, computed independently (NumPy, in the model's dtype): SGD's step lr * g on the
    # unclipped gradient of the first sample (the momentum buffer is zero) goes beyond the dtype
    _, grads = model.gradient(X[:1], Y[:1])
    with np.errstate(over="ignore"):
        steps = [np.asarray(lr, dtype) * g for g in grads.values()]
    assert not all(np.isfinite(step).all() for step in steps)
    for t in range(len(X)):
        params, moms, overflows = parameters(model), moments(model), model.n_overflows
        model.learn(X[t], Y[t])
        if t == 0:
            assert model.n_overflows == 1 and model.n_updates == 0
        if model.n_overflows > overflows:  # rolled back: parameters and moments as they were
            np.testing.assert_array_equal(parameters(model), params)
            np.testing.assert_array_equal(moments(model), moms)
        assert np.isfinite(parameters(model)).all() and np.isfinite(moments(model)).all()
    assert model.n_overflows >= 1 and model.n_skipped >= model.n_overflows


def test_a_large_update_that_stays_finite_is_applied_exactly(rng):
    """An SGD step of lr = 1e38 on a gradient clipped to norm 1 stays within
    float32: it is not vouched for by the cheap bound, so it takes the path
    that checks what it wrote, and must equal the update computed in NumPy."""
    model = OnlineRNN(cell="gru", hidden_size=8, optimizer="sgd", lr=1e38, seed=0)
    x, y = rng.normal(size=1), rng.normal(size=1)
    _, grads = model.gradient(x[None, :], y[None, :])
    before = model.state_dict()
    model.learn(x, y)
    assert (model.n_updates, model.n_overflows) == (1, 0)
    norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values()))
    scale = min(1.0 / (norm + 1e-6), 1.0)
    for name, g in grads.items():
        expected = before[name] - np.float32(1e38) * (g * np.float32(scale))
        assert np.isfinite(expected).all()
        np.testing.assert_allclose(model.state_dict()[name], expected, rtol=1e-5, atol=1e32)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"optimizer": "adam", "lr": 1e38}, r"first step, lr / \(1 - betas\[0\]\) = 1e\+39"),
        ({"optimizer": "adamw", "lr": 1e37, "weight_decay": 100.0}, r"lr \* weight_decay = 1e\+39"),
        ({"optimizer": "adam", "lr": 1e308, "dtype": "float64"}, "first step"),
        ({"optimizer": "rmsprop", "lr": 1e38}, r"lr / sqrt\(1 - alpha\) = 1e\+39"),
        ({"optimizer": "rmsprop", "lr": 1e308, "dtype": "float64"}, r"rmsprop's first step"),
        ({"optimizer": "rmsprop", "lr": float("inf")}, "lr must be a finite real number"),
        ({"optimizer": "sgd", "lr": -1.0}, "lr must be > 0.0"),
        ({"betas": (0.9, 1.0)}, r"betas\[1\] must be < 1.0"),
        ({"eps": float("nan")}, "eps must be a finite real number"),
    ],
)
def test_hyperparameters_with_which_every_update_overflows_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OnlineRNN(**kwargs)
    with pytest.raises(ValueError, match=match):
        ModelBank(**kwargs)


def test_the_same_learning_rate_in_float64_is_accepted():
    OnlineRNN(optimizer="adam", lr=1e38, dtype="float64")
    OnlineRNN(optimizer="adam", lr=1e38, betas=(0.0, 0.999))  # no bias correction: lr itself


def overflowing_rows(n: int):
    """Rows of two keys: "big" with inputs and targets of 1e6 (its SGD
    updates at lr = 1e33, unclipped, overflow float32) and "calm" ones."""
    rng = np.random.default_rng(3)
    keys = ["big", "calm"] * n
    X = np.where(np.array(keys)[:, None] == "big", 1e6, 0.01) * rng.normal(size=(2 * n, 1))
    Y = np.where(np.array(keys)[:, None] == "big", 1e6, 0.01) * rng.normal(size=(2 * n, 1))
    return keys, X, Y


CONFIG = dict(cell="gru", hidden_size=4, k2=4, optimizer="sgd", lr=1e33, clip_norm=None)


def test_a_bank_rolls_back_each_models_overflowing_updates():
    keys, X, Y = overflowing_rows(20)
    bank = ModelBank(seed=5, **CONFIG)
    out = bank.learn_many(keys, X, Y)
    assert np.isfinite(bank._buf[:, : bank._lay[L.L_STATE]]).all()  # every model's parameters and moments
    for slot, key in enumerate(("big", "calm")):  # each model as a standalone learner of its seed
        rows = np.array(keys) == key
        twin = OnlineRNN(seed=5 + slot, **CONFIG)
        np.testing.assert_array_equal(out[rows], twin.learn_many(X[rows], Y[rows]))
        model = bank.model(key)
        np.testing.assert_array_equal(parameters(model), parameters(twin))
        np.testing.assert_array_equal(model._ctr, twin._ctr)
    assert bank.model("big").n_overflows > 0 and bank.model("calm").n_overflows == 0


def test_a_shared_weights_bank_rolls_back_the_overflowing_updates():
    keys, X, Y = overflowing_rows(20)
    both, calm = SharedWeightsBank(seed=5, **CONFIG), SharedWeightsBank(seed=5, **CONFIG)
    both.learn_many(keys, X, Y)
    rows = np.array(keys) == "calm"
    calm.learn_many(np.array(keys)[rows].tolist(), X[rows], Y[rows])
    assert np.isfinite(both._buf[: both._lay[L.L_STATE]]).all()  # the shared parameters and moments
    assert both.model("big").n_overflows > 0 and both.model("calm").n_overflows == 0
    # no update of "big" applied: the shared weights are those learned from "calm" alone
    np.testing.assert_array_equal(parameters(both.model("calm")), parameters(calm.model("calm")))
    assert both.n_updates == calm.n_updates


# ----------------------------------------------------------- feature names


NAN_NAMES = [float("nan"), np.nan, np.float32("nan"), pd.NA, pd.NaT, ("a", float("nan")), frozenset({math.nan})]


@pytest.mark.parametrize("name", NAN_NAMES, ids=repr)
def test_nan_like_feature_names_are_refused(name):
    model = LSTMRegressor(hidden_size=4, seed=0)
    model.learn_one({"a": 1.0}, 1.0)
    before = pickle.dumps(model)
    for call in (lambda: model.learn_one({"a": 1.0, name: 2.0}, 1.0), lambda: model.predict_one({name: 2.0}),
                 lambda: model.learn_many(pd.DataFrame({"a": [1.0], name: [2.0]}), pd.Series([1.0])),
                 lambda: model.predict_many(pd.DataFrame({name: [2.0]}))):
        with pytest.raises(ValueError, match="feature name .* is or holds NaN"):
            call()
    assert pickle.dumps(model) == before


def test_nan_feature_names_are_refused_by_forecasters_and_detectors():
    forecaster = LSTMForecaster(hidden_size=4, seed=0)
    with pytest.raises(ValueError, match="is or holds NaN"):
        forecaster.learn_one(1.0, {float("nan"): 1.0})
    detector = PredictiveDetector(hidden_size=4, seed=0)
    with pytest.raises(ValueError, match="is or holds NaN"):
        detector.learn_one({float("nan"): 1.0})
    assert len(detector._features) == 0 and detector._net.input_size == 1


def test_feature_order_of_plain_names_is_unchanged():
    space = FeatureSpace()
    names = ["b", "a", 10, 2, 1.5, ("x", 2), ("x", 10), None, True]
    space.register(names)
    # by type name, then str: the order of every earlier version (the saved models' columns)
    assert space.names == [None, True, 1.5, 10, 2, "a", "b", ("x", 10), ("x", 2)]


HASH_SCRIPT = textwrap.dedent(
    """
    import numpy as np, pandas as pd
    from streamrnn import LSTMRegressor
    names = [frozenset({"x", "y"}), frozenset({"a", "z"}), frozenset({"b", "w"}), frozenset({"c", "v"}),
             ("t", frozenset({"k", "m"})), ("t", frozenset({"j", "n"}))]
    model = LSTMRegressor(hidden_size=4, seed=0)
    for t in range(8):
        model.learn_one({n: float((t * (i + 1)) % 5) for i, n in enumerate(names)}, float(t % 3))
    many = LSTMRegressor(hidden_size=4, seed=0)
    frame = pd.DataFrame([{n: float(t + i) for i, n in enumerate(names)} for t in range(4)])
    many.learn_many(frame, pd.Series([0.0, 1.0, 2.0, 3.0]))
    print(model.predict_one({n: 1.0 + i for i, n in enumerate(names)}).hex(), list(many.predict_many(frame)))
    """
)


def test_predictions_do_not_depend_on_the_hash_seed():
    outputs = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-c", HASH_SCRIPT], env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout)
    assert len(outputs) == 1, outputs


def test_weights_loaded_between_updates_are_bounded_afresh(rng):
    """Within a kernel call the weights' norms pass from one update to the
    next; weights loaded between calls must not be bounded by those of
    before."""
    model = OnlineRNN(cell="lstm", hidden_size=4, optimizer="rmsprop", weight_decay=0.1, seed=0)
    X, Y = rng.normal(size=(20, 1)), rng.normal(size=(20, 1))
    model.learn_many(X[:10], Y[:10])
    model.learn(X[10], Y[10])
    assert model.n_overflows == 0 and model.n_updates == 11
    weights = model.state_dict()
    weights["bias_hh_l0"][:] = 3e37  # saturated gates; the decay term's square, 1e-2 * (3e36) ** 2, overflows
    model.load_state_dict(weights)
    params, moms = parameters(model), moments(model)
    model.learn(X[11], Y[11])
    assert model.n_overflows == 1
    np.testing.assert_array_equal(parameters(model), params)
    np.testing.assert_array_equal(moments(model), moms)
    model.learn_many(X[12:], Y[12:])
    assert model.n_overflows == 9 and np.isfinite(moments(model)).all()
