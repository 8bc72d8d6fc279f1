"""The fast activations against NumPy's exact ones."""

import numpy as np
import pytest
from numba import njit

from streamrnn.kernels._math import act_sigmoid, act_tanh


@njit
def apply(xs, approx):
    t = np.empty_like(xs)
    s = np.empty_like(xs)
    for i in range(xs.shape[0]):
        t[i] = act_tanh(xs[i], approx)
        s[i] = act_sigmoid(xs[i], approx)
    return t, s


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_activations_are_within_1e6(dtype):
    xs = np.concatenate([np.linspace(-20, 20, 400_001), [-1e30, 1e30, 0.0, -0.0]]).astype(dtype)
    t, s = apply(xs, True)
    exact = xs.astype(np.float64)
    with np.errstate(over="ignore"):
        sigmoid = 1 / (1 + np.exp(-exact))
    assert t.dtype == dtype and s.dtype == dtype
    assert np.max(np.abs(t - np.tanh(exact))) < 1e-6
    assert np.max(np.abs(s - sigmoid)) < 1e-6
    assert np.all(np.abs(t) <= 1) and np.all((s >= 0) & (s <= 1))


def test_exact_activations_match_numpy():
    xs = np.linspace(-30, 30, 10_001)
    t, s = apply(xs, False)
    np.testing.assert_allclose(t, np.tanh(xs), rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-xs)), rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("approx", [True, False])
def test_activations_propagate_nan(approx):
    t, s = apply(np.array([np.nan]), approx)
    assert np.isnan(t[0]) and np.isnan(s[0])
