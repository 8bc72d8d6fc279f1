"""CUDA twins of the CPU bank kernels (:mod:`streamrnn.kernels.recurrent`).

One GPU thread runs one model, the same sequence of operations as the CPU's
``learn_one`` / ``predict_many`` / forecast loop, on the same per-model buffer
layout (:mod:`..layout`). What differs is where the models sit: on the device
the bank's buffers are stored **model-minor**, ``buf`` of shape
``(lay[L_BUF], n_models)`` and ``ctr`` of shape ``(N_CTR, n_models)``, so
element ``e`` of model ``m`` is ``buf[e, m]``. Neighbouring threads run
neighbouring models and read neighbouring addresses: every load and store of
a warp is one coalesced transaction, whatever the cell or size.

Why a thread per model, not a block per model: a bank is for many models
(thousands to millions of keys), which alone fill the GPU; a thread per model
needs no barriers, no shared memory and no cross-thread reductions (each sum
is formed in one thread, in a fixed order: the results are deterministic, and
in float64 agree with the CPU's to rounding), and keeps the code a
line-by-line twin of the CPU kernels; its matrix-vector products keep four
sums in registers at a time, to load each vector element once per four. The price is that a few
models leave the GPU idle: below ~10^4 models the CPU kernels are faster.

The device functions are written here as plain Python and compiled by
:func:`build` on first use, which is the only place ``numba.cuda`` is
imported: importing this module never touches CUDA. No eager signatures:
they would need a driver at import time.

Floating-point constants are cast to the buffer's dtype (``t(1.0)``) and the
float32 kernels contain no float64 instruction (checked on the PTX in the
tests). Scalar activations come from :mod:`.._math`, shared with the CPU.
"""

from __future__ import annotations

import math

from ... import config
from .._math import act_sigmoid, act_tanh
from ..layout import (
    C_FILL,
    C_OVERFLOWS,
    C_POS,
    C_RESETS,
    C_SINCE,
    C_SKIPPED,
    C_STEPS,
    C_UPDATES,
    CELL_GRU,
    CELL_LSTM,
    HP_ALPHA,
    HP_BETA1,
    HP_BETA2,
    HP_CLIP,
    HP_EPS,
    HP_HUBER_DELTA,
    HP_LR,
    HP_MOMENTUM,
    HP_WEIGHT_DECAY,
    L_APPROX,
    L_C_ACT,
    L_C_AUX,
    L_C_LAYER0,
    L_C_X,
    L_C_Y,
    L_C_YHAT,
    L_CACHE,
    L_CELL,
    L_CROW,
    L_CROW_LAYER,
    L_GATES,
    L_GRAD,
    L_HEAD_B,
    L_HEAD_W,
    L_HIDDEN,
    L_HP,
    L_HSTRIDE,
    L_INPUT,
    L_K1,
    L_K2,
    L_LAYERS,
    L_LOSS,
    L_M,
    L_NPARAM,
    L_OPT,
    L_OUTPUT,
    L_PARAMS0,
    L_PRED,
    L_PSTATE,
    L_R_ACT,
    L_R_AUX,
    L_R_CN,
    L_R_CP,
    L_R_DAH,
    L_R_DAX,
    L_R_HN,
    L_R_HP,
    L_R_XIN,
    L_R_Y,
    L_R_YHAT,
    L_RCACHE,
    L_RECOMPUTE,
    L_ROW,
    L_ROW_LAYER,
    L_S_AH,
    L_S_AX,
    L_S_DC,
    L_S_DH,
    L_S_DIN,
    L_S_GH,
    L_STATE,
    L_V,
    L_WSTATE,
    LOSS_CROSS_ENTROPY,
    LOSS_HUBER,
    OPT_ADAMW,
    OPT_RMSPROP,
    OPT_SGD,
)

#: Threads per block of every kernel launch.
THREADS_PER_BLOCK = 128

# Notation: ``B`` is the bank's model-minor buffer, ``m`` the model's column;
# ``B[e, m]`` is element ``e`` of the CPU's per-model buffer. Offsets are
# read from ``lay`` exactly as on the CPU.

# ------------------------------------------------------------------ helpers


def ring_row(rows, start, s, k2, stride):
    """Offset of step ``s`` of a window that starts at ring row ``start``."""
    r = start + s
    if r >= k2:
        r -= k2
    return rows + r * stride


def all_finite(B, m, offset, n):
    """Whether ``B[offset:offset + n, m]`` is finite."""
    ok = True
    for j in range(n):
        if not math.isfinite(B[offset + j, m]):
            ok = False
    return ok


def row_finite(X, i, n):
    """Whether ``X[i, :n]`` is finite."""
    ok = True
    for j in range(n):
        if not math.isfinite(X[i, j]):
            ok = False
    return ok


def copy_block(B, m, dst, src, n):
    for j in range(n):
        B[dst + j, m] = B[src + j, m]


def zero_block(B, m, dst, n):
    zero = B.dtype.type(0.0)
    for j in range(n):
        B[dst + j, m] = zero


