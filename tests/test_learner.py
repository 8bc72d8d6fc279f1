"""OnlineRNN behaviour: equivalences, determinism, weights in and out, bad input."""

import pickle

import numpy as np
import pytest
from conftest import CELLS

from streamrnn import OnlineRNN
from streamrnn.kernels.layout import L_M, L_NPARAM


def stream(rng, n=300, I=2, O=1):
    return rng.normal(size=(n, I)), rng.normal(size=(n, O))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k1,k2,recompute", [(1, 16, False), (1, 8, True), (16, 16, False), (3, 5, False)])
def test_learn_many_equals_learn_in_a_loop_bit_for_bit(cell, dtype, k1, k2, recompute, rng):
    X, Y = stream(rng)
    a = OnlineRNN(cell=cell, input_size=2, num_layers=2, hidden_size=8, k1=k1, k2=k2, recompute=recompute,
                  dtype=dtype, seed=1)
    b = OnlineRNN(cell=cell, input_size=2, num_layers=2, hidden_size=8, k1=k1, k2=k2, recompute=recompute,
                  dtype=dtype, seed=1)
    many = a.learn_many(X, Y)
    one = np.array([b.learn(x, y) for x, y in zip(X, Y)])
    np.testing.assert_array_equal(many, one)
    np.testing.assert_array_equal(a._buf, b._buf)
    np.testing.assert_array_equal(a._ctr, b._ctr)


@pytest.mark.parametrize("cell", CELLS)
def test_same_seed_gives_bit_identical_weights(cell, rng):
    X, Y = stream(rng, n=500)
    runs = []
    for seed in (7, 7, 8):
        model = OnlineRNN(cell=cell, input_size=2, seed=seed)
        model.learn_many(X, Y)
        runs.append(model.state_dict())
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name])
    assert any(not np.array_equal(runs[0][n], runs[2][n]) for n in runs[0])


def test_seed_gives_the_same_initial_weights_in_both_dtypes():
    a = OnlineRNN(cell="gru", dtype="float32", seed=3).state_dict()
    b = OnlineRNN(cell="gru", dtype="float64", seed=3).state_dict()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name].astype(np.float32))


def test_predict_changes_no_state(rng):
    model = OnlineRNN(cell="lstm", input_size=2, seed=0)
    model.learn_many(*stream(rng, n=20))
    buf, ctr = model._buf.copy(), model._ctr.copy()
    X = rng.normal(size=(5, 2))
    first = model.predict_many(X)
    model.predict(X[0])
    model.gradient(X, rng.normal(size=(5, 1)))
    np.testing.assert_array_equal(model.predict_many(X), first)
    params = slice(0, int(model._lay[L_NPARAM]))  # parameters; the gradient and scratch regions may change
    np.testing.assert_array_equal(model._buf[params], buf[params])
    np.testing.assert_array_equal(model.hidden_state[0], OnlineRNN.hidden_state.fget(model)[0])
    np.testing.assert_array_equal(model._ctr, ctr)


def test_predict_equals_the_prediction_learn_returns(rng):
    model = OnlineRNN(cell="lstm", input_size=2, seed=0)
    X, Y = stream(rng, n=50)
    for x, y in zip(X, Y):
        p = model.predict(x)
        np.testing.assert_array_equal(model.learn(x, y), p)


@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_round_trip(cell, rng):
    a = OnlineRNN(cell=cell, input_size=3, num_layers=2, output_size=2, seed=1)
    a.learn_many(*stream(rng, n=30, I=3, O=2))
    b = OnlineRNN(cell=cell, input_size=3, num_layers=2, output_size=2, seed=99)
    b.load_state_dict(a.state_dict())
    a.reset_state()
    X = rng.normal(size=(6, 3))
    np.testing.assert_array_equal(a.predict_many(X), b.predict_many(X))
    sd = a.state_dict()
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    assert list(sd) == a.parameter_names
    assert sd["weight_ih_l0"].shape == (G * 32, 3)
    assert sd["weight_hh_l1"].shape == (G * 32, 32)
    assert sd["head.weight"].shape == (2, 32)
    assert a.n_params == sum(v.size for v in sd.values())
    # the copies are not views of the model
    sd["head.bias"][:] = 123.0
    assert not np.any(a.state_dict()["head.bias"] == 123.0)


