"""Float64 NumPy reference of the recurrent networks, their gradients and the
online TBPTT learner, written for clarity, not speed.

Parameters are dicts in PyTorch's ``state_dict`` names and shapes
(``weight_ih_l0`` is ``(G*H, input_size)``, gate order LSTM i, f, g, o and
GRU r, z, n, a ``torch.nn.Linear`` head named ``head``), as returned by
``OnlineRNN.state_dict()``. Nothing here shares code with the kernels.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

CELLS = ("rnn", "gru", "lstm")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def network_sizes(params: dict) -> tuple[int, int, int, int]:
    """``(input_size, hidden_size, num_layers, output_size)`` of a parameter dict."""
    num_layers = sum(1 for name in params if name.startswith("weight_ih_l"))
    hidden_size = params["weight_hh_l0"].shape[1]
    input_size = params["weight_ih_l0"].shape[1]
    output_size = params["head.weight"].shape[0]
    return input_size, hidden_size, num_layers, output_size


# ------------------------------------------------------------------ forward


def cell_step(cell: str, params: dict, layer: int, x, h, c):
    """One step of layer ``layer``; returns ``(h_new, c_new, cache)``."""
    Wi, Wh = params[f"weight_ih_l{layer}"], params[f"weight_hh_l{layer}"]
    bi, bh = params[f"bias_ih_l{layer}"], params[f"bias_hh_l{layer}"]
    gi = Wi @ x + bi
    gh = Wh @ h + bh
    cache = {"x": x, "h": h, "c": c}
    if cell == "rnn":
        h_new = np.tanh(gi + gh)
        cache["h_new"] = h_new
        return h_new, c, cache
    if cell == "lstm":
        i, f, g, o = np.split(gi + gh, 4)
        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        cache.update(i=i, f=f, g=g, o=o, tc=tc)
        return o * tc, c_new, cache
    if cell == "gru":
        H = h.shape[0]
        r = sigmoid(gi[:H] + gh[:H])
        z = sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
        hn = gh[2 * H :]
        n = np.tanh(gi[2 * H :] + r * hn)
        cache.update(r=r, z=z, n=n, hn=hn)
        return (1.0 - z) * n + z * h, c, cache
    raise ValueError(f"unknown cell {cell!r}")


def network_step(cell: str, params: dict, x, h, c):
    """One time step of the stack and head from states ``h``, ``c`` of shape
    ``(num_layers, hidden)``; returns ``(y_hat, h_new, c_new, caches)``."""
    h_new, c_new, caches = np.empty_like(h), np.empty_like(c), []
    inp = np.asarray(x, dtype=np.float64)
    for layer in range(h.shape[0]):
        h_new[layer], c_new[layer], cache = cell_step(cell, params, layer, inp, h[layer], c[layer])
        caches.append(cache)
        inp = h_new[layer]
    y_hat = params["head.weight"] @ inp + params["head.bias"]
    return y_hat, h_new, c_new, {"layers": caches, "top": inp, "y_hat": y_hat}


def zero_state(params: dict) -> tuple[np.ndarray, np.ndarray]:
    _, H, L, _ = network_sizes(params)
    return np.zeros((L, H)), np.zeros((L, H))


def network_forward(cell: str, params: dict, X, h0=None, c0=None):
    """Run the rows of ``X``; returns ``(Y_hat, h, c, caches)``."""
    h, c = zero_state(params)
    h = h if h0 is None else np.array(h0, dtype=np.float64)
    c = c if c0 is None else np.array(c0, dtype=np.float64)
    out, caches = [], []
    for x in np.asarray(X, dtype=np.float64):
        y_hat, h, c, cache = network_step(cell, params, x, h, c)
        out.append(y_hat)
        caches.append(cache)
    return np.array(out), h, c, caches


# --------------------------------------------------------------------- loss


def loss_and_grad(y_hat, y, loss: str, huber_delta: float, n_steps: int):
    """Contribution of one step to the mean loss over ``n_steps`` steps (and
    over the outputs, except for the cross-entropy), and its gradient with
    respect to ``y_hat``."""
    if loss == "cross_entropy":
        log_p = y_hat - np.max(y_hat)
        log_p = log_p - np.log(np.sum(np.exp(log_p)))
        return float(-np.sum(y * log_p)) / n_steps, (np.exp(log_p) - y) / n_steps
    n = n_steps * len(y_hat)
    d = y_hat - y
    if loss == "squared":
        return float(np.sum(d * d)) / n, 2.0 * d / n
    if loss == "huber":
        small = np.abs(d) <= huber_delta
        value = np.where(small, 0.5 * d * d, huber_delta * (np.abs(d) - 0.5 * huber_delta))
        return float(np.sum(value)) / n, np.where(small, d, huber_delta * np.sign(d)) / n
    raise ValueError(f"unknown loss {loss!r}")


def sequence_loss(cell, params, X, Y, h0=None, c0=None, loss_steps=None, loss="squared", huber_delta=1.0):
    """Mean loss of the last ``loss_steps`` (default all) rows of ``X``, ``Y``."""
    Y_hat, _, _, _ = network_forward(cell, params, X, h0, c0)
    Y = np.asarray(Y, dtype=np.float64).reshape(Y_hat.shape)
    T = len(Y_hat)
    loss_steps = T if loss_steps is None else loss_steps
    return sum(loss_and_grad(Y_hat[t], Y[t], loss, huber_delta, loss_steps)[0] for t in range(T - loss_steps, T))


# ----------------------------------------------------------------- backward


def cell_backward(cell: str, params: dict, layer: int, cache: dict, dh, dc, grads: dict):
    """Backward one step of one layer; accumulates into ``grads`` and returns
    ``(dx, dh_prev, dc_prev)``."""
    Wi, Wh = params[f"weight_ih_l{layer}"], params[f"weight_hh_l{layer}"]
    x, h = cache["x"], cache["h"]
    dc_prev = np.zeros_like(dc)
    if cell == "rnn":
        da_i = da_h = dh * (1.0 - cache["h_new"] ** 2)
        dh_direct = 0.0
    elif cell == "lstm":
        i, f, g, o, tc = cache["i"], cache["f"], cache["g"], cache["o"], cache["tc"]
        dct = dc + dh * o * (1.0 - tc**2)
        da_i = da_h = np.concatenate(
            [dct * g * i * (1 - i), dct * cache["c"] * f * (1 - f), dct * i * (1 - g**2), dh * tc * o * (1 - o)]
        )
        dc_prev = dct * f
        dh_direct = 0.0
    elif cell == "gru":
        r, z, n, hn = cache["r"], cache["z"], cache["n"], cache["hn"]
        dan = dh * (1.0 - z) * (1.0 - n**2)
        dar = dan * hn * r * (1.0 - r)
        daz = dh * (h - n) * z * (1.0 - z)
        da_i = np.concatenate([dar, daz, dan])
        da_h = np.concatenate([dar, daz, dan * r])
        dh_direct = dh * z
    else:
        raise ValueError(f"unknown cell {cell!r}")
    grads[f"weight_ih_l{layer}"] += np.outer(da_i, x)
    grads[f"weight_hh_l{layer}"] += np.outer(da_h, h)
    grads[f"bias_ih_l{layer}"] += da_i
    grads[f"bias_hh_l{layer}"] += da_h
    return Wi.T @ da_i, Wh.T @ da_h + dh_direct, dc_prev


def caches_backward(cell, params, caches, Y, loss_steps, loss="squared", huber_delta=1.0):
    """Backpropagate through stored forward ``caches`` (which may come from
    other weights than ``params``: TBPTT with stored activations) the mean
    loss of the last ``loss_steps`` steps; returns ``(loss, grads)``."""
    _, H, L, O = network_sizes(params)
    T = len(caches)
    Y = np.asarray(Y, dtype=np.float64).reshape(T, O)
    grads = {name: np.zeros_like(v, dtype=np.float64) for name, v in params.items()}
    dh, dc = np.zeros((L, H)), np.zeros((L, H))
    total = 0.0
    for t in range(T - 1, -1, -1):
        cache = caches[t]
        d_in = np.zeros(H)
        if t >= T - loss_steps:
            value, dy = loss_and_grad(cache["y_hat"], Y[t], loss, huber_delta, loss_steps)
            total += value
            grads["head.weight"] += np.outer(dy, cache["top"])
            grads["head.bias"] += dy
            d_in = params["head.weight"].T @ dy
        for layer in range(L - 1, -1, -1):
            d_in, dh[layer], dc[layer] = cell_backward(
                cell, params, layer, cache["layers"][layer], dh[layer] + d_in, dc[layer], grads
            )
    return total, grads


def sequence_gradient(cell, params, X, Y, h0=None, c0=None, loss_steps=None, loss="squared", huber_delta=1.0):
    """Loss and gradient (by parameter name) of :func:`sequence_loss` by
    backpropagation through time."""
    _, _, _, caches = network_forward(cell, params, X, h0, c0)
    loss_steps = len(caches) if loss_steps is None else loss_steps
    return caches_backward(cell, params, caches, Y, loss_steps, loss, huber_delta)


# --------------------------------------------------------------- optimizers


@dataclass
class ReferenceOptimizer:
    """``torch.optim`` SGD (momentum), RMSprop, Adam and AdamW, with
    ``clip_grad_norm_`` applied first; parameters are updated in place."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    alpha: float = 0.99
    weight_decay: float = 0.0
    clip_norm: float | None = None
    steps: int = 0
    state: dict = field(default_factory=dict)

    def step(self, params: dict, grads: dict) -> None:
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        scale = 1.0 if not self.clip_norm else min(self.clip_norm / (norm + 1e-6), 1.0)
        self.steps += 1
        b1, b2 = self.betas
        for name, p in params.items():
            g = grads[name] * scale
            m = self.state.setdefault(("m", name), np.zeros_like(p))
            v = self.state.setdefault(("v", name), np.zeros_like(p))
            if self.name != "adamw":
                g = g + self.weight_decay * p
            if self.name == "sgd":
                m[...] = self.momentum * m + g
                p -= self.lr * m
            elif self.name == "rmsprop":
                v[...] = self.alpha * v + (1 - self.alpha) * g * g
                p -= self.lr * g / (np.sqrt(v) + self.eps)
            elif self.name in ("adam", "adamw"):
                if self.name == "adamw":
                    p *= 1 - self.lr * self.weight_decay
                m[...] = b1 * m + (1 - b1) * g
                v[...] = b2 * v + (1 - b2) * g * g
                denom = np.sqrt(v) / math.sqrt(1 - b2**self.steps) + self.eps
                p -= self.lr / (1 - b1**self.steps) * m / denom
            else:
                raise ValueError(f"unknown optimizer {self.name!r}")