def load_row_input(lay, B, m, row, X, i):
    """The model input of ``row`` (layer 0's ``xin``) from ``X[i]``."""
    xin = row + lay[L_R_XIN]
    for j in range(lay[L_INPUT]):
        B[xin + j, m] = X[i, j]


def matvec(B, m, out, bias, W, x, n, GH):
    """``out[k] = bias[k] + sum_j x[j] * W[j, k]`` for ``W`` of shape
    ``(n, GH)`` at ``W``. Four outputs at a time: each ``x[j]`` is loaded
    once per four outputs, not once per output."""
    k = 0
    while k + 4 <= GH:
        a0, a1, a2, a3 = B[bias + k, m], B[bias + k + 1, m], B[bias + k + 2, m], B[bias + k + 3, m]
        for j in range(n):
            xj = B[x + j, m]
            w = W + j * GH + k
            a0 += xj * B[w, m]
            a1 += xj * B[w + 1, m]
            a2 += xj * B[w + 2, m]
            a3 += xj * B[w + 3, m]
        B[out + k, m] = a0
        B[out + k + 1, m] = a1
        B[out + k + 2, m] = a2
        B[out + k + 3, m] = a3
        k += 4
    while k < GH:
        a = B[bias + k, m]
        for j in range(n):
            a += B[x + j, m] * B[W + j * GH + k, m]
        B[out + k, m] = a
        k += 1


def matvec_t(B, m, out, W, d, n, GH, plus):
    """``out[j] = sum_k W[j, k] * d[k]`` (plus ``B[plus + j]`` when
    ``plus >= 0``) for ``W`` of shape ``(n, GH)``. Four rows at a time: each
    ``d[k]`` is loaded once per four rows."""
    zero = B.dtype.type(0.0)
    j = 0
    while j + 4 <= n:
        s0 = s1 = s2 = s3 = zero
        r = W + j * GH
        for k in range(GH):
            dk = B[d + k, m]
            s0 += B[r + k, m] * dk
            s1 += B[r + GH + k, m] * dk
            s2 += B[r + 2 * GH + k, m] * dk
            s3 += B[r + 3 * GH + k, m] * dk
        if plus >= 0:
            s0 += B[plus + j, m]
            s1 += B[plus + j + 1, m]
            s2 += B[plus + j + 2, m]
            s3 += B[plus + j + 3, m]
        B[out + j, m] = s0
        B[out + j + 1, m] = s1
        B[out + j + 2, m] = s2
        B[out + j + 3, m] = s3
        j += 4
    while j < n:
        s = zero
        r = W + j * GH
        for k in range(GH):
            s += B[r + k, m] * B[d + k, m]
        if plus >= 0:
            s += B[plus + j, m]
        B[out + j, m] = s
        j += 1


def ipow(b, n):
    """``b ** n`` for an integer ``n >= 0`` by repeated squaring, in the type
    of ``b`` (Numba's integer power on the CPU)."""
    r = type(b)(1.0)
    while n != 0:
        if n & 1:
            r *= b
        n >>= 1
        b *= b
    return r


# ----------------------------------------------------------------- forward


def cell_forward(lay, B, m, layer, base):
    """Forward one layer at the row block ``base`` (``cell_forward`` on the CPU)."""
    cell = lay[L_CELL]
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    approx = lay[L_APPROX] != 0
    nin = lay[L_INPUT] if layer == 0 else H
    p = L_PARAMS0 + 4 * layer
    wx, wh, bx, bh = lay[p], lay[p + 1], lay[p + 2], lay[p + 3]
    ax, ah = lay[L_S_AX], lay[L_S_AH]
    xin, hp = base + lay[L_R_XIN], base + lay[L_R_HP]
    act, aux = base + lay[L_R_ACT], base + lay[L_R_AUX]

    matvec(B, m, ax, bx, wx, xin, nin, GH)
    matvec(B, m, ah, bh, wh, hp, H, GH)

    if cell == CELL_GRU:
        for k in range(2 * H):
            B[act + k, m] = act_sigmoid(B[ax + k, m] + B[ah + k, m], approx)
        for k in range(H):
            a = B[ah + 2 * H + k, m]
            B[aux + k, m] = a
            B[act + 2 * H + k, m] = act_tanh(B[ax + 2 * H + k, m] + B[act + k, m] * a, approx)
    elif cell == CELL_LSTM:
        for k in range(GH):
            a = B[ax + k, m] + B[ah + k, m]
            if k >= 2 * H and k < 3 * H:
                B[act + k, m] = act_tanh(a, approx)
            else:
                B[act + k, m] = act_sigmoid(a, approx)
    else:
        for k in range(GH):
            B[act + k, m] = act_tanh(B[ax + k, m] + B[ah + k, m], approx)
    cell_state(lay, B, m, base)


