"""Kernels of a window network (:class:`streamrnn.window_network.WindowNetwork`):
one hidden tanh layer from a window of inputs to several outputs, learned
one sample at a time by Adam on the absolute error. Plain loops over a few
hundred inputs and a few dozen units."""

import math

from numba import njit

from .. import config
from .combination import combination_combine, combination_observe, combination_record

_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy", fastmath=config.FASTMATH)


@njit(**_JIT)
def window_forward(theta, n_in, n_hidden, n_out, x, hidden, out):
    """Into ``hidden`` the units ``tanh(x W1 + b1)`` and into ``out`` the
    outputs ``hidden W2 + b2``; ``theta`` holds ``W1`` ``(n_in, n_hidden)``,
    ``b1``, ``W2`` ``(n_hidden, n_out)`` and ``b2``, one after the other."""
    b1 = n_in * n_hidden
    w2 = b1 + n_hidden
    b2 = w2 + n_hidden * n_out
    for j in range(n_hidden):
        hidden[j] = theta[b1 + j]
    for i in range(n_in):
        xi = x[i]
        row = i * n_hidden
        for j in range(n_hidden):
            hidden[j] += xi * theta[row + j]
    for j in range(n_hidden):
        hidden[j] = math.tanh(hidden[j])
    for k in range(n_out):
        out[k] = theta[b2 + k]
    for j in range(n_hidden):
        hj = hidden[j]
        row = w2 + j * n_out
        for k in range(n_out):
            out[k] += hj * theta[row + k]


@njit(inline="always")
def output_gradient(theta, n_in, n_hidden, n_out, x, y, hidden, out):
    """The forward pass for input ``x`` (:func:`window_forward`), then into
    ``out`` the gradient of the mean absolute error against the targets
    ``y`` with respect to the outputs (the sign of each error, over
    ``n_out``). Returns whether every input and target is finite (if not,
    nothing is computed) and the loss."""
    for i in range(n_in):
        if not math.isfinite(x[i]):
            return False, math.nan
    for k in range(n_out):
        if not math.isfinite(y[k]):
            return False, math.nan
    window_forward(theta, n_in, n_hidden, n_out, x, hidden, out)
    loss = 0.0
    for k in range(n_out):  # (a loop that only reads: one vectorised sum, wherever the arrays lie)
        loss += abs(out[k] - y[k])
    for k in range(n_out):
        e = out[k] - y[k]
        out[k] = (1.0 if e > 0 else -1.0 if e < 0 else 0.0) / n_out  # d loss / d output
    return True, loss / n_out


@njit(inline="always")
def back_through_head(theta, row, out, n_out):
    """The sum of ``theta[row + k] * out[k]`` over ``k``, in a loop that
    only reads. (A loop that also writes is vectorised behind run-time
    checks that its arrays do not overlap, with a scalar twin for when they
    might; the twins sum in different orders, so which one runs, and the
    bits of the sum, would depend on where the arrays lie in memory.)"""
    back = 0.0
    for k in range(n_out):
        back += theta[row + k] * out[k]
    return back


@njit(inline="always")
def adam_step(theta, m1, m2, grad, step, lr, beta1, beta2, eps):
    """One Adam step (``step``: its number, from 1) along ``grad``, in the
    network's own precision (its arrays' dtype: every constant is cast to
    it, so a float32 network computes in float32 throughout)."""
    T = theta.dtype.type
    c1, c2 = T(1.0 - beta1**step), T(1.0 - beta2**step)
    rate, b1, b2, e = T(lr), T(beta1), T(beta2), T(eps)
    a1, a2 = T(1.0 - beta1), T(1.0 - beta2)
    for p in range(theta.shape[0]):
        g = grad[p]
        m1[p] = b1 * m1[p] + a1 * g
        m2[p] = b2 * m2[p] + a2 * g * g
        theta[p] -= rate * (m1[p] / c1) / (math.sqrt(m2[p] / c2) + e)


