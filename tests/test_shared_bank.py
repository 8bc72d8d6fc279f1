"""SharedWeightsBank: one model's weights learning from many series, each with
its own state and window, against a Python re-implementation that swaps each
series' state in and out of a single OnlineRNN."""

import pickle

import numpy as np
import pytest

from streamrnn import OnlineRNN, SharedWeightsBank
from streamrnn.kernels import layout as L

CONFIG = dict(input_size=2, output_size=2, hidden_size=5, k1=3, k2=5)
PER_SERIES = (L.C_STEPS, L.C_SKIPPED, L.C_RESETS, L.C_POS, L.C_FILL, L.C_SINCE)


class SwappingReference:
    """One OnlineRNN; before each row its series' state, window and schedule
    counters are copied in, and copied out after."""

    def __init__(self, seed, **config):
        self.model = OnlineRNN(**config, seed=seed)
        lay = self.model._lay
        self.region = slice(lay[L.L_STATE], lay[L.L_HP])
        self.series = {}

    def learn(self, key, x, y):
        buf, ctr = self.model._buf, self.model._ctr
        region, counters = self.series.get(key, (np.zeros_like(buf[self.region]), np.zeros(len(PER_SERIES), np.int64)))
        buf[self.region] = region
        ctr[list(PER_SERIES)] = counters
        out = self.model.learn(x, y)
        self.series[key] = (buf[self.region].copy(), ctr[list(PER_SERIES)].copy())
        return out

    def model_of(self, key):
        model = pickle.loads(pickle.dumps(self.model))
        region, counters = self.series[key]
        model._buf[self.region] = region
        model._ctr[list(PER_SERIES)] = counters
        return model


def stream(n, keys, seed=0):
    rng = np.random.default_rng(seed)
    k = [keys[i] for i in rng.integers(0, len(keys), n)]
    return k, rng.normal(size=(n, 2)), rng.normal(size=(n, 2))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_one_series_equals_online_rnn(cell):
    _, X, Y = stream(40, ["a"])
    bank = SharedWeightsBank(cell=cell, seed=3, **CONFIG)
    model = OnlineRNN(cell=cell, seed=3, **CONFIG)
    assert np.array_equal(bank.learn_many(["s"] * 40, X, Y), model.learn_many(X, Y))
    assert np.array_equal(bank.predict_many(["s"] * 4, X[:4]), model.predict_many(X[:4]))
    assert np.array_equal(bank.forecast_many(["s"], 3, X[:1])[0], fed_back(model, X[0], 3))
    assert bank.n_updates == model.n_updates and bank.n_steps == model.n_steps


def fed_back(model, x0, horizon):
    """Forecasts that feed each step's outputs back as inputs, from pure
    sequential predictions of the inputs so far."""
    inputs = [np.asarray(x0, dtype=float)]
    for _ in range(horizon):
        outputs = model.predict_many(np.array(inputs))
        inputs.append(outputs[-1].astype(float))
    return outputs


@pytest.mark.parametrize("cell,layers", [("lstm", 1), ("gru", 2), ("rnn", 1)])
def test_interleaved_series_equal_the_swapping_reference(cell, layers):
    keys, X, Y = stream(90, ["a", 7, ("b", 1)])
    config = dict(CONFIG, cell=cell, num_layers=layers)
    bank = SharedWeightsBank(seed=1, capacity=1, **config)  # grows twice
    ref = SwappingReference(1, **config)
    out = np.concatenate([bank.learn_many(keys[i : i + 13], X[i : i + 13], Y[i : i + 13]) for i in range(0, 90, 13)])
    expected = np.array([ref.learn(k, x, y) for k, x, y in zip(keys, X, Y)])
    assert np.array_equal(out, expected)
    for key in ["a", 7, ("b", 1)]:
        mine, theirs = bank.model(key), ref.model_of(key)
        assert np.array_equal(mine._buf[: mine._lay[L.L_PERSIST]], theirs._buf[: theirs._lay[L.L_PERSIST]])
    assert bank.n_updates == ref.model.n_updates


