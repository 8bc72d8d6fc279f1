"""The River estimators' per-row path (dict to network inputs, scaling,
revealed targets, the network's step and the forecast, in one kernel call)
gives what it gave before it was fused, bit for bit: on streams with
features appearing mid-stream, missing, None or NaN, in any key order, with
unknown features at prediction, dates, glitches, classes that appear,
entities and mini-batches (:mod:`river_streams`)."""

import copy
import datetime as dt
import decimal
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from river_streams import FIXTURE, environment, run, scenarios

import streamrnn
from streamrnn import GRUClassifier, GRURegressor, LSTMClassifier, LSTMRegressor, RNNClassifier, RNNRegressor

CLASSIFIERS = [RNNClassifier, GRUClassifier, LSTMClassifier]
ESTIMATORS = [RNNRegressor, GRURegressor, LSTMRegressor, *CLASSIFIERS]

REFERENCE = np.load(FIXTURE)
SCENARIOS = scenarios()


SAME_ENVIRONMENT = str(REFERENCE["environment"]) == environment()


@pytest.mark.skipif(not SAME_ENVIRONMENT, reason=f"the reference figures were computed with "
                    f"{REFERENCE['environment']}, here {environment()}: their last bits differ on other machine code "
                    "(the one-call path is compared with the row-by-row path below instead)")
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_prediction_and_the_final_state_as_before(name):
    make, rows, kind = SCENARIOS[name]
    figures = run(make, rows, kind)
    for part, value in figures.items():
        expected = REFERENCE[f"{name}/{part}"]
        assert value.shape == expected.shape, part
        assert value.tobytes() == expected.tobytes(), f"{name}: {part} differs at " \
            f"{np.flatnonzero(value.ravel() != expected.ravel())[:5]}"


# ------------------------------------------- the one-call path vs row by row


def row_by_row(make):
    def made():
        model = make()
        model._one_call = False
        return model
    return made


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_one_call_path_equals_the_row_by_row_path_bit_for_bit(name):
    """The same scenario taken row by row (the estimators' path before the
    one-call path, still taken by rows it does not take) gives every
    prediction and the final state bit for bit."""
    make, rows, kind = SCENARIOS[name]
    fast, slow = run(make, rows, kind), run(row_by_row(make), rows, kind)
    for part in fast:
        assert fast[part].tobytes() == slow[part].tobytes(), part


def trained(cls, n=30, **kwargs):
    model = cls(hidden_size=4, k2=4, seed=0, **kwargs)
    classifier = cls in CLASSIFIERS
    for t in range(n):
        x = {"a": float(t % 7), "b": float(np.sin(t))}
        model.learn_one(x, "up" if t % 3 else "down") if classifier else model.learn_one(x, float(t % 5))
    assert model._path is not None  # the one-call path is made
    return model


def predict(model, x):
    return model.predict_proba_one(x) if hasattr(model, "predict_proba_one") else model.predict_one(x)


def learn(model, x, y=None):
    if y is None:
        y = "up" if hasattr(model, "predict_proba_one") else 1.0
    model.learn_one(x, y)