def cell_state(lay, B, m, base):
    """The new state of one layer from its activations and previous state
    (``cell_state`` on the CPU): the end of :func:`cell_forward`, also run
    alone to rebuild a window's states from its compact rows."""
    t = B.dtype.type
    one = t(1.0)
    cell = lay[L_CELL]
    H = lay[L_HIDDEN]
    approx = lay[L_APPROX] != 0
    hp, cp = base + lay[L_R_HP], base + lay[L_R_CP]
    act, aux = base + lay[L_R_ACT], base + lay[L_R_AUX]
    hn, cn = base + lay[L_R_HN], base + lay[L_R_CN]
    if cell == CELL_GRU:
        for k in range(H):
            z = B[act + H + k, m]
            B[hn + k, m] = (one - z) * B[act + 2 * H + k, m] + z * B[hp + k, m]
    elif cell == CELL_LSTM:
        for k in range(H):
            c = B[act + H + k, m] * B[cp + k, m] + B[act + k, m] * B[act + 2 * H + k, m]
            B[cn + k, m] = c
            a = act_tanh(c, approx)
            B[aux + k, m] = a
            B[hn + k, m] = B[act + 3 * H + k, m] * a
    else:
        copy_block(B, m, hn, act, H)


def head_forward(lay, B, m, row):
    """Linear readout of the top layer into the row's prediction."""
    H = lay[L_HIDDEN]
    top = row + (lay[L_LAYERS] - 1) * lay[L_ROW_LAYER] + lay[L_R_HN]
    yhat = row + lay[L_R_YHAT]
    W, b = lay[L_HEAD_W], lay[L_HEAD_B]
    for o in range(lay[L_OUTPUT]):
        s = B[b + o, m]
        for j in range(H):
            s += B[W + o * H + j, m] * B[top + j, m]
        B[yhat + o, m] = s


def network_forward(lay, B, m, row, state):
    """One time step of the stack and head (``network_forward`` on the CPU),
    the model input being already in ``row``. Returns False, leaving the
    state at ``state`` untouched, if the new state is not finite."""
    nl = lay[L_LAYERS]
    H = lay[L_HIDDEN]
    hs = lay[L_HSTRIDE]
    rl = lay[L_ROW_LAYER]
    for layer in range(nl):
        base = row + layer * rl
        if layer > 0:
            copy_block(B, m, base + lay[L_R_XIN], base - rl + lay[L_R_HN], H)
        s = state + 2 * layer * hs
        copy_block(B, m, base + lay[L_R_HP], s, H)
        copy_block(B, m, base + lay[L_R_CP], s + hs, H)
        cell_forward(lay, B, m, layer, base)
    head_forward(lay, B, m, row)

    finite = True
    for layer in range(nl):
        base = row + layer * rl
        if not (all_finite(B, m, base + lay[L_R_HN], H) and all_finite(B, m, base + lay[L_R_CN], H)):
            finite = False
    if finite:
        for layer in range(nl):
            base = row + layer * rl
            s = state + 2 * layer * hs
            copy_block(B, m, s, base + lay[L_R_HN], H)
            copy_block(B, m, s + hs, base + lay[L_R_CN], H)
    return finite


# ---------------------------------------------------------------- backward


def cell_backward(lay, B, m, layer, base, need_din):
    """Backward one layer through one step (``cell_backward`` on the CPU)."""
    t = B.dtype.type
    one = t(1.0)
    cell = lay[L_CELL]
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    hs = lay[L_HSTRIDE]
    nin = lay[L_INPUT] if layer == 0 else H
    p = L_PARAMS0 + 4 * layer
    wx, wh = lay[p], lay[p + 1]
    dax, dah = base + lay[L_R_DAX], base + lay[L_R_DAH]
    din, gh = lay[L_S_DIN], lay[L_S_GH]
    dh = lay[L_S_DH] + layer * hs
    dc = lay[L_S_DC] + layer * hs
    hp, cp = base + lay[L_R_HP], base + lay[L_R_CP]
    act, aux = base + lay[L_R_ACT], base + lay[L_R_AUX]

    for k in range(H):
        B[gh + k, m] = B[dh + k, m] + B[din + k, m]

    if cell == CELL_LSTM:
        for k in range(H):
            i = B[act + k, m]
            f = B[act + H + k, m]
            g = B[act + 2 * H + k, m]
            o = B[act + 3 * H + k, m]
            a = B[aux + k, m]
            ghk = B[gh + k, m]
            c = B[dc + k, m] + ghk * o * (one - a * a)
            B[dax + k, m] = c * g * i * (one - i)
            B[dax + H + k, m] = c * B[cp + k, m] * f * (one - f)
            B[dax + 2 * H + k, m] = c * i * (one - g * g)
            B[dax + 3 * H + k, m] = ghk * a * o * (one - o)
            B[dc + k, m] = c * f
            B[gh + k, m] = t(0.0)
        copy_block(B, m, dah, dax, GH)
    elif cell == CELL_GRU:
        for k in range(H):
            r = B[act + k, m]
            z = B[act + H + k, m]
            n = B[act + 2 * H + k, m]
            ghk = B[gh + k, m]
            dn = ghk * (one - z) * (one - n * n)
            B[dax + 2 * H + k, m] = dn
            B[dax + k, m] = dn * B[aux + k, m] * r * (one - r)
            B[dax + H + k, m] = ghk * (B[hp + k, m] - n) * z * (one - z)
        copy_block(B, m, dah, dax, 2 * H)
        for k in range(H):
            B[dah + 2 * H + k, m] = B[dax + 2 * H + k, m] * B[act + k, m]
        for k in range(H):
            B[gh + k, m] = B[gh + k, m] * B[act + H + k, m]
    else:
        for k in range(H):
            a = B[act + k, m]
            B[dax + k, m] = B[gh + k, m] * (one - a * a)
            B[gh + k, m] = t(0.0)
        copy_block(B, m, dah, dax, GH)

    if need_din:
        matvec_t(B, m, din, wx, dax, nin, GH, -1)
    matvec_t(B, m, dh, wh, dah, H, GH, gh)


