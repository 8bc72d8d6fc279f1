"""Outputs, gradients and optimizer steps against PyTorch (skipped without torch)."""

import numpy as np
import pytest
from conftest import CELLS, reference_model

torch = pytest.importorskip("torch", reason="torch is not installed: pip install torch==2.13.0")

TORCH_CELLS = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}


def torch_model(cell, model):
    rnn = getattr(torch.nn, TORCH_CELLS[cell])(
        model.input_size, model.hidden_size, model.num_layers, dtype=torch.float64
    )
    head = torch.nn.Linear(model.hidden_size, model.output_size, dtype=torch.float64)
    state = {k: torch.from_numpy(v) for k, v in model.state_dict().items()}
    rnn.load_state_dict({k: v for k, v in state.items() if not k.startswith("head.")})
    head.load_state_dict({"weight": state["head.weight"], "bias": state["head.bias"]})
    return rnn, head


def torch_run(cell, rnn, head, X):
    out, _ = rnn(torch.from_numpy(X)[:, None, :])  # (T, batch=1, H), batch_first=False
    return head(out[:, 0, :])


def torch_grads(rnn, head):
    grads = {k: p.grad.numpy().copy() for k, p in rnn.named_parameters()}
    grads.update({f"head.{k}": p.grad.numpy().copy() for k, p in head.named_parameters()})
    return grads


def torch_state(rnn, head):
    state = {k: v.detach().numpy().copy() for k, v in rnn.state_dict().items()}
    state.update({f"head.{k}": v.detach().numpy().copy() for k, v in head.state_dict().items()})
    return state


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_outputs_and_gradients_match_torch(cell, layers, rng):
    model = reference_model(cell, input_size=3, hidden_size=6, num_layers=layers, output_size=2, k1=4, k2=8, seed=1)
    rnn, head = torch_model(cell, model)
    X, Y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    Y_hat = torch_run(cell, rnn, head, X)
    np.testing.assert_allclose(model.predict_many(X), Y_hat.detach().numpy(), rtol=1e-10, atol=1e-12)

    loss = torch.nn.functional.mse_loss(Y_hat[-4:], torch.from_numpy(Y[-4:]))
    loss.backward()
    our_loss, grads = model.gradient(X, Y, loss_steps=4)
    assert our_loss == pytest.approx(loss.item(), rel=1e-10)
    expected = torch_grads(rnn, head)
    assert set(grads) == set(expected)
    for name in grads:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam", "adamw"])
def test_tbptt_updates_match_a_torch_loop(cell, optimizer, rng):
    """k1 = k2 = T: each update is full BPTT over the last T steps from the
    carried state, clipped, then one optimizer step, as a torch loop does it."""
    T = 5
    model = reference_model(cell, input_size=1, hidden_size=5, k1=T, k2=T, optimizer=optimizer, lr=0.05,
                            clip_norm=0.5, loss="huber", huber_delta=0.7, seed=6)
    rnn, head = torch_model(cell, model)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = {
        "sgd": lambda: torch.optim.SGD(params, lr=0.05, momentum=0.9),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=0.05),
        "adam": lambda: torch.optim.Adam(params, lr=0.05),
        "adamw": lambda: torch.optim.AdamW(params, lr=0.05),
    }[optimizer]()
    X, Y = rng.normal(size=(4 * T, 1)), rng.normal(size=(4 * T, 1))
    state = None
    for start in range(0, 4 * T, T):
        x = torch.from_numpy(X[start : start + T])[:, None, :]
        out, state = rnn(x, state)
        loss = torch.nn.functional.huber_loss(head(out[:, 0, :]), torch.from_numpy(Y[start : start + T]), delta=0.7)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    model.learn_many(X, Y)
    assert model.n_updates == 4
    ours, theirs = model.state_dict(), torch_state(rnn, head)
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-8, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_cross_entropy_matches_torch(cell, rng):
    model = reference_model(cell, input_size=2, hidden_size=5, output_size=3, k1=6, k2=6, loss="cross_entropy",
                            seed=2)
    rnn, head = torch_model(cell, model)
    X = rng.normal(size=(6, 2))
    labels = rng.integers(0, 3, size=6)
    Y = np.eye(3)[labels]
    logits = torch_run(cell, rnn, head, X)
    loss = torch.nn.functional.cross_entropy(logits[-4:], torch.from_numpy(labels[-4:]))
    loss.backward()
    our_loss, grads = model.gradient(X, Y, loss_steps=4)
    assert our_loss == pytest.approx(loss.item(), rel=1e-10)
    expected = torch_grads(rnn, head)
    for name in grads:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-9, atol=1e-12, err_msg=name)