BAD_VALUES = [
    (math.inf, "is infinite"), (-math.inf, "is infinite"), (10**400, "is infinite"), (np.float32("inf"), "is infinite"),
    ("1.5", "must be a real number"), (decimal.Decimal("1.5"), "must be a real number"),
    (np.array(1.5), "must be a real number"), (1 + 2j, "must be a real number"), ([1.0], "must be a real"),
]


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("value,message", BAD_VALUES)
def test_bad_feature_values_raise_as_before_and_change_nothing(cls, value, message):
    model = trained(cls)
    before = pickle.dumps(model)
    for call in (predict, learn):
        with pytest.raises(ValueError, match=f"feature 'b' {message}"):
            call(model, {"a": 1.0, "b": value})
        assert pickle.dumps(model) == before
    # the path still takes rows afterwards, as the row-by-row path does
    twin = trained(cls)
    twin._one_call = False
    twin._path = None
    for m in (model, twin):
        learn(m, {"a": 2.0, "b": 0.5})
    assert predict(model, {"a": 1.0, "b": 0.25}) == predict(twin, {"a": 1.0, "b": 0.25})


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_nan_like_names_bad_targets_and_non_dicts_raise_on_the_one_call_path(cls):
    model = trained(cls)
    before = pickle.dumps(model)
    for name in (math.nan, ("a", math.nan)):
        with pytest.raises(ValueError, match="is or holds NaN"):
            predict(model, {"a": 1.0, name: 1.0})
        with pytest.raises(ValueError, match="is or holds NaN"):
            learn(model, {"a": 1.0, name: 1.0})
    with pytest.raises(ValueError, match="x must be a dict"):
        predict(model, [1.0, 2.0])
    bad_targets = [None, math.nan, ["up"]] if cls in CLASSIFIERS else [math.inf, math.nan, True, "1.0", None]
    for y in bad_targets:
        with pytest.raises(ValueError, match="y must be"):
            model.learn_one({"a": 1.0}, y)
    assert pickle.dumps(model) == before


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_values_of_other_types_none_and_new_features_take_the_row_by_row_path_alike(cls):
    """None, numpy scalars, ints, bools, an unseen feature (registered),
    a date, another key order: the same as row by row, bit for bit."""
    fast, slow = trained(cls), trained(cls)
    slow._one_call, slow._path = False, None
    rows = [{"a": None, "b": 1.0}, {"b": np.float64(2.0), "a": np.int64(3)}, {"a": True, "b": 2},
            {"a": 1.0, "b": 0.5, "new": 4.0}, {"new": 1.0, "a": 2.0}, {"a": 1.0, "when": dt.datetime(2024, 5, 1, 13)},
            {"a": np.float32(0.1), "b": -0.0}, {}]
    for x in rows:
        for i, y in enumerate(["up", "down"] if cls in CLASSIFIERS else [0.5, 2]):
            assert predict(fast, x) == predict(slow, x)
            fast.learn_one(dict(x), y)
            slow.learn_one(dict(x), y)
    assert pickle.dumps(fast._net._buf) == pickle.dumps(slow._net._buf)
    assert fast._features.names == slow._features.names


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_the_path_is_not_state_and_a_saved_model_goes_on_as_the_unsaved_one(cls, tmp_path):
    model = trained(cls)
    assert "_path" not in model.__getstate__()
    fresh = trained(cls)
    assert pickle.dumps(fresh) == pickle.dumps(model)
    predict(model, {"a": 1.0, "b": 2.0})
    assert pickle.dumps(fresh) == pickle.dumps(model)  # a prediction changes nothing
    streamrnn.save(model, tmp_path / "m.npz")
    loaded = streamrnn.load(tmp_path / "m.npz")
    copied = copy.deepcopy(model)
    for m in (model, loaded, copied):
        for t in range(10):
            learn(m, {"a": float(t), "b": 1.0 / (t + 1)}, ("up" if t % 2 else "down") if cls in CLASSIFIERS else t)
    assert predict(loaded, {"a": 0.5, "b": 0.5}) == predict(model, {"a": 0.5, "b": 0.5}) \
        == predict(copied, {"a": 0.5, "b": 0.5})
    assert pickle.dumps(loaded._net._buf) == pickle.dumps(model._net._buf)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_learn_many_between_rows_leaves_the_one_call_path_up_to_date(cls):
    """Rows learned by ``learn_many`` (row by row) move on what the one-call
    path's predictions read (the revealed targets, the forecast's terms)."""
    fast, slow = trained(cls), trained(cls)
    slow._one_call, slow._path = False, None
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, -1.0, 1.0]})
    y = pd.Series(["down", "up", "down"] if cls in CLASSIFIERS else [3.0, 1.0, 2.0])
    for m in (fast, slow):
        predict(m, {"a": 1.0, "b": 0.0})
        m.learn_many(X, y)
    assert predict(fast, {"a": 1.0, "b": 0.0}) == predict(slow, {"a": 1.0, "b": 0.0})