def accumulate_outer(lay, B, m, g, rows_n, cols_m, rows, start, n_rows, at, x_slot, d_slot):
    """``gW[j, k] += sum over steps s of x_s[j] * d_s[k]`` for the gradient
    block at ``g`` of shape ``(rows_n, cols_m)`` (``accumulate_outer`` on the
    CPU). The sum over the steps is formed in registers, four columns at a
    time: each gradient is read and written once per window."""
    zero = B.dtype.type(0.0)
    k2, rs = lay[L_K2], lay[L_ROW]
    for j in range(rows_n):
        k = 0
        while k + 4 <= cols_m:
            a0 = a1 = a2 = a3 = zero
            for s in range(n_rows):
                b = ring_row(rows, start, s, k2, rs) + at
                x = B[b + x_slot + j, m]
                d = b + d_slot + k
                a0 += x * B[d, m]
                a1 += x * B[d + 1, m]
                a2 += x * B[d + 2, m]
                a3 += x * B[d + 3, m]
            w = g + j * cols_m + k
            B[w, m] += a0
            B[w + 1, m] += a1
            B[w + 2, m] += a2
            B[w + 3, m] += a3
            k += 4
        while k < cols_m:
            a = zero
            for s in range(n_rows):
                b = ring_row(rows, start, s, k2, rs) + at
                a += B[b + x_slot + j, m] * B[b + d_slot + k, m]
            B[g + j * cols_m + k, m] += a
            k += 1


def accumulate_weight_gradients(lay, B, m, rows, start, n_rows):
    """Each layer's weight and bias gradients from the window's
    pre-activation gradients."""
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    k2, rs, rl = lay[L_K2], lay[L_ROW], lay[L_ROW_LAYER]
    g0 = lay[L_GRAD]
    for layer in range(lay[L_LAYERS]):
        nin = lay[L_INPUT] if layer == 0 else H
        p = L_PARAMS0 + 4 * layer
        gbx, gbh = g0 + lay[p + 2], g0 + lay[p + 3]
        at = layer * rl
        for s in range(n_rows):
            base = ring_row(rows, start, s, k2, rs) + at
            dax, dah = base + lay[L_R_DAX], base + lay[L_R_DAH]
            for k in range(GH):
                B[gbx + k, m] += B[dax + k, m]
            for k in range(GH):
                B[gbh + k, m] += B[dah + k, m]
        accumulate_outer(lay, B, m, g0 + lay[p], nin, GH, rows, start, n_rows, at, lay[L_R_XIN], lay[L_R_DAX])
        accumulate_outer(lay, B, m, g0 + lay[p + 1], H, GH, rows, start, n_rows, at, lay[L_R_HP], lay[L_R_DAH])


