"""The kernels against the float64 NumPy reference of ``streamrnn.testing``."""

import numpy as np
import pytest
from conftest import CELLS, reference_model

from streamrnn import OnlineRNN
from streamrnn.testing import (
    ReferenceOnlineRNN,
    ReferenceOptimizer,
    assert_gradients_close,
    finite_difference_gradient,
    network_forward,
    sequence_gradient,
    sequence_loss,
)

SHAPES = [(1, 1, 1), (3, 1, 2), (1, 2, 1), (2, 3, 2)]  # (input_size, num_layers, output_size)


def warm_state(model, rng, steps=7):
    """Advance the carried state (and weights) so tests start away from zero."""
    I, O = model.input_size, model.output_size
    model.learn_many(rng.normal(size=(steps, I)), rng.normal(size=(steps, O)))


def carried_state(model):
    h, c = model.hidden_state
    return h.astype(np.float64), c.astype(np.float64)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("I,L,O", SHAPES)
def test_forward_matches_reference(cell, I, L, O, rng):
    model = reference_model(cell, input_size=I, hidden_size=5, num_layers=L, output_size=O, seed=3)
    warm_state(model, rng)
    X = rng.normal(size=(9, I))
    h0, c0 = carried_state(model)
    expected, h, c, _ = network_forward(cell, model.state_dict(), X, h0, c0)
    np.testing.assert_allclose(model.predict_many(X), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.predict(X[0]), expected[0], rtol=1e-10, atol=1e-12)
    # learning returns the prediction made before its update
    np.testing.assert_allclose(model.learn(X[0], np.zeros(O)), expected[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("I,L,O", SHAPES)
def test_window_gradient_matches_reference(cell, I, L, O, rng):
    model = reference_model(cell, input_size=I, hidden_size=4, num_layers=L, output_size=O, k1=3, k2=6, seed=5)
    warm_state(model, rng)
    X, Y = rng.normal(size=(6, I)), rng.normal(size=(6, O))
    h0, c0 = carried_state(model)
    for loss_steps in (1, 3, 6):
        loss, grads = model.gradient(X, Y, loss_steps=loss_steps)
        ref_loss, ref_grads = sequence_gradient(cell, model.state_dict(), X, Y, h0, c0, loss_steps)
        assert loss == pytest.approx(ref_loss, rel=1e-10)
        assert_gradients_close(grads, ref_grads, atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss", ["squared", "huber", "cross_entropy"])
def test_gradients_match_finite_differences(cell, loss, rng):
    model = reference_model(cell, input_size=2, hidden_size=3, num_layers=2, output_size=2, k2=5, loss=loss,
                            huber_delta=0.3, seed=11)
    warm_state(model, rng)
    X, Y = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    if loss == "cross_entropy":
        Y = np.exp(Y) / np.exp(Y).sum(axis=1, keepdims=True)  # target probabilities
    h0, c0 = carried_state(model)
    params = model.state_dict()
    numeric = finite_difference_gradient(
        lambda p: sequence_loss(cell, p, X, Y, h0, c0, loss_steps=4, loss=loss, huber_delta=0.3), params
    )
    _, kernel_grads = model.gradient(X, Y, loss_steps=4)
    _, ref_grads = sequence_gradient(cell, params, X, Y, h0, c0, 4, loss, 0.3)
    assert_gradients_close(kernel_grads, numeric, atol=1e-8, rtol=1e-6)
    assert_gradients_close(ref_grads, numeric, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_matches_float64_step_by_step(cell, rng):
    m64 = OnlineRNN(cell=cell, input_size=2, hidden_size=8, num_layers=2, dtype="float64", seed=2)
    m32 = OnlineRNN(cell=cell, input_size=2, hidden_size=8, num_layers=2, dtype="float32", seed=2)
    X = rng.normal(size=(4, 2))
    for t in range(len(X)):
        # one step from the same (zero) state, then one more
        np.testing.assert_allclose(m32.predict_many(X[t : t + 2]), m64.predict_many(X[t : t + 2]), atol=2e-6)
    loss32, g32 = m32.gradient(X, X[:, :1])
    loss64, g64 = m64.gradient(X, X[:, :1])
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for name in g64:
        np.testing.assert_allclose(g32[name], g64[name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", CELLS)
def test_tbptt_with_long_window_equals_full_bptt(cell, rng):
    T, lr = 10, 0.05
    model = reference_model(cell, input_size=2, hidden_size=4, num_layers=2, k1=T, k2=T + 5,
                            optimizer="sgd", momentum=0.0, lr=lr, clip_norm=None, seed=4)
    before = model.state_dict()
    X, Y = rng.normal(size=(T, 2)), rng.normal(size=(T, 1))
    _, grads = sequence_gradient(cell, before, X, Y)  # all T steps, from the zero state
    model.learn_many(X, Y)
    assert model.n_updates == 1
    after = model.state_dict()
    for name in before:
        np.testing.assert_allclose(after[name], before[name] - lr * grads[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("k1,k2", [(6, 6), (9, 5)])
def test_stored_and_recomputed_windows_agree_when_k1_ge_k2(cell, k1, k2, rng):
    X, Y = rng.normal(size=(60, 1)), rng.normal(size=(60, 1))
    runs = []
    for recompute in (False, True):
        model = OnlineRNN(cell=cell, k1=k1, k2=k2, lr=0.01, recompute=recompute, seed=9)
        runs.append((model.learn_many(X, Y), model.state_dict()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for name in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][name], runs[1][1][name])


CASES = [
    # cell, k1, k2, optimizer, loss, recompute, clip
    ("rnn", 1, 4, "sgd", "squared", False, 1.0),
    ("gru", 1, 4, "adam", "huber", True, 0.5),
    ("lstm", 2, 5, "adamw", "squared", True, None),
    ("lstm", 1, 3, "rmsprop", "huber", False, 0.2),
    ("gru", 3, 3, "sgd", "squared", False, None),
    ("rnn", 4, 2, "adam", "squared", True, 1.0),
    ("lstm", 3, 7, "adam", "squared", False, 1.0),
    ("gru", 2, 4, "adam", "cross_entropy", True, 1.0),
]


@pytest.mark.parametrize("cell,k1,k2,optimizer,loss,recompute,clip", CASES)
def test_online_learning_matches_reference_learner(cell, k1, k2, optimizer, loss, recompute, clip, rng):
    kw = dict(lr=0.02, momentum=0.5, betas=(0.8, 0.9), eps=1e-6, alpha=0.9, weight_decay=0.01)
    model = reference_model(cell, input_size=2, hidden_size=4, num_layers=2, output_size=2, k1=k1, k2=k2,
                            optimizer=optimizer, loss=loss, huber_delta=0.5, recompute=recompute,
                            clip_norm=clip, seed=8, **kw)
    opt = ReferenceOptimizer(name=optimizer, clip_norm=clip, **kw)
    ref = ReferenceOnlineRNN(cell, model.state_dict(), k1, k2, opt, loss, 0.5, recompute)
    X, Y = rng.normal(size=(25, 2)), rng.normal(size=(25, 2))
    for x, y in zip(X, Y):
        np.testing.assert_allclose(model.learn(x, y), ref.learn(x, y), rtol=1e-9, atol=1e-11)
    assert (model.n_steps, model.n_updates) == (ref.n_steps, ref.n_updates) == (25, 25 // k1)
    params = model.state_dict()
    for name in params:
        np.testing.assert_allclose(params[name], ref.params[name], rtol=1e-9, atol=1e-11)