# ------------------------------------------------------------ online learner


class ReferenceOnlineRNN:
    """The online TBPTT(k1, k2) learner of ``OnlineRNN``, step by step.

    Every ``k1`` steps the mean loss of the last ``min(k1, window)``
    predictions is backpropagated through the last ``k2`` steps (at most),
    from the state before them, and the optimizer applied. With
    ``recompute`` (and ``k1 < k2``) the window is re-run with the current
    weights first; otherwise the activations stored when each step was taken
    are used. Non-finite inputs skip the step; non-finite targets, losses or
    gradients skip the update; a non-finite state is reset with the window.
    """

    def __init__(self, cell, params, k1=1, k2=16, optimizer=None, loss="squared", huber_delta=1.0, recompute=False):
        self.cell = cell
        self.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
        self.k1, self.k2 = k1, k2
        self.optimizer = optimizer if optimizer is not None else ReferenceOptimizer()
        self.loss, self.huber_delta, self.recompute = loss, huber_delta, recompute
        self.h, self.c = zero_state(self.params)
        self.window = deque(maxlen=k2)
        self.since = 0
        self.n_steps = self.n_updates = self.n_skipped = self.n_resets = 0

    def predict(self, x):
        return network_step(self.cell, self.params, x, self.h, self.c)[0]

    def learn(self, x, y):
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if not np.all(np.isfinite(x)):
            self.n_skipped += 1
            return np.full(self.params["head.bias"].shape, np.nan)
        y_hat, h, c, cache = network_step(self.cell, self.params, x, self.h, self.c)
        self.n_steps += 1
        if not (np.all(np.isfinite(h)) and np.all(np.isfinite(c))):
            self.h, self.c = zero_state(self.params)
            self.window.clear()
            self.since = 0
            self.n_resets += 1
            self.n_skipped += 1
            return y_hat
        self.window.append({"x": x, "y": y, "h": self.h, "c": self.c, "cache": cache})
        self.h, self.c = h, c
        self.since += 1
        if self.since >= self.k1:
            self.since = 0
            self._update()
        return y_hat

    def _update(self):
        steps = list(self.window)
        n_loss = min(self.k1, len(steps))
        Y = np.array([s["y"] for s in steps])
        if not np.all(np.isfinite(Y[len(steps) - n_loss :])):
            self.n_skipped += 1
            return
        if self.recompute and self.k1 < self.k2:
            X = np.array([s["x"] for s in steps])
            _, _, _, caches = network_forward(self.cell, self.params, X, steps[0]["h"], steps[0]["c"])
        else:
            caches = [s["cache"] for s in steps]
        loss, grads = caches_backward(self.cell, self.params, caches, Y, n_loss, self.loss, self.huber_delta)
        if not (math.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())):
            self.n_skipped += 1
            return
        self.optimizer.step(self.params, grads)
        self.n_updates += 1


def parameter_shapes(cell, input_size, hidden_size, num_layers, output_size) -> dict[str, tuple]:
    """PyTorch's ``state_dict`` shapes of a stack plus a linear head."""
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    shapes = {}
    for layer in range(num_layers):
        n_in = input_size if layer == 0 else hidden_size
        shapes[f"weight_ih_l{layer}"] = (G * hidden_size, n_in)
        shapes[f"weight_hh_l{layer}"] = (G * hidden_size, hidden_size)
        shapes[f"bias_ih_l{layer}"] = (G * hidden_size,)
        shapes[f"bias_hh_l{layer}"] = (G * hidden_size,)
    shapes["head.weight"] = (output_size, hidden_size)
    shapes["head.bias"] = (output_size,)
    return shapes