def window_backward(lay, B, m, rows, start, n_rows, n_loss):
    """Backpropagate the mean loss of the last ``n_loss`` of ``n_rows`` steps
    into the gradient region; returns the loss (``window_backward`` on the CPU)."""
    t = B.dtype.type
    zero = t(0.0)
    nl = lay[L_LAYERS]
    H = lay[L_HIDDEN]
    O = lay[L_OUTPUT]
    hs = lay[L_HSTRIDE]
    k2 = lay[L_K2]
    rs, rl = lay[L_ROW], lay[L_ROW_LAYER]
    g0 = lay[L_GRAD]
    din = lay[L_S_DIN]
    huber = lay[L_LOSS] == LOSS_HUBER
    delta = B[lay[L_HP] + HP_HUBER_DELTA, m]
    W = lay[L_HEAD_W]
    gW, gb = g0 + lay[L_HEAD_W], g0 + lay[L_HEAD_B]

    zero_block(B, m, g0, lay[L_NPARAM])
    zero_block(B, m, lay[L_S_DH], nl * hs)
    zero_block(B, m, lay[L_S_DC], nl * hs)

    cross_entropy = lay[L_LOSS] == LOSS_CROSS_ENTROPY
    scale = t(1.0) / t(n_loss if cross_entropy else n_loss * O)
    loss = zero
    for s in range(n_rows - 1, -1, -1):
        row = ring_row(rows, start, s, k2, rs)
        zero_block(B, m, din, H)
        if s >= n_rows - n_loss:
            top = row + (nl - 1) * rl + lay[L_R_HN]
            yhat, y = row + lay[L_R_YHAT], row + lay[L_R_Y]
            mx = zero
            log_z = zero
            if cross_entropy:
                mx = B[yhat, m]
                for o in range(1, O):
                    mx = max(mx, B[yhat + o, m])
                z = zero
                for o in range(O):
                    z += math.exp(B[yhat + o, m] - mx)
                log_z = math.log(z)
            for o in range(O):
                yo = B[y + o, m]
                d = B[yhat + o, m] - yo
                if cross_entropy:
                    log_p = B[yhat + o, m] - mx - log_z
                    loss -= yo * log_p
                    g = (math.exp(log_p) - yo) * scale
                elif huber and abs(d) > delta:
                    loss += delta * (abs(d) - t(0.5) * delta)
                    g = delta * scale if d > zero else -delta * scale
                elif huber:
                    loss += t(0.5) * d * d
                    g = d * scale
                else:
                    loss += d * d
                    g = t(2.0) * d * scale
                B[gb + o, m] += g
                for j in range(H):
                    B[gW + o * H + j, m] += B[top + j, m] * g
                for j in range(H):
                    B[din + j, m] += B[W + o * H + j, m] * g
        for layer in range(nl - 1, -1, -1):
            cell_backward(lay, B, m, layer, row + layer * rl, layer > 0)
    accumulate_weight_gradients(lay, B, m, rows, start, n_rows)
    return loss * scale


# --------------------------------------------------------------- optimizers


def element_update(opt, th, g0, v1, v2, gscale, hps, one):
    """The new value of one parameter and of its two moments after one
    optimizer step (``apply_update`` on the CPU, the same expressions in the
    same order), written nowhere: ``th`` the parameter, ``g0`` its raw
    gradient, ``v1``/``v2`` its moments; ``hps`` = (lr, wd, eps, momentum,
    alpha, beta1, beta2, step, rbc2, decay, l2) as :func:`step_constants`
    gives them. A moment the optimizer does not use is returned unchanged."""
    lr, wd, eps, mom, alpha, b1, b2, step, rbc2, decay, l2 = hps
    if opt == OPT_SGD:
        g = g0 * gscale + wd * th
        v = mom * v1 + g
        return th - lr * v, v, v2
    if opt == OPT_RMSPROP:
        g = g0 * gscale + wd * th
        v = alpha * v2 + (one - alpha) * g * g
        return th - lr * g / (math.sqrt(v) + eps), v1, v
    g = g0 * gscale + l2 * th
    n1 = b1 * v1 + (one - b1) * g
    n2 = b2 * v2 + (one - b2) * g * g
    return th * decay - step * n1 / (math.sqrt(n2) * rbc2 + eps), n1, n2


def step_constants(opt, B, m, hp, n_updates, one, zero):
    """The hyperparameters of model ``m`` and the constants of its next step
    (Adam's bias corrections, AdamW's decay), in the order
    :func:`element_update` takes them."""
    lr = B[hp + HP_LR, m]
    wd = B[hp + HP_WEIGHT_DECAY, m]
    b1 = B[hp + HP_BETA1, m]
    b2 = B[hp + HP_BETA2, m]
    step = lr
    rbc2 = one
    decay = one
    l2 = wd
    if opt != OPT_SGD and opt != OPT_RMSPROP:  # Adam's bias corrections
        step = lr / (one - ipow(b1, n_updates + 1))
        rbc2 = one / math.sqrt(one - ipow(b2, n_updates + 1))
    if opt == OPT_ADAMW:
        decay = one - lr * wd
        l2 = zero
    return (lr, wd, B[hp + HP_EPS, m], B[hp + HP_MOMENTUM, m], B[hp + HP_ALPHA, m], b1, b2, step, rbc2, decay, l2)


def optimizer_step(lay, ctr, B, m):
    """Clip to the global norm and apply one optimizer step
    (``optimizer_step`` on the CPU). Returns False, changing nothing, when
    the gradient is not finite, or when the step would write a non-finite
    parameter or moment (an overflow, counted in ``ctr[C_OVERFLOWS, m]``,
    as the CPU's rollback). The new values are computed once to check them
    and again to write them: the same expressions, so the same bits, and no
    copy to roll back to."""
    t = B.dtype.type
    one = t(1.0)
    zero = t(0.0)
    P = lay[L_NPARAM]
    grad, m1, m2 = lay[L_GRAD], lay[L_M], lay[L_V]
    hp = lay[L_HP]
    clip = B[hp + HP_CLIP, m]
    opt = lay[L_OPT]

    sq = zero
    for j in range(P):
        g = B[grad + j, m]
        sq += g * g
    if not math.isfinite(sq):
        return False
    norm = math.sqrt(sq)
    gscale = one
    if clip > zero:
        gscale = min(clip / (norm + t(1e-6)), one)

    hps = step_constants(opt, B, m, hp, ctr[C_UPDATES, m], one, zero)
    for j in range(P):
        th, v1, v2 = element_update(opt, B[j, m], B[grad + j, m], B[m1 + j, m], B[m2 + j, m], gscale, hps, one)
        if not (math.isfinite(th) and math.isfinite(v1) and math.isfinite(v2)):
            ctr[C_OVERFLOWS, m] += 1
            return False
    for j in range(P):
        th, v1, v2 = element_update(opt, B[j, m], B[grad + j, m], B[m1 + j, m], B[m2 + j, m], gscale, hps, one)
        B[j, m] = th
        if opt != OPT_RMSPROP:  # (SGD's and RMSprop's one moment: both names, one region)
            B[m1 + j, m] = v1
        if opt != OPT_SGD:
            B[m2 + j, m] = v2
    return True