@pytest.mark.parametrize("cls", [LSTMRegressor, LSTMClassifier])
def test_two_threads_at_once_raise_on_the_one_call_path(cls):
    from test_threads import Stall, while_inside

    model = trained(cls)
    stall = Stall()
    x = {stall: 1.0, "a": 1.0}
    error = while_inside(stall, lambda: learn(model, x), lambda: predict(model, {"a": 1.0, "b": 1.0}))
    assert f"{cls.__name__}.predict_{'proba_' if cls is LSTMClassifier else ''}one" in str(error)
    stall = Stall()
    x = {"a": 2.0, stall: 1.0}
    error = while_inside(stall, lambda: predict(model, x), lambda: learn(model, {"a": 1.0, "b": 1.0}))
    assert f"{cls.__name__}.learn_one" in str(error)


@pytest.mark.parametrize("n_classes", [1, 2, 3, 7, 8, 12])
def test_probabilities_of_any_number_of_classes_as_row_by_row(n_classes):
    """The softmax after the one-call kernel: NumPy's exponential, then the
    sum in NumPy's order (in order below 8 values, pairwise from 8 on)."""
    rng = np.random.default_rng(n_classes)
    fast = LSTMClassifier(hidden_size=6, k2=4, seed=0)
    slow = LSTMClassifier(hidden_size=6, k2=4, seed=0)
    slow._one_call = False
    for t in range(120):
        x = {"a": float(rng.normal()), "b": float(rng.normal(3.0, 5.0))}
        y = int(rng.integers(0, n_classes))
        p, q = fast.predict_proba_one(x), slow.predict_proba_one(x)
        assert list(p) == list(q) and all(p[c] == q[c] for c in p)
        fast.learn_one(x, y)
        slow.learn_one(x, y)
    assert len(fast._classes) == n_classes


# ------------------------------------- predictions that read the dict itself


def key(name: str) -> str:
    """``name`` as a new string object (equal, not identical: as keys built
    row by row are)."""
    return "".join(list(name))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_predictions_reading_the_dict_equal_the_row_by_row_path_whatever_the_keys_and_types(cls):
    """Rows whose keys are the plan's key objects and whose values are
    floats are read in the kernel; equal keys that are other objects,
    another order, ints, bools, NumPy scalars, NaN and -0.0, a key more or
    less, a dict subclass: all give the row-by-row path's predictions, bit
    for bit, before and after each other."""
    fast, slow = trained(cls), trained(cls)
    slow._one_call, slow._path = False, None

    class Row(dict):
        pass

    rows = [{"a": 1.0, "b": 2.0}, {"a": 1.5, "b": -0.0}, {key("a"): 2.0, key("b"): 0.5}, {"b": 3.0, "a": 1.0},
            {"a": 1.0, "b": 2.0}, {"a": 1, "b": 2.0}, {"a": True, "b": 2.0}, {"a": np.float64(0.5), "b": 2.0},
            {"a": math.nan, "b": 2.0}, {"a": 1.0}, {"a": 1.0, "b": 2.0, "c": 3.0}, Row(a=1.0, b=2.0), {},
            {"a": 5e-324, "b": -1e300}]
    for _ in range(2):
        for x in rows:
            p, q = predict(fast, x), predict(slow, x)
            assert p == q or (p != p and q != q), x
            if isinstance(p, dict):
                assert list(p) == list(q) and all(p[c] == q[c] for c in p)
    assert fast._path.read is not None  # (the dict is read in the kernel)
    learn(fast, {"a": 1.0, "b": 2.0})
    learn(slow, {"a": 1.0, "b": 2.0})
    assert predict(fast, {"a": 0.25, "b": 2.0}) == predict(slow, {"a": 0.25, "b": 2.0})