def test_load_state_dict_rejects_mismatches():
    model = OnlineRNN(cell="gru", hidden_size=4)
    sd = model.state_dict()
    with pytest.raises(ValueError, match="missing"):
        model.load_state_dict({k: v for k, v in sd.items() if k != "head.bias"})
    with pytest.raises(ValueError, match="weight_hh_l0 must have shape"):
        model.load_state_dict({**sd, "weight_hh_l0": np.zeros((4, 4))})
    with pytest.raises(ValueError, match="finite"):
        model.load_state_dict({**sd, "head.bias": np.array([np.nan])})
    assert np.array_equal(model.state_dict()["head.bias"], sd["head.bias"])  # nothing half-loaded


def test_pickle_round_trip_resumes_bit_identically(rng):
    X, Y = stream(rng, n=100)
    a = OnlineRNN(cell="lstm", input_size=2, seed=5)
    a.learn_many(X[:50], Y[:50])
    b = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a.learn_many(X[50:], Y[50:]), b.learn_many(X[50:], Y[50:]))
    np.testing.assert_array_equal(a._buf, b._buf)


def test_counters_and_reset(rng):
    model = OnlineRNN(cell="rnn", k1=4, k2=8, seed=0)
    X, Y = rng.normal(size=(10, 1)), rng.normal(size=(10, 1))
    model.learn_many(X, Y)
    assert (model.n_steps, model.n_updates, model.n_skipped, model.n_resets) == (10, 2, 0, 0)
    assert np.any(model.hidden_state[0] != 0)
    model.reset_state()
    assert not np.any(model.hidden_state[0])
    model.learn_many(X[:3], Y[:3])
    assert model.n_updates == 2  # the schedule restarted with the window