# ------------------------------------------------------------- TBPTT driver


def compact_row(lay, start, s):
    """Offset of the compact row of step ``s`` of the window from ring row ``start``."""
    return ring_row(lay[L_CACHE], start, s, lay[L_K2], lay[L_CROW])


def store_compact(lay, B, m, row, crow):
    """What the window keeps of the full row ``row``, into the compact row
    ``crow`` (``store_compact`` on the CPU)."""
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    rl, cl = lay[L_ROW_LAYER], lay[L_CROW_LAYER]
    copy_block(B, m, crow + lay[L_C_X], row + lay[L_R_XIN], lay[L_INPUT])
    copy_block(B, m, crow + lay[L_C_Y], row + lay[L_R_Y], lay[L_OUTPUT])
    copy_block(B, m, crow + lay[L_C_YHAT], row + lay[L_R_YHAT], lay[L_OUTPUT])
    for layer in range(lay[L_LAYERS]):
        c, base = crow + lay[L_C_LAYER0] + layer * cl, row + layer * rl
        copy_block(B, m, c + lay[L_C_ACT], base + lay[L_R_ACT], GH)
        if lay[L_CELL] == CELL_GRU:
            copy_block(B, m, c + lay[L_C_AUX], base + lay[L_R_AUX], H)


def expand_row(lay, B, m, crow, row):
    """The full row ``row`` rebuilt from the compact row ``crow`` and the
    previous state in ``row`` (``expand_row`` on the CPU)."""
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    rl, cl = lay[L_ROW_LAYER], lay[L_CROW_LAYER]
    copy_block(B, m, row + lay[L_R_XIN], crow + lay[L_C_X], lay[L_INPUT])
    for layer in range(lay[L_LAYERS]):
        c, base = crow + lay[L_C_LAYER0] + layer * cl, row + layer * rl
        if layer > 0:
            copy_block(B, m, base + lay[L_R_XIN], base - rl + lay[L_R_HN], H)
        copy_block(B, m, base + lay[L_R_ACT], c + lay[L_C_ACT], GH)
        if lay[L_CELL] == CELL_GRU:
            copy_block(B, m, base + lay[L_R_AUX], c + lay[L_C_AUX], H)
        cell_state(lay, B, m, base)
    copy_block(B, m, row + lay[L_R_Y], crow + lay[L_C_Y], lay[L_OUTPUT])
    copy_block(B, m, row + lay[L_R_YHAT], crow + lay[L_C_YHAT], lay[L_OUTPUT])


def state_into_row(lay, B, m, state, row):
    """Each layer's ``h``, ``c`` at ``state`` into ``row``'s ``hp``, ``cp``."""
    H, hs, rl = lay[L_HIDDEN], lay[L_HSTRIDE], lay[L_ROW_LAYER]
    for layer in range(lay[L_LAYERS]):
        copy_block(B, m, row + layer * rl + lay[L_R_HP], state + 2 * layer * hs, H)
        copy_block(B, m, row + layer * rl + lay[L_R_CP], state + 2 * layer * hs + hs, H)


def advance_window_state(lay, B, m, oldest):
    """The window's start state moved past its oldest step, at ring row
    ``oldest`` (``advance_window_state`` on the CPU)."""
    H, hs, rl = lay[L_HIDDEN], lay[L_HSTRIDE], lay[L_ROW_LAYER]
    row, ws = lay[L_PRED], lay[L_WSTATE]
    state_into_row(lay, B, m, ws, row)
    expand_row(lay, B, m, lay[L_CACHE] + oldest * lay[L_CROW], row)
    for layer in range(lay[L_LAYERS]):
        copy_block(B, m, ws + 2 * layer * hs, row + layer * rl + lay[L_R_HN], H)
        copy_block(B, m, ws + 2 * layer * hs + hs, row + layer * rl + lay[L_R_CN], H)


def expand_window(lay, B, m, start, n_rows):
    """The window as full rows (``expand_window`` on the CPU)."""
    H, rs, rl = lay[L_HIDDEN], lay[L_ROW], lay[L_ROW_LAYER]
    rows = lay[L_RCACHE]
    state_into_row(lay, B, m, lay[L_WSTATE], rows)
    for s in range(n_rows):
        row = rows + s * rs
        if s > 0:
            for layer in range(lay[L_LAYERS]):
                base = row + layer * rl
                copy_block(B, m, base + lay[L_R_HP], base - rs + lay[L_R_HN], H)
                copy_block(B, m, base + lay[L_R_CP], base - rs + lay[L_R_CN], H)
        expand_row(lay, B, m, compact_row(lay, start, s), row)