@njit(**_JIT)
def window_learn(theta, m1, m2, grad, n_in, n_hidden, n_out, x, y, step, lr, beta1, beta2, eps, hidden, out):
    """One Adam step (``step``: this one's number, from 1) on the mean
    absolute error of the outputs for input ``x`` against the targets ``y``
    (its gradient: the sign of each error, over ``n_out``); the moments
    ``m1``, ``m2`` and the scratch ``grad`` are shaped like ``theta``.
    Returns the loss before the step; a non-finite input or target changes
    nothing (NaN returned)."""
    finite, loss = output_gradient(theta, n_in, n_hidden, n_out, x, y, hidden, out)
    if not finite:
        return math.nan
    b1 = n_in * n_hidden
    w2 = b1 + n_hidden
    b2 = w2 + n_hidden * n_out
    for k in range(n_out):
        grad[b2 + k] = out[k]
    for j in range(n_hidden):
        hj = hidden[j]
        row = w2 + j * n_out
        back = back_through_head(theta, row, out, n_out)
        for k in range(n_out):
            grad[row + k] = hj * out[k]
        hidden[j] = back * (hidden.dtype.type(1.0) - hj * hj)  # d loss / d pre-activation
        grad[b1 + j] = hidden[j]
    for i in range(n_in):
        xi = x[i]
        row = i * n_hidden
        for j in range(n_hidden):
            grad[row + j] = xi * hidden[j]
    adam_step(theta, m1, m2, grad, step, lr, beta1, beta2, eps)
    return loss


@njit(**_JIT)
def window_accumulate(theta, acc, n_in, n_hidden, n_out, x, y, hidden, out):
    """Add to ``acc`` (shaped like ``theta``) the gradient of the mean
    absolute error of the outputs for input ``x`` against the targets ``y``,
    the step :func:`window_learn` would take it for. Returns the loss; a
    non-finite input or target adds nothing (NaN returned)."""
    finite, loss = output_gradient(theta, n_in, n_hidden, n_out, x, y, hidden, out)
    if not finite:
        return math.nan
    b1 = n_in * n_hidden
    w2 = b1 + n_hidden
    b2 = w2 + n_hidden * n_out
    for k in range(n_out):
        acc[b2 + k] += out[k]
    for j in range(n_hidden):
        hj = hidden[j]
        row = w2 + j * n_out
        back = back_through_head(theta, row, out, n_out)
        for k in range(n_out):
            acc[row + k] += hj * out[k]
        hidden[j] = back * (hidden.dtype.type(1.0) - hj * hj)
        acc[b1 + j] += hidden[j]
    for i in range(n_in):
        xi = x[i]
        row = i * n_hidden
        for j in range(n_hidden):
            acc[row + j] += xi * hidden[j]
    return loss


@njit(**_JIT)
def window_adam(theta, m1, m2, acc, scale, step, lr, beta1, beta2, eps):
    """One Adam step (``step``: this one's number, from 1) along the
    gradient ``scale * acc``; ``acc`` is cleared."""
    T = theta.dtype.type  # the network's own precision throughout
    c1, c2 = T(1.0 - beta1**step), T(1.0 - beta2**step)
    rate, b1, b2, e = T(lr), T(beta1), T(beta2), T(eps)
    a1, a2, s = T(1.0 - beta1), T(1.0 - beta2), T(scale)
    for p in range(theta.shape[0]):
        g = acc[p] * s
        acc[p] = 0.0
        m1[p] = b1 * m1[p] + a1 * g
        m2[p] = b2 * m2[p] + a2 * g * g
        theta[p] -= rate * (m1[p] / c1) / (math.sqrt(m2[p] / c2) + e)


@njit(**_JIT)
def log_filled(forecast, k, filled):
    """Into ``filled``, the log of the first ``k`` values of ``forecast``,
    the last one repeated after them. Returns whether they are finite."""
    finite = True
    for h in range(filled.shape[0]):
        v = math.log(forecast[min(h, k - 1)])
        if not math.isfinite(v):
            finite = False
        filled[h] = v
    return finite