def test_predict_and_forecast_are_per_series_and_pure():
    keys, X, Y = stream(60, ["a", "b"])
    bank = SharedWeightsBank(cell="lstm", seed=0, **CONFIG)
    bank.learn_many(keys, X, Y)
    before = pickle.dumps(bank)
    qk = ["b", "a", "b", "new", "a", "new"]
    P = bank.predict_many(qk, X[:6])
    for key in ["a", "b"]:
        rows = [i for i, k in enumerate(qk) if k == key]
        assert np.array_equal(P[rows], bank.model(key).predict_many(X[rows]))
    fresh = bank.model("a")
    fresh.reset_state()
    rows = [3, 5]
    assert np.array_equal(P[rows], fresh.predict_many(X[rows]))
    F = bank.forecast_many(["a", "b"], 4, X[:2])
    assert np.array_equal(F[1], fed_back(bank.model("b"), X[1], 4))
    assert pickle.dumps(bank) == before


def test_unseen_keys_in_one_batch_each_start_from_a_zero_state():
    """Each unseen key is its own series: its rows' predictions do not depend
    on the other unseen keys' rows before them in the batch."""
    keys, X, Y = stream(20, ["a", "b"])
    bank = SharedWeightsBank(cell="gru", seed=0, **CONFIG)
    bank.learn_many(keys, X, Y)
    qk = ["u1", "u2", "a", "u2", "u1", "u3"]
    P = bank.predict_many(qk, X[:6])
    fresh = bank.model("a")
    fresh.reset_state()
    for key in ("u1", "u2", "u3"):
        rows = [i for i, k in enumerate(qk) if k == key]
        assert np.array_equal(P[rows], bank.predict_many([key] * len(rows), X[rows]))
        assert np.array_equal(P[rows], fresh.predict_many(X[rows]))
    F = bank.forecast_many(["u1", "a", "u2"], 3, X[:3])
    assert np.array_equal(F[0], fed_back(fresh, X[0], 3))
    assert np.array_equal(F[2], fed_back(fresh, X[2], 3))
    assert sorted(bank.keys) == ["a", "b"]


def test_snapshot_restore_and_pickle_continue_exactly():
    keys, X, Y = stream(80, ["a", "b", "c"])
    whole = SharedWeightsBank(cell="gru", seed=2, **CONFIG)
    whole.learn_many(keys, X, Y)
    first = SharedWeightsBank(cell="gru", seed=2, **CONFIG)
    first.learn_many(keys[:37], X[:37], Y[:37])
    for resumed in (SharedWeightsBank.restore(first.snapshot()), pickle.loads(pickle.dumps(first))):
        out = resumed.learn_many(keys[37:], X[37:], Y[37:])
        assert np.array_equal(resumed.predict_many(["a", "b", "c"], X[:3]), whole.predict_many(["a", "b", "c"], X[:3]))
        assert resumed.n_updates == whole.n_updates
    with pytest.raises(ValueError, match="SharedWeightsBank snapshot"):
        SharedWeightsBank.restore({"meta": {"format_version": 99}})
    assert out.shape == (43, 2)


def test_eviction_forgets_a_series_and_reuses_its_slot():
    bank = SharedWeightsBank(cell="rnn", seed=0, max_idle=1, **CONFIG)
    X = np.ones((1, 2))
    bank.learn_many(["a"], X, X)
    bank.learn_many(["b"], X, X)
    assert bank.keys == ["b"]
    bank.learn_many(["c"], X, X)  # takes a's slot, from a zero state
    model = bank.model("c")
    assert model.n_steps == 1 and bank.keys == ["c"]
    assert bank.n_steps == 3  # evicted series' rows still count
    assert SharedWeightsBank.restore(bank.snapshot()).n_steps == 3


def test_bad_input_is_refused():
    bank = SharedWeightsBank(cell="lstm", seed=0, **CONFIG)
    with pytest.raises(ValueError, match="X must have shape"):
        bank.learn_many(["a"], np.ones((1, 3)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="max_idle"):
        SharedWeightsBank(max_idle=0)
    with pytest.raises(ValueError, match="horizon"):
        bank.forecast_many(["a"], 0, np.ones((1, 2)))