def recompute_window(lay, B, m, start, n_rows):
    """Re-run the window with the current weights into the full rows."""
    ps = lay[L_PSTATE]
    rs = lay[L_ROW]
    copy_block(B, m, ps, lay[L_WSTATE], 2 * lay[L_LAYERS] * lay[L_HSTRIDE])
    for s in range(n_rows):
        src = compact_row(lay, start, s)
        dst = lay[L_RCACHE] + s * rs
        copy_block(B, m, dst + lay[L_R_XIN], src + lay[L_C_X], lay[L_INPUT])
        if not network_forward(lay, B, m, dst, ps):
            return False
        copy_block(B, m, dst + lay[L_R_Y], src + lay[L_C_Y], lay[L_OUTPUT])
    return True


def tbptt_update(lay, ctr, B, m):
    """One TBPTT(k1, k2) update over the stored window (``tbptt_update`` on the CPU)."""
    k1, k2 = lay[L_K1], lay[L_K2]
    n_rows = ctr[C_FILL, m]
    n_loss = min(k1, n_rows)
    start = (ctr[C_POS, m] - n_rows + k2) % k2
    for s in range(n_rows - n_loss, n_rows):
        if not all_finite(B, m, compact_row(lay, start, s) + lay[L_C_Y], lay[L_OUTPUT]):
            ctr[C_SKIPPED, m] += 1
            return False
    if lay[L_RECOMPUTE] != 0 and k1 < k2:
        if not recompute_window(lay, B, m, start, n_rows):
            ctr[C_SKIPPED, m] += 1
            return False
    else:
        expand_window(lay, B, m, start, n_rows)
    loss = window_backward(lay, B, m, lay[L_RCACHE], 0, n_rows, n_loss)
    if not math.isfinite(loss) or not optimizer_step(lay, ctr, B, m):
        ctr[C_SKIPPED, m] += 1
        return False
    ctr[C_UPDATES, m] += 1
    return True


def reset_window(lay, ctr, B, m):
    """Zero the carried state and forget the stored window."""
    zero_block(B, m, lay[L_STATE], 2 * lay[L_LAYERS] * lay[L_HSTRIDE])
    ctr[C_FILL, m] = 0
    ctr[C_SINCE, m] = 0


def learn_one(lay, ctr, B, m, X, Y, out, i):
    """``learn_one`` of the CPU for the row ``i`` of ``X``, ``Y``, ``out``."""
    nan = B.dtype.type(math.nan)
    O = lay[L_OUTPUT]
    k1, k2 = lay[L_K1], lay[L_K2]
    if not row_finite(X, i, lay[L_INPUT]):
        ctr[C_SKIPPED, m] += 1
        for o in range(O):
            out[i, o] = nan
        return
    fill = ctr[C_FILL, m]
    if fill == 0 or (k1 >= k2 and ctr[C_SINCE, m] == k1 - k2):
        copy_block(B, m, lay[L_WSTATE], lay[L_STATE], 2 * lay[L_LAYERS] * lay[L_HSTRIDE])
    elif fill == k2 and k1 < k2:
        advance_window_state(lay, B, m, ctr[C_POS, m])
    row = lay[L_PRED]
    load_row_input(lay, B, m, row, X, i)
    ok = network_forward(lay, B, m, row, lay[L_STATE])
    yhat, y = row + lay[L_R_YHAT], row + lay[L_R_Y]
    for o in range(O):
        out[i, o] = B[yhat + o, m]
        B[y + o, m] = Y[i, o]
    ctr[C_STEPS, m] += 1
    if not ok:
        reset_window(lay, ctr, B, m)
        ctr[C_RESETS, m] += 1
        ctr[C_SKIPPED, m] += 1
        return
    store_compact(lay, B, m, row, lay[L_CACHE] + ctr[C_POS, m] * lay[L_CROW])
    ctr[C_POS, m] = (ctr[C_POS, m] + 1) % k2
    ctr[C_FILL, m] = min(ctr[C_FILL, m] + 1, k2)
    ctr[C_SINCE, m] += 1
    if ctr[C_SINCE, m] >= k1:
        ctr[C_SINCE, m] = 0
        tbptt_update(lay, ctr, B, m)


def start_scratch_state(lay, B, m):
    """Copy the carried state to the scratch state of pure forward steps."""
    copy_block(B, m, lay[L_PSTATE], lay[L_STATE], 2 * lay[L_LAYERS] * lay[L_HSTRIDE])


# ------------------------------------------------------------------ kernels
# One thread per group of rows (one model), as the CPU's prange iterations.


