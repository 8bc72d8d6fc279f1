"""The learner learns: a seeded task that needs memory."""

import numpy as np
import pytest
from conftest import CELLS

from streamrnn import OnlineRNN


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("seed", [0, 1])
def test_learns_to_recall_the_input_six_steps_back(cell, seed):
    rng = np.random.default_rng(100 + seed)
    n, lag = 20_000, 6
    x = rng.uniform(-1, 1, n)
    y = np.r_[np.zeros(lag), x[:-lag]]
    model = OnlineRNN(cell=cell, hidden_size=32, k1=4, k2=16, lr=0.003, recompute=True, seed=seed)
    pred = model.learn_many(x[:, None], y[:, None])[:, 0]
    first = np.mean((pred[:2000] - y[:2000]) ** 2)
    last = np.mean((pred[-2000:] - y[-2000:]) ** 2)
    assert last < 0.1 * np.var(y)
    assert last < 0.2 * first


@pytest.mark.parametrize("cell", CELLS)
def test_without_recurrence_the_task_cannot_be_learned(cell):
    """The same task with the state reset at every step stays near the
    variance: the learning above comes from memory, not from the input."""
    rng = np.random.default_rng(100)
    n, lag = 4000, 6
    x = rng.uniform(-1, 1, n)
    y = np.r_[np.zeros(lag), x[:-lag]]
    model = OnlineRNN(cell=cell, hidden_size=32, k1=1, k2=1, lr=0.003, seed=0)
    pred = np.empty(n)
    for t in range(n):
        model.reset_state()
        pred[t] = model.learn([x[t]], [y[t]])[0]
    assert np.mean((pred[-1000:] - y[-1000:]) ** 2) > 0.8 * np.var(y)