@pytest.mark.parametrize("cls", [LSTMRegressor, LSTMClassifier])
def test_predictions_follow_statistics_and_weights_replaced_behind_the_path(cls):
    """The kernel that reads the dict is bound to the statistics and the
    network's buffer: where either is replaced (an edited state), the
    prediction reads the new ones, as row by row."""
    fast, slow = trained(cls), trained(cls)
    slow._one_call, slow._path = False, None
    x = {"a": 1.0, "b": 2.0}
    predict(fast, x)
    for m in (fast, slow):
        m._x_scaler.stats = m._x_scaler.stats * 2.0
        m._net._buf = m._net._buf * np.float32(0.5)
    assert predict(fast, x) == predict(slow, x)
    assert fast._path.stats is fast._x_scaler.stats and fast._path.buf is fast._net._buf


def test_the_kernel_reads_dicts_of_numbers_as_python_does():
    """Keys by identity and in order; values that are floats (any bits:
    NaN, infinities, -0.0, subnormals), NumPy float64s, bools, ints (as
    ``float`` rounds them) and None (NaN) read as the row-by-row path reads
    them; any other value, key, order or size refused."""
    from streamrnn.features import _value
    from streamrnn.kernels.pyobjects import OBJECTS, layout_holds, read_floats

    assert layout_holds()
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(9)]
    specials = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308, None, True, False, 0, 7,
                -(2**63) - 1, 2**53 + 1, 3**200, np.float64(0.3), np.float64("nan")]
    refused = [-1, 10**400, np.float32(1.0), np.int64(2), "1.0", decimal.Decimal("1.5"), np.array(1.5), 1 + 2j, [1.0]]
    for trial in range(300):
        n = int(rng.integers(0, 9))
        keys = names[:n]
        values = [float(v) for v in rng.normal(0, 10.0 ** rng.integers(-300, 300), n)]
        for i in range(n):
            if rng.random() < 0.3:
                values[i] = specials[int(rng.integers(len(specials)))]
        x = dict(zip(keys, values))
        plan = np.array([*(id(k) for k in keys), 0, 0, 0, *OBJECTS], dtype=np.int64)
        out = np.full(n + 2, 7.0)

        def reads(d):
            return read_floats(id(d), plan, 0, n, n, n + 3, out, 1)

        assert reads(x)
        expected = [math.nan if v is None else float(v) for v in values]
        assert out[1 : n + 1].tobytes() == np.array(expected, dtype=np.float64).tobytes()
        finite = [i for i, v in enumerate(expected) if not math.isinf(v)]  # (the row-by-row path refuses the others)
        assert np.array([expected[i] for i in finite]).tobytes() == \
            np.array([_value("f", values[i]) for i in finite]).tobytes()
        if n:
            j = int(rng.integers(n))
            for other in refused:
                assert not reads({**x, keys[j]: other})
            assert not reads({key(k): v for k, v in x.items()})
            assert not reads(dict(list(x.items())[:-1]))
            if n > 1:
                assert not reads(dict(reversed(x.items())))
        assert not reads({**x, "more": 1.0})


def test_numpys_exponential_from_the_kernel_gives_numpys_bits():
    """The softmax's exponential is NumPy's own loop: the bits of
    ``np.exp``, which differ from the C library's (``math.exp``) on a few
    percent of these arguments where NumPy has a vectorised exponential for
    the CPU (AVX-512); elsewhere NumPy's loop is the C library's."""
    from streamrnn.kernels.numpy_exp import exp_into, exp_loop_checked

    loop, data = exp_loop_checked()
    assert loop != 0
    x = np.random.default_rng(1).uniform(-50.0, 0.0, 20000)
    got = x.copy()
    exp_into(loop, data, got, len(got))
    assert got.tobytes() == np.exp(x).tobytes()
    numpy_differs = sum(math.exp(v) != e for v, e in zip(x.tolist(), np.exp(x).tolist()))
    if numpy_differs:  # (where NumPy's loop is its own, the test tells the two apart)
        assert numpy_differs > 100
        assert sum(math.exp(v) != e for v, e in zip(x.tolist(), got.tolist())) == numpy_differs
    part = x.copy()
    exp_into(loop, data, part, 3)
    assert part[:3].tobytes() == np.exp(x[:3]).tobytes() and part[3:].tobytes() == x[3:].tobytes()