def test_non_finite_input_target_and_state_policy(rng):
    model = OnlineRNN(cell="lstm", k1=1, k2=4, seed=0)
    model.learn_many(*stream(rng, n=10, I=1))
    before = model.state_dict()
    h_before = model.hidden_state[0]
    out = model.learn([np.nan], [1.0])
    assert np.isnan(out).all()
    assert np.array_equal(model.hidden_state[0], h_before)  # the state did not advance
    model.learn([0.5], [np.inf])  # the state advances, the update is skipped
    after = model.state_dict()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
    assert (model.n_steps, model.n_updates, model.n_skipped) == (11, 10, 2)
    assert np.isnan(model.predict([np.inf])).all()
    # finite inputs and weights whose pre-activation overflows to inf - inf:
    # the state is reset, nothing is learned from that step
    big = OnlineRNN(cell="rnn", hidden_size=1, dtype="float32", seed=0, optimizer="sgd", lr=1e-30)
    big.load_state_dict({"weight_ih_l0": [[1e30]], "weight_hh_l0": [[3e38]], "bias_ih_l0": [0.0],
                         "bias_hh_l0": [-3e38], "head.weight": [[1.0]], "head.bias": [0.0]})
    big.learn([1.0], [0.0])  # h = tanh(1e30 - 3e38) = -1
    assert big.hidden_state[0][0, 0] < -0.99 and big.n_resets == 0
    big.learn([1e30], [0.0])  # a_x = +inf, a_h = -3e38 - 3e38 = -inf
    assert big.n_resets == 1 and big.n_updates == 1
    assert big.hidden_state[0][0, 0] == 0.0
    assert all(np.all(np.isfinite(v)) for v in big.state_dict().values())
    assert np.all(np.isfinite(big.predict([1.0])))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"cell": "transformer"}, "cell must be one of"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer"),
        ({"num_layers": 1.5}, "num_layers must be a positive integer"),
        ({"input_size": True}, "input_size must be a positive integer"),
        ({"k2": -1}, "k2 must be a positive integer"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of"),
        ({"lr": 0.0}, "lr must be >"),
        ({"lr": float("nan")}, "lr must be a finite real number"),
        ({"lr": 10**400}, "lr must be a finite real number"),  # an int beyond the floats
        ({"clip_norm": -1.0}, "clip_norm must be >"),
        ({"loss": "l1"}, "loss must be one of"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"device": "tpu"}, "device must be"),
        ({"seed": "abc"}, "seed must be a non-negative integer"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"momentum": 1.0}, "momentum must be <"),
        ({"betas": (0.9,)}, "betas must be a pair"),
        ({"huber_delta": 0}, "huber_delta must be >"),
        ({"recompute": 1}, "recompute must be a bool"),
        # accepted as floats, but not as the float32 the model stores (betas of 1: Adam's bias
        # correction divides by 0; eps of 0: 0 / 0 for a zero gradient; every weight NaN)
        ({"betas": (0.9, 0.99999999)}, r"betas\[1\] must be < 1.0, got 1.0 once stored in float32"),
        ({"betas": (0.99999999, 0.999)}, r"betas\[0\] must be < 1.0, got 1.0 once stored in float32"),
        ({"eps": 1e-46}, "eps must be > 0.0, got 0.0 once stored in float32"),
        ({"lr": 1e39}, "lr must be a finite real number, got inf once stored in float32"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OnlineRNN(**kwargs)


def test_bad_inputs_raise_value_error():
    model = OnlineRNN(input_size=2, output_size=1)
    with pytest.raises(ValueError, match=r"x must have shape \(2,\)"):
        model.predict([1.0])
    with pytest.raises(ValueError, match=r"x must have shape \(2,\)"):
        model.learn(np.zeros((2, 1)), 1.0)
    with pytest.raises(ValueError, match="x must be numeric"):
        model.learn(["a", "b"], 1.0)
    with pytest.raises(ValueError, match="y must be numeric"):
        model.learn([1.0, 2.0], 1 + 2j)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 2\)"):
        model.learn_many(np.zeros((3, 3)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="same number of rows"):
        model.learn_many(np.zeros((3, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="between 1 and k2"):
        model.gradient(np.zeros((17, 2)), np.zeros((17, 1)))
    X = np.zeros((4, 2))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="X row 2 is not finite"):
        model.gradient(X, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="Y row 0 is not finite"), np.errstate(over="ignore"):
        model.gradient(np.zeros((4, 2)), np.full((4, 1), 1e39))  # beyond float32
    assert model.n_steps == 0


def test_hyperparameters_beyond_float32_serve_float64_models():
    model = OnlineRNN(dtype="float64", betas=(0.9, 0.99999999), eps=1e-46, k1=1, seed=0)
    for t in range(5):
        model.learn([np.sin(t)], [np.cos(t)])
    assert all(np.isfinite(v).all() for v in model.state_dict().values())


def test_accepts_scalars_lists_and_other_dtypes():
    model = OnlineRNN(seed=0)
    a = model.predict(0.5)
    assert a.shape == (1,) and a.dtype == np.float32
    np.testing.assert_array_equal(model.predict([0.5]), a)
    np.testing.assert_array_equal(model.predict(np.array([0.5], dtype=np.float64)), a)
    np.testing.assert_array_equal(model.predict_many([0.5, 0.5])[0], a)
    model.learn(1, 2)
    assert model.n_steps == 1


@pytest.mark.parametrize("cell", CELLS)
def test_resize_keeps_what_was_learned(cell, rng):
    model = OnlineRNN(cell=cell, input_size=2, output_size=2, num_layers=2, seed=0)
    X, Y = stream(rng, n=40, I=2, O=2)
    model.learn_many(X, Y)
    before, h_before = model.state_dict(), model.hidden_state
    preds = model.predict_many(X[:5])
    m_before = model._region_views(L_M)["weight_hh_l0"].copy()  # Adam's first moment
    model.resize(input_size=4, output_size=3)
    assert (model.input_size, model.output_size, model.n_steps, model.n_updates) == (4, 3, 40, 40)
    after = model.state_dict()
    assert after["weight_ih_l0"].shape[1] == 4 and after["head.weight"].shape[0] == 3
    np.testing.assert_array_equal(after["weight_ih_l0"][:, :2], before["weight_ih_l0"])
    assert not after["weight_ih_l0"][:, 2:].any() and not after["head.bias"][2:].any()
    np.testing.assert_array_equal(model.hidden_state[0], h_before[0])
    # the existing outputs are unchanged while the new inputs are zero, up to
    # float32 rounding: with fast math the compiler may group the sum over a
    # wider input matrix differently (it does under NUMBA_BOUNDSCHECK=1)
    wide = np.hstack([X[:5], np.zeros((5, 2))])
    np.testing.assert_allclose(model.predict_many(wide)[:, :2], preds, rtol=1e-6, atol=1e-7)
    assert m_before.any()
    np.testing.assert_array_equal(model._region_views(L_M)["weight_hh_l0"], m_before)
    model.learn_many(np.hstack([X, X]), np.hstack([Y, Y[:, :1]]))
    assert model.n_updates == 80
    with pytest.raises(ValueError, match="only grows"):
        model.resize(input_size=3)


def test_predict_each_is_predict_row_by_row(rng):
    model = OnlineRNN(cell="gru", input_size=2, seed=0)
    model.learn_many(*stream(rng, n=20))
    X = rng.normal(size=(5, 2))
    np.testing.assert_array_equal(model.predict_each(X), np.array([model.predict(x) for x in X]))


def test_forecast_feeds_predictions_back(rng):
    model = OnlineRNN(cell="lstm", input_size=3, seed=0, dtype="float64")
    model.learn_many(*stream(rng, n=30, I=3))
    buf = model._buf.copy()
    U = rng.normal(size=(6, 3))
    out = model.forecast(U, feedback=[(0, 1), (2, 4)])
    # by hand: rebuild the inputs row by row and run them from the carried state
    inputs, expected = U.copy(), np.empty(6)
    for k in range(6):
        if k >= 1:
            inputs[k, 0] = expected[k - 1]
        if k >= 4:
            inputs[k, 2] = expected[k - 4]
        expected[k] = model.predict_many(inputs[: k + 1])[-1, 0]
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-12)
    params = slice(0, int(model._lay[L_NPARAM]))
    np.testing.assert_array_equal(model._buf[params], buf[params])
    with pytest.raises(ValueError, match="feedback must be"):
        model.forecast(U, feedback=[(3, 1)])


def test_a_shallow_copy_is_an_independent_model():
    """copy.copy copied the weights and window but shared the counters that
    index them: the original then continued as if it had learned the copy's
    samples."""
    import copy

    X = np.random.default_rng(0).normal(size=(30, 1))
    a = OnlineRNN(seed=0, k1=4, hidden_size=4)
    a.learn_many(X[:10], X[1:11])
    b, deep = copy.copy(a), copy.deepcopy(a)
    b.learn_many(X[10:20], X[11:21])
    assert (a.n_steps, b.n_steps) == (10, 20)
    np.testing.assert_array_equal(a.learn_many(X[20:25], X[21:26]), deep.learn_many(X[20:25], X[21:26]))


@pytest.mark.parametrize("feedback", [[(0.5, 1)], [(0, 1.9)], [(True, 1)], [(0, 10**20)], [("a", 1)],
                                      [(0, 1, 2)], [(1, 1)], [(0, 0)], 3])
def test_bad_feedback_pairs_are_refused_naming_feedback(feedback):
    model = OnlineRNN(seed=0, hidden_size=3)
    with pytest.raises(ValueError, match="feedback must be"):
        model.forecast(np.zeros((3, 1)), feedback)


def test_parameters_beyond_the_models_dtype_are_refused():
    """1e39 is finite in float64 but infinite in float32: the model predicted
    inf and never learned again."""
    model = OnlineRNN(seed=0, hidden_size=3)
    before = model.state_dict()
    bad = dict(before, **{"head.bias": np.array([1e39])})
    with pytest.raises(ValueError, match="head.bias holds values beyond the range of float32"):
        model.load_state_dict(bad)
    for name, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[name])
    OnlineRNN(seed=0, hidden_size=3, dtype="float64").load_state_dict(
        {k: v.astype(np.float64) for k, v in bad.items()})  # fine in float64


def test_masked_entries_are_missing_values():
    """np.asarray keeps the values under a mask: they were learned."""
    X = np.ma.masked_array(np.arange(6.0).reshape(6, 1), mask=[[0], [1], [0], [0], [1], [0]])
    Y = np.ones((6, 1))
    model, reference = OnlineRNN(seed=0, hidden_size=3), OnlineRNN(seed=0, hidden_size=3)
    out = model.learn_many(X, Y)
    expected = reference.learn_many(np.where(X.mask, np.nan, X.data), Y)
    np.testing.assert_array_equal(out, expected)
    assert model.n_skipped == 2 and model.n_steps == 4
    np.testing.assert_array_equal(model.predict_many(np.ma.masked_array(np.ones((2, 1)))),
                                  reference.predict_many(np.ones((2, 1))))
    ints = np.ma.masked_array(np.arange(3).reshape(3, 1), mask=[[1], [0], [0]])
    assert np.isnan(model.predict_many(ints)[0]).all()
