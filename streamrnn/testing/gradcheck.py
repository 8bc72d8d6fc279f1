"""Central finite differences, to check analytic gradients independently."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def finite_difference_gradient(loss: Callable[[dict], float], params: dict, eps: float = 1e-6) -> dict:
    """Central-difference gradient of ``loss(params)`` for every entry of
    every array in ``params`` (float64 copies are perturbed; ``params`` is not
    changed). Error O(eps**2) plus rounding O(1e-16 / eps)."""
    work = {name: np.array(v, dtype=np.float64, order="C") for name, v in params.items()}
    grads = {}
    for name, p in work.items():
        g = np.zeros_like(p)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = loss(work)
            flat[i] = old - eps
            down = loss(work)
            flat[i] = old
            gflat[i] = (up - down) / (2.0 * eps)
        grads[name] = g
    return grads


def gradient_errors(analytic: dict, numeric: dict, atol: float = 1e-7, rtol: float = 1e-5) -> dict:
    """For each name, the largest ``|a - n| - (atol + rtol * |n|)``; every value
    is <= 0 when the gradients agree within tolerance."""
    return {
        name: float(np.max(np.abs(np.asarray(analytic[name]) - n) - (atol + rtol * np.abs(n))))
        for name, n in numeric.items()
    }


def assert_gradients_close(analytic: dict, numeric: dict, atol: float = 1e-7, rtol: float = 1e-5) -> None:
    """Raise ``AssertionError`` naming every parameter whose gradients differ."""
    if set(analytic) != set(numeric):
        raise AssertionError(f"parameter names differ: {sorted(set(analytic) ^ set(numeric))}")
    bad = {name: err for name, err in gradient_errors(analytic, numeric, atol, rtol).items() if err > 0}
    if bad:
        raise AssertionError(f"gradients differ beyond atol={atol}, rtol={rtol}: {bad}")