def bank_learn_kernel(lay, ctr, B, groups, starts, order, X, Y, out):
    g = cuda.grid(1)
    if g < groups.shape[0]:
        m = groups[g]
        for r in range(starts[g], starts[g + 1]):
            learn_one(lay, ctr, B, m, X, Y, out, order[r])


def bank_predict_kernel(lay, B, groups, starts, order, X, out):
    g = cuda.grid(1)
    if g < groups.shape[0]:
        m = groups[g]
        nan = B.dtype.type(math.nan)
        start_scratch_state(lay, B, m)
        row = lay[L_PRED]
        yhat = row + lay[L_R_YHAT]
        for r in range(starts[g], starts[g + 1]):
            i = order[r]
            ok = row_finite(X, i, lay[L_INPUT])
            if ok:
                load_row_input(lay, B, m, row, X, i)
                ok = network_forward(lay, B, m, row, lay[L_PSTATE])
            for o in range(out.shape[1]):
                out[i, o] = B[yhat + o, m] if ok else nan


def bank_forecast_kernel(lay, B, groups, starts, order, X0, out):
    g = cuda.grid(1)
    if g < groups.shape[0]:
        m = groups[g]
        nan = B.dtype.type(math.nan)
        O = lay[L_OUTPUT]
        row = lay[L_PRED]
        xin, yhat = row + lay[L_R_XIN], row + lay[L_R_YHAT]
        for r in range(starts[g], starts[g + 1]):  # a model's rows, one after another
            i = order[r]
            start_scratch_state(lay, B, m)
            ok = row_finite(X0, i, lay[L_INPUT])
            if ok:
                load_row_input(lay, B, m, row, X0, i)
            for k in range(out.shape[1]):
                if ok and k > 0:  # the previous step's outputs are the inputs
                    ok = all_finite(B, m, yhat, O)
                    if ok:
                        copy_block(B, m, xin, yhat, O)
                if ok:
                    ok = network_forward(lay, B, m, row, lay[L_PSTATE])
                for o in range(O):
                    out[i, k, o] = B[yhat + o, m] if ok else nan


# ------------------------------------------------------- storage kernels


def copy_columns_kernel(src, dst):
    """``dst[:, m] = src[:, m]`` for the columns ``src`` has, zeros after."""
    m = cuda.grid(1)
    if m < dst.shape[1]:
        zero = dst.dtype.type(0)
        for e in range(dst.shape[0]):
            dst[e, m] = src[e, m] if m < src.shape[1] else zero


def put_columns_kernel(dst, cols, src):
    """``dst[:src.shape[0], cols[j]] = src[:, j]``."""
    j = cuda.grid(1)
    if j < cols.shape[0]:
        c = cols[j]
        for e in range(src.shape[0]):
            dst[e, c] = src[e, j]


def take_columns_kernel(src, cols, dst):
    """``dst[:, j] = src[:dst.shape[0], cols[j]]``."""
    j = cuda.grid(1)
    if j < cols.shape[0]:
        c = cols[j]
        for e in range(dst.shape[0]):
            dst[e, j] = src[e, c]


# ------------------------------------------------------------- compilation

_DEVICE_FUNCTIONS = (
    "ring_row",
    "all_finite",
    "row_finite",
    "copy_block",
    "zero_block",
    "load_row_input",
    "matvec",
    "matvec_t",
    "ipow",
    "element_update",
    "step_constants",
    "cell_forward",
    "cell_state",
    "head_forward",
    "network_forward",
    "cell_backward",
    "accumulate_outer",
    "accumulate_weight_gradients",
    "window_backward",
    "optimizer_step",
    "compact_row",
    "store_compact",
    "expand_row",
    "state_into_row",
    "advance_window_state",
    "expand_window",
    "recompute_window",
    "tbptt_update",
    "reset_window",
    "learn_one",
    "start_scratch_state",
)
KERNELS = (
    "bank_learn_kernel",
    "bank_predict_kernel",
    "bank_forecast_kernel",
    "copy_columns_kernel",
    "put_columns_kernel",
    "take_columns_kernel",
)
_built: dict = {}
cuda = None  # numba.cuda, bound by build(): the device code above refers to it


def build() -> dict:
    """Compile-on-demand dispatchers of the kernels, by name (lazy: the first
    call imports ``numba.cuda`` and wraps the device functions above; kernels
    are compiled for each dtype at their first launch)."""
    if _built:
        return _built
    from numba import cuda as numba_cuda

    g = globals()
    g["cuda"] = numba_cuda
    for name in _DEVICE_FUNCTIONS:
        g[name] = numba_cuda.jit(device=True)(g[name])
    for name in KERNELS:
        # cached on disk beside this file, as the CPU kernels: the first
        # compilation of the learning kernel takes ~15 s per dtype
        _built[name] = numba_cuda.jit(cache=config.CACHE)(g[name])
    return _built


def python_function(name: str):
    """The Python source function of a kernel (for ``cuda.compile_ptx``);
    call :func:`build` first so that its device functions resolve."""
    kernel = build()[name]
    return getattr(kernel, "py_func", None) or kernel.fn