@njit(**_JIT)
def window_inputs(values, n, n_window, filled, n_level, clip, x):
    """A window network's inputs at an origin, into ``x``: the last
    ``n_window`` log values (from the ring ``values``, ``n`` written, at
    least ``n_window``) and the log forecast ``filled``, each less the mean
    of the last ``n_level`` values and clipped at ``±clip``."""
    R = values.shape[0]
    H = filled.shape[0]
    level = 0.0
    for i in range(n_level):
        level += values[(n - 1 - i) % R]
    level /= n_level
    for i in range(n_window + H):
        v = (values[(n - n_window + i) % R] if i < n_window else filled[i - n_window]) - level
        x[i] = min(max(v, -clip), clip)


@njit(**_JIT)
def window_targets(values, n, anchor, clip, out):
    """Into ``out``, the last ``len(anchor)`` log values (the ring
    ``values``, ``n`` written) less the log forecast ``anchor`` made of
    them, clipped at ``±clip``."""
    W = values.shape[0]
    H = anchor.shape[0]
    for h in range(H):
        v = values[(n - H + h) % W] - anchor[h]
        out[h] = min(max(v, -clip), clip)


@njit(**_JIT)
def corrector_step(values, n, anchors, z, forecast, k, logs, n_window, n_level, clip_inputs, clip_targets,
                   theta, m1, m2, grad, summed, batch, pending, steps, lr, beta1, beta2, eps, hidden, out, x, y, F):
    """One series' step of a window corrector
    (:meth:`streamrnn.window_network.WindowCorrector.update`), its
    combination apart: write the new log value ``z`` into the ring
    ``values`` (``n`` written before it), teach the network (``theta`` ...
    ``eps``: a step, or with ``batch`` above 1 the gradient summed into
    ``summed`` and a step once ``batch`` are) the corrections of the
    forecast whose values are now all known (its log row in ``anchors``),
    then into the candidates ``F`` ``(2, H)`` the new ``forecast`` (its
    first ``k`` values; ``logs``: their logs while the window is not full)
    and its correction, NaN beyond. ``hidden``, ``out``, ``x``, ``y``: the
    network's scratch. Returns the network's steps and pending samples,
    or -1 and ``pending``, and nothing changed, if a value of the forecast
    is not positive."""
    for h in range(k):
        if not forecast[h] > 0:
            return -1, pending
    H = anchors.shape[0]
    n_in, n_hidden, n_out = x.shape[0], hidden.shape[0], out.shape[0]
    R = values.shape[0]
    values[n % R] = z
    n += 1
    first = (n - H) % H  # the origin whose values are all known now
    if n >= H and not math.isnan(anchors[first, 0]):
        window_inputs(values, n - H, n_window, anchors[first], n_level, clip_inputs, x)
        window_targets(values, n, anchors[first], clip_targets, y)
        if batch > 1:
            loss = window_accumulate(theta, summed, n_in, n_hidden, n_out, x, y, hidden, out)
            if loss == loss:
                pending += 1
                if pending == batch:
                    steps += 1
                    window_adam(theta, m1, m2, summed, 1.0 / batch, steps, lr, beta1, beta2, eps)
                    pending = 0
        else:
            loss = window_learn(theta, m1, m2, grad, n_in, n_hidden, n_out, x, y, steps + 1, lr, beta1, beta2, eps,
                                hidden, out)
            if loss == loss:
                steps += 1
    filled = anchors[n % H]
    for c in range(2):
        for h in range(H):
            F[c, h] = math.nan
    if n >= n_window and k and log_filled(forecast, k, filled):
        window_inputs(values, n, n_window, filled, n_level, clip_inputs, x)
        window_forward(theta, n_in, n_hidden, n_out, x, hidden, out)
        for h in range(k):
            F[0, h] = filled[h]
            F[1, h] = filled[h] + out[h]
    else:
        for h in range(H):
            filled[h] = math.nan
        for h in range(k):
            F[0, h] = logs[h] if h < logs.shape[0] else math.log(forecast[h])
    return steps, pending


