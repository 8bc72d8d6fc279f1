"""Hypothesis properties of the kernels, with the strategies users get from
``streamrnn.testing.strategies``."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from streamrnn import OnlineRNN
from streamrnn.testing.strategies import network_configs, non_finite_sequences, parameter_dicts, sequences


def build(config, params=None, **kwargs):
    model = OnlineRNN(**config, k2=6, seed=0, **kwargs)
    if params is not None:
        model.load_state_dict(params)
    return model


@st.composite
def model_and_data(draw, finite=True, length=12):
    config = draw(network_configs())
    params = draw(parameter_dicts(config, bound=2.0))
    seq = sequences if finite else non_finite_sequences
    X = draw(seq(length, config["input_size"], bound=50.0))
    Y = draw(sequences(length, config["output_size"]))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    return config, params, X, Y, dtype


@given(model_and_data())
def test_hidden_states_are_bounded(case):
    config, params, X, Y, dtype = case
    model = build(config, params, dtype=dtype)
    for x, y in zip(X, Y):
        model.learn(x, y)
        h, c = model.hidden_state
        assert np.all(np.abs(h) <= 1.0)
        if config["cell"] == "lstm":
            assert np.all(np.abs(c) <= model.n_steps)  # |c_t| <= |c_{t-1}| + 1
        else:
            assert not np.any(c)


@given(model_and_data())
def test_inputs_are_never_mutated(case):
    config, params, X, Y, dtype = case
    model = build(config, params, dtype=dtype)
    X32 = X.astype(dtype)
    copies = X.copy(), Y.copy(), X32.copy()
    model.learn_many(X, Y)
    model.predict_many(X32)
    model.learn(X32[0], Y[0])
    model.predict(X32[1])
    model.gradient(X32[:4], Y[:4])
    model.load_state_dict(params)
    np.testing.assert_array_equal(X, copies[0])
    np.testing.assert_array_equal(Y, copies[1])
    np.testing.assert_array_equal(X32, copies[2])


@given(model_and_data(finite=False), st.booleans())
def test_non_finite_values_never_reach_the_weights(case, bad_target):
    config, params, X, Y, dtype = case
    model = build(config, params, dtype=dtype)
    if bad_target:  # move the non-finite values from the inputs to the targets
        Y = np.where(np.all(np.isfinite(X), axis=1, keepdims=True), Y, np.nan)
        X = np.nan_to_num(X, nan=0.0, posinf=1.0, neginf=-1.0)
    bad_rows = ~np.all(np.isfinite(X), axis=1)
    out = model.learn_many(X, Y)
    assert np.all(np.isnan(out[bad_rows]))
    assert all(np.all(np.isfinite(v)) for v in model.state_dict().values())
    assert all(np.all(np.isfinite(s)) for s in model.hidden_state)
    assert model.n_steps == len(X) - bad_rows.sum()
    assert model.n_skipped >= 1
    assert model.n_updates + model.n_skipped >= len(X)


@given(
    st.sampled_from(["sgd", "rmsprop", "adam", "adamw"]),
    st.sampled_from(["rnn", "gru", "lstm"]),
    st.integers(0, 2**16),
)
def test_each_optimizer_lowers_the_loss(optimizer, cell, seed):
    """Repeated updates on one fixed window lower its loss."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(8, 2))
    Y = np.tanh(X[:, :1] - 0.5 * X[:, 1:])
    lr = {"sgd": 0.1, "rmsprop": 0.003, "adam": 0.01, "adamw": 0.01}[optimizer]
    model = OnlineRNN(cell=cell, input_size=2, hidden_size=8, k1=8, k2=8, optimizer=optimizer, lr=lr,
                      dtype="float64", seed=seed)
    first, _ = model.gradient(X, Y, loss_steps=8)
    for _ in range(50):
        model.learn_many(X, Y)
        model.reset_state()
    last, _ = model.gradient(X, Y, loss_steps=8)
    assert model.n_updates == 50
    assert last < 0.7 * first


@given(model_and_data(length=6), st.integers(1, 6))
def test_any_valid_network_matches_the_reference(case, loss_steps):
    """The kernels against ``streamrnn.testing``'s reference for any drawn
    configuration, parameters and sequence (float64, exact activations)."""
    from streamrnn.testing import assert_gradients_close, network_forward, sequence_gradient

    config, params, X, Y, _ = case
    X = X / 50.0  # keep the drawn inputs where tanh is not flat
    model = build(config, params, dtype="float64", approx_activations=False)
    expected, _, _, _ = network_forward(config["cell"], params, X)
    np.testing.assert_allclose(model.predict_many(X), expected, rtol=1e-9, atol=1e-12)
    loss, grads = model.gradient(X, Y, loss_steps=loss_steps)
    ref_loss, ref_grads = sequence_gradient(config["cell"], params, X, Y, loss_steps=loss_steps)
    assert abs(loss - ref_loss) <= 1e-9 * (1 + abs(ref_loss))
    assert_gradients_close(grads, ref_grads, atol=1e-11, rtol=1e-8)