@njit(cache=config.CACHE, nogil=True, error_model="numpy")  # (no fast-math: the combination's own flags)
def corrector_update(values, n, anchors, z, forecast, k, logs, n_window, n_level, clip_inputs, clip_targets,
                     theta, m1, m2, grad, summed, batch, pending, steps, lr, beta1, beta2, eps, hidden, out, x, y, F,
                     made, origin, unit, sq_errors, counts, abs_errors, n_abs, t, discount, thin, min_count, trim,
                     margin, mixture, given, choice):
    """One series' whole step of a window corrector
    (:meth:`streamrnn.window_network.WindowCorrector.update`) in one call:
    :func:`corrector_step` (its arguments up to ``F``), then, unless it
    refused the forecast, its combination's scoring of the new log value
    ``z`` (the ``t``-th), the mixture of the forecast and its correction
    (into ``mixture``, ``given``, ``choice``: 0 where nothing is given) and
    their record, as :func:`~streamrnn.kernels.combination.combination_observe`,
    ``combination_combine`` (fallback: the forecast) and
    ``combination_record`` do. Returns :func:`corrector_step`'s result."""
    steps, pending = corrector_step(values, n, anchors, z, forecast, k, logs, n_window, n_level, clip_inputs,
                                    clip_targets, theta, m1, m2, grad, summed, batch, pending, steps, lr, beta1,
                                    beta2, eps, hidden, out, x, y, F)
    if steps < 0:
        return steps, pending
    H = made.shape[0]
    combination_observe(made, origin, unit, sq_errors, counts, abs_errors, n_abs, t, z, discount, thin)
    combination_combine(sq_errors, counts, F, min_count, trim, margin, 1, mixture, given, choice)
    combination_record(made, origin, unit, (t + 1) % H, F, mixture, z)
    for h in range(given.shape[0]):
        if math.isnan(given[h]):  # (beyond the forecast: none)
            choice[h] = 0
    return steps, pending


@njit(cache=config.CACHE, nogil=True, error_model="numpy")  # (no fast-math: that of corrector_update)
def corrector_batch(slots, ns, ts, zs, forecasts, ks, logs, n_logs, values, anchors, n_window, n_level, clip_inputs,
                    clip_targets, theta, m1, m2, grad, summed, batch, pending, steps, lr, beta1, beta2, eps, hidden,
                    out, x, y, F, made, origin, unit, sq_errors, counts, abs_errors, n_abs, discount, thin, min_count,
                    trim, margin, mixture, given, choice, refused):
    """:func:`corrector_update` for each row ``i`` in order, one network
    shared: the series in slot ``slots[i]`` of the per-series arrays
    (``values`` ... ``anchors``, ``made`` ... ``n_abs``: one row a slot),
    with ``ns[i]`` values and ``ts[i]`` origins before it, learns the log
    value ``zs[i]`` and the forecast ``forecasts[i]`` (its first ``ks[i]``
    values; ``logs[i]``'s first ``n_logs[i]``: their logs while its window
    is not full). Into ``given[s]`` and ``choice[s]`` its output (rows by
    slot too); where the forecast is refused (a value not positive: nothing
    changed), ``refused[i]`` is set. ``F`` and ``mixture``: scratch. Returns the
    network's steps and pending samples after the last row."""
    for i in range(slots.shape[0]):
        s = slots[i]
        r, p = corrector_update(values[s], ns[i], anchors[s], zs[i], forecasts[i], ks[i], logs[i, : n_logs[i]],
                                n_window, n_level, clip_inputs, clip_targets, theta, m1, m2, grad, summed, batch,
                                pending, steps, lr, beta1, beta2, eps, hidden, out, x, y, F, made[s], origin[s],
                                unit[s], sq_errors[s], counts[s], abs_errors[s], n_abs[s], ts[i], discount, thin,
                                min_count, trim, margin, mixture, given[s], choice[s])
        if r < 0:
            refused[i] = True
        else:
            refused[i] = False
            steps, pending = r, p
    return steps, pending
