"""CPU kernels: forward steps, backpropagation through a window, optimizers and
the online TBPTT drivers for stacks of Elman RNN, GRU and LSTM cells.

Every function works on the three arrays described in :mod:`.layout`:
``lay`` (sizes and offsets), ``ctr`` (counters) and ``buf`` (parameters,
optimizer state, hidden state, activations, hyperparameters). One compiled
version per float dtype serves every cell, size and optimizer.

Notation (PyTorch's, gate order LSTM i, f, g, o and GRU r, z, n), for a layer
with input ``x`` and previous state ``h`` (and ``c``)::

    a_x = W_x x + b_x          a_h = W_h h + b_h          (G*H values each)
    rnn:  h' = tanh(a_x + a_h)
    lstm: i, f, o = sigmoid(.), g = tanh(.), c' = f c + i g, h' = o tanh(c')
    gru:  r, z = sigmoid(a_x + a_h), n = tanh(a_x,n + r a_h,n),
          h' = (1 - z) n + z h

Weights are stored transposed (``W_x`` as ``(in, G*H)``), so the forward pass
and every gradient are contiguous axpys and dot products.
"""

import math

import numpy as np
from numba import njit

from .. import config
from ._math import act_sigmoid, act_tanh
from ._memory import copy_into, fetch_add, prefetch, unowned
from .layout import (
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
    L_BUF,
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
    L_PERSIST,
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
    SCRATCH_SLOTS,
)

_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy", fastmath=config.FASTMATH)

# Loops index views of ``buf`` with range variables only: an index computed
# from an offset could be negative as far as LLVM knows, and the wraparound
# check that Numba then emits stops vectorisation (measured 8x slower).


@njit(inline="always")
def vec(buf, offset, n):
    return buf[offset : offset + n]


@njit(inline="always")
def mat_row(buf, offset, cols, j):
    """Row ``j`` of the row-major matrix with ``cols`` columns at ``offset``
    (a slice: a 2-D view by ``reshape`` costs ~13 ns a call)."""
    return buf[offset + j * cols : offset + (j + 1) * cols]


@njit(inline="always")
def check_same_length(a, n):
    """Raise if ``a`` does not hold ``n`` values (a view of ``buf`` cut short
    by its end): a constant message, where the shape-formatting one of
    Numba's slice assignment costs seconds of compilation."""
    if a.shape[0] != n:
        raise ValueError("cannot assign slice from input of different size")


@njit(inline="always")
def accumulate_matvec(a, buf, offset, n, x):
    """``a += x @ W`` for the ``(n, m)`` matrix ``W`` at ``offset`` (``m`` the
    length of ``a``): rows taken eight (then four) at a time, which cuts the
    loads and stores of ``a`` (3x faster at 32 x 128 in float32 than one row
    at a time)."""
    m = a.shape[0]
    j = 0
    while j + 8 <= n:
        x0, x1, x2, x3 = x[j], x[j + 1], x[j + 2], x[j + 3]
        x4, x5, x6, x7 = x[j + 4], x[j + 5], x[j + 6], x[j + 7]
        w0, w1 = mat_row(buf, offset, m, j), mat_row(buf, offset, m, j + 1)
        w2, w3 = mat_row(buf, offset, m, j + 2), mat_row(buf, offset, m, j + 3)
        w4, w5 = mat_row(buf, offset, m, j + 4), mat_row(buf, offset, m, j + 5)
        w6, w7 = mat_row(buf, offset, m, j + 6), mat_row(buf, offset, m, j + 7)
        for k in range(m):
            a[k] += ((x0 * w0[k] + x1 * w1[k]) + (x2 * w2[k] + x3 * w3[k])) + (
                (x4 * w4[k] + x5 * w5[k]) + (x6 * w6[k] + x7 * w7[k])
            )
        j += 8
    while j + 4 <= n:
        x0, x1, x2, x3 = x[j], x[j + 1], x[j + 2], x[j + 3]
        w0, w1 = mat_row(buf, offset, m, j), mat_row(buf, offset, m, j + 1)
        w2, w3 = mat_row(buf, offset, m, j + 2), mat_row(buf, offset, m, j + 3)
        for k in range(m):
            a[k] += (x0 * w0[k] + x1 * w1[k]) + (x2 * w2[k] + x3 * w3[k])
        j += 4
    while j < n:
        xj = x[j]
        w = mat_row(buf, offset, m, j)
        for k in range(m):
            a[k] += xj * w[k]
        j += 1


@njit(inline="always")
def ring_row(rows, start, s, k2, stride):
    """Offset of step ``s`` of a window that starts at ring row ``start``
    (both < k2); a subtraction, not a modulo, in the inner loops."""
    r = start + s
    if r >= k2:
        r -= k2
    return rows + r * stride


# ----------------------------------------------------------------- forward


# The activations as small compiled functions, which LLVM inlines into the
# loops below and vectorises as before: inlined by Numba instead, their
# bodies were typed anew in each of the forward step's fourteen loops, seconds
# of a cold start's compilation.


@njit(**_JIT)
def sigmoid_approx(x):
    """``act_sigmoid(x, True)``."""
    return act_sigmoid(x, True)


@njit(**_JIT)
def sigmoid_exact(x):
    """``act_sigmoid(x, False)``."""
    return act_sigmoid(x, False)


@njit(**_JIT)
def tanh_approx(x):
    """``act_tanh(x, True)``."""
    return act_tanh(x, True)


@njit(**_JIT)
def tanh_exact(x):
    """``act_tanh(x, False)``."""
    return act_tanh(x, False)


# The loops that apply them are compiled once each too (LLVM inlines them
# into the forward step): inlined by Numba, each of their seven call sites
# was typed anew.


@njit(**_JIT)
def apply_sigmoid(v, approx):
    """``v[k] = sigmoid(v[k])`` in place (approximate or exact)."""
    # one branch outside the loop keeps each loop simple enough to vectorise
    if approx:
        for k in range(v.shape[0]):
            v[k] = sigmoid_approx(v[k])
    else:
        for k in range(v.shape[0]):
            v[k] = sigmoid_exact(v[k])


@njit(**_JIT)
def apply_tanh(v, approx):
    """``v[k] = tanh(v[k])`` in place (approximate or exact)."""
    if approx:
        for k in range(v.shape[0]):
            v[k] = tanh_approx(v[k])
    else:
        for k in range(v.shape[0]):
            v[k] = tanh_exact(v[k])


@njit(inline="always")
def nothing_ahead(lay):
    """``n_ahead`` for a step that fetches nothing: 0 as an int64 like the
    bank kernels' counts (a literal 0 would compile the forward step anew)."""
    return lay[L_NPARAM] * 0


@njit(inline="always")
def slice_length(ahead, n_slices, n):
    """The length of each of ``n_slices`` slices of ``ahead[:n]``, whole
    cache lines (0 when ``n`` is 0): one division per step, where one per
    slice cost 10 % of a forward step."""
    if n == 0:
        return n
    line = 64 // ahead.itemsize
    return ((n + n_slices - 1) // n_slices + line - 1) // line * line


@njit(inline="always")
def prefetch_slice(ahead, q, length, n):
    """Start fetching the ``q``-th slice of ``length`` values of
    ``ahead[:n]`` (nothing past ``n``)."""
    lo = min(q * length, n)
    prefetch_range(ahead, lo, min(length, n - lo))


@njit(**_JIT)
def cell_forward(lay, buf, layer, base, ahead, n_ahead):
    """Forward one layer at the row block ``base``: reads the input and the
    previous state stored there, writes activations and the new state.
    Meanwhile starts fetching ``ahead[:n_ahead]`` (the next model's
    parameters in a bank; ``n_ahead`` 0: nothing), its slices spread through
    the step: one before it, one after the input-side product, one after
    each eight rows of the hidden-side product and one after the
    activations. Spread so, the fetches overlap the arithmetic: one burst of
    them before the step held the core up (a bank's fleet tick 10-30 %
    faster with four slices, 10-15 % faster again with a slice per eight
    rows).

    Written as short loops over few arrays: LLVM vectorises those; one loop
    over all seven views of ``buf`` stayed scalar (2x slower for LSTM).
    """
    cell = lay[L_CELL]
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    approx = lay[L_APPROX] != 0
    nin = lay[L_INPUT] if layer == 0 else H
    p = L_PARAMS0 + 4 * layer
    bx, bh = vec(buf, lay[p + 2], GH), vec(buf, lay[p + 3], GH)
    ax, ah = vec(buf, lay[L_S_AX], GH), vec(buf, lay[L_S_AH], GH)
    xin, hp = vec(buf, base + lay[L_R_XIN], nin), vec(buf, base + lay[L_R_HP], H)
    act, aux = vec(buf, base + lay[L_R_ACT], GH), vec(buf, base + lay[L_R_AUX], H)
    blocks = (H + 7) // 8
    per_layer = blocks + 3
    q = per_layer * layer
    length = slice_length(ahead, per_layer * lay[L_LAYERS], n_ahead)

    prefetch_slice(ahead, q, length, n_ahead)
    copy_into(ax, bx)
    copy_into(ah, bh)
    # one call site for all the products (the input side, then the hidden
    # side eight rows at a time, the blocks its own loop takes): each inlined
    # copy of the product costs a second of compilation
    a, w, n, v = ax, lay[p], nin, xin
    for piece in range(1 + blocks):
        if piece > 0:
            j = 8 * (piece - 1)
            a, w, n, v = ah, lay[p + 1] + j * GH, min(8, H - j), hp[j:]
        accumulate_matvec(a, buf, w, n, v)
        prefetch_slice(ahead, q + 1 + piece, length, n_ahead)

    if cell == CELL_GRU:
        for k in range(2 * H):
            act[k] = ax[k] + ah[k]
        apply_sigmoid(act[: 2 * H], approx)
        for k in range(H):
            aux[k] = ah[2 * H + k]
            act[2 * H + k] = ax[2 * H + k] + act[k] * aux[k]
        apply_tanh(act[2 * H :], approx)
    else:
        for k in range(GH):
            act[k] = ax[k] + ah[k]
        if cell == CELL_LSTM:
            apply_sigmoid(act[: 2 * H], approx)
            apply_tanh(act[2 * H : 3 * H], approx)
            apply_sigmoid(act[3 * H :], approx)
        else:
            apply_tanh(act, approx)
    prefetch_slice(ahead, q + per_layer - 1, length, n_ahead)
    cell_state(lay, buf, base)


@njit(**_JIT)
def cell_state(lay, buf, base):
    """The new state of one layer at the row block ``base`` from its gate
    activations (and, for the GRU, ``W_hn h + b_hn``) and previous state:
    the end of :func:`cell_forward`, also run alone to rebuild a window's
    states from its compact rows, with the same operations and so the same
    values."""
    cell = lay[L_CELL]
    H = lay[L_HIDDEN]
    approx = lay[L_APPROX] != 0
    hp, cp = vec(buf, base + lay[L_R_HP], H), vec(buf, base + lay[L_R_CP], H)
    act, aux = vec(buf, base + lay[L_R_ACT], lay[L_GATES] * H), vec(buf, base + lay[L_R_AUX], H)
    hn, cn = vec(buf, base + lay[L_R_HN], H), vec(buf, base + lay[L_R_CN], H)
    one = buf.dtype.type(1.0)
    if cell == CELL_GRU:
        for k in range(H):
            z = act[H + k]
            hn[k] = (one - z) * act[2 * H + k] + z * hp[k]
    elif cell == CELL_LSTM:
        for k in range(H):
            cn[k] = act[H + k] * cp[k] + act[k] * act[2 * H + k]
        copy_into(aux, cn)
        apply_tanh(aux, approx)
        for k in range(H):
            hn[k] = act[3 * H + k] * aux[k]
    else:
        copy_into(hn, act)


@njit(**_JIT)
def head_forward(lay, buf, row):
    """Linear readout of the top layer's new hidden state into the row's
    prediction; the head's weight is stored ``(O, H)`` so each output is a
    contiguous dot product."""
    H = lay[L_HIDDEN]
    O = lay[L_OUTPUT]
    top = vec(buf, row + (lay[L_LAYERS] - 1) * lay[L_ROW_LAYER] + lay[L_R_HN], H)
    yhat = vec(buf, row + lay[L_R_YHAT], O)
    b = vec(buf, lay[L_HEAD_B], O)
    for o in range(O):
        w = mat_row(buf, lay[L_HEAD_W], H, o)
        s = b[o]
        for j in range(H):
            s += w[j] * top[j]
        yhat[o] = s


@njit(**_JIT)
def network_forward(lay, buf, x, row, state, ahead, n_ahead):
    """One time step of the stack and head.

    Copies ``x`` and the state at offset ``state`` into ``row``, computes every
    layer and the prediction there, and writes the new state back to
    ``state``. Returns False, leaving ``state`` untouched, if the new state is
    not finite. Meanwhile starts fetching ``ahead[:n_ahead]`` (see
    :func:`cell_forward`; ``ahead`` is ``buf`` and ``n_ahead`` 0 where
    nothing is to be fetched).
    """
    nl = lay[L_LAYERS]
    H = lay[L_HIDDEN]
    hs = lay[L_HSTRIDE]
    rl = lay[L_ROW_LAYER]
    xin0 = vec(buf, row + lay[L_R_XIN], lay[L_INPUT])
    for j in range(lay[L_INPUT]):  # (a loop: ``x`` may be of another dtype or layout)
        xin0[j] = x[j]
    # the copies within ``buf`` as memcpy calls (:func:`copy_into`): as loops
    # over views of one buffer, each compiled to an overlap check, a
    # vectorised body and its remainders, in every kernel linking this step
    for layer in range(nl):
        base = row + layer * rl
        if layer > 0:
            copy_into(vec(buf, base + lay[L_R_XIN], H), vec(buf, base - rl + lay[L_R_HN], H))
        s = state + 2 * layer * hs
        copy_into(vec(buf, base + lay[L_R_HP], H), vec(buf, s, H))
        copy_into(vec(buf, base + lay[L_R_CP], H), vec(buf, s + hs, H))
        cell_forward(lay, buf, layer, base, ahead, n_ahead)
    head_forward(lay, buf, row)

    finite = True
    for layer in range(nl):
        base = row + layer * rl
        if not (all_finite(vec(buf, base + lay[L_R_HN], H)) and all_finite(vec(buf, base + lay[L_R_CN], H))):
            finite = False
    if finite:
        for layer in range(nl):
            base = row + layer * rl
            s = state + 2 * layer * hs
            copy_into(vec(buf, s, H), vec(buf, base + lay[L_R_HN], H))
            copy_into(vec(buf, s + hs, H), vec(buf, base + lay[L_R_CN], H))
    return finite


@njit(**_JIT)
def all_finite(v):
    ok = True
    for j in range(v.shape[0]):
        ok &= math.isfinite(v[j])
    return ok


@njit(**_JIT)
def predict_one(lay, buf, x, out):
    """The prediction for ``x`` from the carried state, into ``out``, without
    changing the state; NaN if ``x`` or the new state is not finite."""
    buf, x, out = unowned(buf), unowned(x), unowned(out)
    n = 2 * lay[L_LAYERS] * lay[L_HSTRIDE]
    copy_into(vec(buf, lay[L_PSTATE], n), vec(buf, lay[L_STATE], n))
    row = lay[L_PRED]
    if all_finite(x) and network_forward(lay, buf, x, row, lay[L_PSTATE], buf, nothing_ahead(lay)):
        copy_into(out, vec(buf, row + lay[L_R_YHAT], out.shape[0]))
    else:
        out[:] = np.nan


@njit(**_JIT)
def predict_many(lay, buf, X, out):
    """Predictions for the rows of ``X`` run on from the carried state,
    without changing it. A row with a non-finite value gives NaN and does not
    advance the scratch state."""
    buf, X, out = unowned(buf), unowned(X), unowned(out)
    n = 2 * lay[L_LAYERS] * lay[L_HSTRIDE]
    copy_into(vec(buf, lay[L_PSTATE], n), vec(buf, lay[L_STATE], n))
    row = lay[L_PRED]
    yhat = vec(buf, row + lay[L_R_YHAT], out.shape[1])
    check_same_length(yhat, out.shape[1])
    for t in range(X.shape[0]):
        if all_finite(X[t]) and network_forward(lay, buf, X[t], row, lay[L_PSTATE], buf, nothing_ahead(lay)):
            copy_into(out[t], yhat)
        else:
            out[t] = np.nan


@njit(**_JIT)
def predict_each(lay, buf, X, out):
    """For each row of ``X`` independently, the prediction of one step from
    the carried state (``predict_one`` row by row); changes no state."""
    buf, X, out = unowned(buf), unowned(X), unowned(out)
    for t in range(X.shape[0]):
        predict_one(lay, buf, X[t], out[t])


@njit(**_JIT)
def forecast_recursive(lay, buf, U, feedback, out):
    """Run the rows of ``U`` from the carried state without changing it,
    feeding predictions back: for each pair ``(column, lag)`` of
    ``feedback``, row ``k`` reads ``out[k - lag, 0]`` in that column when
    ``k >= lag`` (earlier rows keep the value given in ``U``, the known
    history). ``U`` is overwritten with the inputs used; a non-finite row
    gives NaN and does not advance the scratch state."""
    buf, U, out = unowned(buf), unowned(U), unowned(out)
    n = 2 * lay[L_LAYERS] * lay[L_HSTRIDE]
    copy_into(vec(buf, lay[L_PSTATE], n), vec(buf, lay[L_STATE], n))
    row = lay[L_PRED]
    yhat = vec(buf, row + lay[L_R_YHAT], out.shape[1])
    check_same_length(yhat, out.shape[1])
    for k in range(U.shape[0]):
        for f in range(feedback.shape[0]):
            lag = feedback[f, 1]
            if k >= lag:
                U[k, feedback[f, 0]] = out[k - lag, 0]
        if all_finite(U[k]) and network_forward(lay, buf, U[k], row, lay[L_PSTATE], buf, nothing_ahead(lay)):
            copy_into(out[k], yhat)
        else:
            out[k] = np.nan


# ---------------------------------------------------------------- backward


@njit(**_JIT)
def cell_backward(lay, buf, layer, base, need_din):
    """Backward one layer through one step at the row block ``base``.

    Inputs: ``din`` (gradient arriving from the layer above or the head) plus
    the recurrent gradients ``dh``/``dc`` of this layer carried from the next
    step. Writes the gradients of the step's pre-activations to the row
    (``dax``, ``dah``; the weight gradients are formed from them once per
    window, in :func:`accumulate_weight_gradients`), leaves the gradients with
    respect to the previous state in ``dh``/``dc`` and, when ``need_din``, the
    gradient with respect to this layer's input in ``din``.
    """
    cell = lay[L_CELL]
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    hs = lay[L_HSTRIDE]
    nin = lay[L_INPUT] if layer == 0 else H
    p = L_PARAMS0 + 4 * layer
    dax, dah = vec(buf, base + lay[L_R_DAX], GH), vec(buf, base + lay[L_R_DAH], GH)
    din, gh = vec(buf, lay[L_S_DIN], max(nin, H)), vec(buf, lay[L_S_GH], H)
    dh = vec(buf, lay[L_S_DH] + layer * hs, H)
    dc = vec(buf, lay[L_S_DC] + layer * hs, H)
    hp, cp = vec(buf, base + lay[L_R_HP], H), vec(buf, base + lay[L_R_CP], H)
    act, aux = vec(buf, base + lay[L_R_ACT], GH), vec(buf, base + lay[L_R_AUX], H)
    one = buf.dtype.type(1.0)

    # gradient with respect to the new hidden state; gh then holds the part
    # of the gradient of the previous state that bypasses the weights.
    # Each loop writes one array and reads few: LLVM vectorises such loops
    # (one loop over all the arrays needs more runtime alias checks than it
    # allows, and stays scalar).
    for k in range(H):
        gh[k] = dh[k] + din[k]

    if cell == CELL_LSTM:
        i, f, g, o = act[:H], act[H : 2 * H], act[2 * H : 3 * H], act[3 * H :]
        di, df, dg, do = dax[:H], dax[H : 2 * H], dax[2 * H : 3 * H], dax[3 * H :]
        for k in range(H):
            dc[k] += gh[k] * o[k] * (one - aux[k] * aux[k])
        for k in range(H):
            di[k] = dc[k] * g[k] * i[k] * (one - i[k])
        for k in range(H):
            df[k] = dc[k] * cp[k] * f[k] * (one - f[k])
        for k in range(H):
            dg[k] = dc[k] * i[k] * (one - g[k] * g[k])
        for k in range(H):
            do[k] = gh[k] * aux[k] * o[k] * (one - o[k])
        for k in range(H):
            dc[k] *= f[k]
        gh[:] = 0
        copy_into(dah, dax)
    elif cell == CELL_GRU:
        r, z, n = act[:H], act[H : 2 * H], act[2 * H :]
        dr, dz, dn = dax[:H], dax[H : 2 * H], dax[2 * H :]
        for k in range(H):
            dn[k] = gh[k] * (one - z[k]) * (one - n[k] * n[k])
        for k in range(H):
            dr[k] = dn[k] * aux[k] * r[k] * (one - r[k])
        for k in range(H):
            dz[k] = gh[k] * (hp[k] - n[k]) * z[k] * (one - z[k])
        copy_into(dah[: 2 * H], dax[: 2 * H])
        dhn = dah[2 * H :]
        for k in range(H):
            dhn[k] = dn[k] * r[k]
        for k in range(H):
            gh[k] *= z[k]
    else:
        for k in range(H):
            dax[k] = gh[k] * (one - act[k] * act[k])
        gh[:] = 0
        copy_into(dah, dax)

    if need_din:
        for j in range(nin):
            w = mat_row(buf, lay[p], GH, j)
            s = buf.dtype.type(0.0)
            for k in range(GH):
                s += w[k] * dax[k]
            din[j] = s
    for j in range(H):
        w = mat_row(buf, lay[p + 1], GH, j)
        s = buf.dtype.type(0.0)
        for k in range(GH):
            s += w[k] * dah[k]
        dh[j] = s + gh[j]


@njit(**_JIT)
def accumulate_outer(lay, buf, g, n_in, m, rows, start, n_rows, at, x_slot, d_slot):
    """``gW[j, :] += sum over the window's steps s of x_s[j] * d_s`` for the
    ``(n_in, m)`` gradient matrix ``gW`` at offset ``g``, where
    ``x_s`` and ``d_s`` are the vectors at ``x_slot`` and ``d_slot`` of the
    layer block at offset ``at`` of step s's row. Steps are taken four at a
    time, which cuts the loads and stores of ``gW`` fourfold."""
    k2, rs = lay[L_K2], lay[L_ROW]
    for j in range(n_in):
        gw = mat_row(buf, g, m, j)
        s = 0
        while s + 4 <= n_rows:
            b0 = ring_row(rows, start, s, k2, rs) + at
            b1 = ring_row(rows, start, s + 1, k2, rs) + at
            b2 = ring_row(rows, start, s + 2, k2, rs) + at
            b3 = ring_row(rows, start, s + 3, k2, rs) + at
            x0, x1, x2, x3 = buf[b0 + x_slot + j], buf[b1 + x_slot + j], buf[b2 + x_slot + j], buf[b3 + x_slot + j]
            d0, d1 = vec(buf, b0 + d_slot, m), vec(buf, b1 + d_slot, m)
            d2, d3 = vec(buf, b2 + d_slot, m), vec(buf, b3 + d_slot, m)
            for k in range(m):
                gw[k] += (x0 * d0[k] + x1 * d1[k]) + (x2 * d2[k] + x3 * d3[k])
            s += 4
        while s < n_rows:
            b0 = ring_row(rows, start, s, k2, rs) + at
            x0 = buf[b0 + x_slot + j]
            d0 = vec(buf, b0 + d_slot, m)
            for k in range(m):
                gw[k] += x0 * d0[k]
            s += 1


@njit(**_JIT)
def accumulate_weight_gradients(lay, buf, rows, start, n_rows):
    """Each layer's weight and bias gradients from the pre-activation
    gradients that :func:`cell_backward` left in the window's rows."""
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    k2, rs, rl = lay[L_K2], lay[L_ROW], lay[L_ROW_LAYER]
    g0 = lay[L_GRAD]
    for layer in range(lay[L_LAYERS]):
        nin = lay[L_INPUT] if layer == 0 else H
        p = L_PARAMS0 + 4 * layer
        gbx, gbh = vec(buf, g0 + lay[p + 2], GH), vec(buf, g0 + lay[p + 3], GH)
        at = layer * rl
        for s in range(n_rows):
            base = ring_row(rows, start, s, k2, rs) + at
            dax, dah = vec(buf, base + lay[L_R_DAX], GH), vec(buf, base + lay[L_R_DAH], GH)
            for k in range(GH):
                gbx[k] += dax[k]
            for k in range(GH):
                gbh[k] += dah[k]
        accumulate_outer(lay, buf, g0 + lay[p], nin, GH, rows, start, n_rows, at, lay[L_R_XIN], lay[L_R_DAX])
        accumulate_outer(lay, buf, g0 + lay[p + 1], H, GH, rows, start, n_rows, at, lay[L_R_HP], lay[L_R_DAH])


@njit(**_JIT)
def window_backward(lay, buf, rows, start, n_rows, n_loss):
    """Backpropagate the loss of the last ``n_loss`` of ``n_rows`` steps.

    Step ``s`` of the window is stored in row ``rows + ((start + s) % k2) *
    stride``; the state before the first step is treated as a constant. The
    loss is the mean over those steps and outputs of the squared error
    (PyTorch's ``MSELoss``) or the Huber loss (``HuberLoss(delta)``), or the
    mean over those steps of the cross-entropy of the softmax of the outputs
    against target probabilities (``CrossEntropyLoss``).
    Overwrites the gradient region of ``buf`` and returns the loss.
    """
    t = buf.dtype.type
    nl = lay[L_LAYERS]
    H = lay[L_HIDDEN]
    O = lay[L_OUTPUT]
    hs = lay[L_HSTRIDE]
    k2 = lay[L_K2]
    rs, rl = lay[L_ROW], lay[L_ROW_LAYER]
    g0 = lay[L_GRAD]
    din = vec(buf, lay[L_S_DIN], H)
    huber = lay[L_LOSS] == LOSS_HUBER
    delta = buf[lay[L_HP] + HP_HUBER_DELTA]
    gb = vec(buf, g0 + lay[L_HEAD_B], O)

    vec(buf, g0, lay[L_NPARAM])[:] = 0
    vec(buf, lay[L_S_DH], nl * hs)[:] = 0
    vec(buf, lay[L_S_DC], nl * hs)[:] = 0

    cross_entropy = lay[L_LOSS] == LOSS_CROSS_ENTROPY
    scale = t(1.0) / t(n_loss if cross_entropy else n_loss * O)
    loss = t(0.0)
    for s in range(n_rows - 1, -1, -1):
        row = ring_row(rows, start, s, k2, rs)
        din[:] = 0
        if s >= n_rows - n_loss:
            top = vec(buf, row + (nl - 1) * rl + lay[L_R_HN], H)
            yhat, y = vec(buf, row + lay[L_R_YHAT], O), vec(buf, row + lay[L_R_Y], O)
            m = log_z = t(0.0)
            if cross_entropy:  # softmax of the outputs against target probabilities
                m = yhat[0]
                for o in range(1, O):
                    m = max(m, yhat[o])
                z = t(0.0)
                for o in range(O):
                    z += math.exp(yhat[o] - m)
                log_z = math.log(z)
            for o in range(O):
                d = yhat[o] - y[o]
                if cross_entropy:
                    log_p = yhat[o] - m - log_z
                    loss -= y[o] * log_p
                    g = (math.exp(log_p) - y[o]) * scale
                elif huber and abs(d) > delta:
                    loss += delta * (abs(d) - t(0.5) * delta)
                    g = delta * scale if d > 0 else -delta * scale
                elif huber:
                    loss += t(0.5) * d * d
                    g = d * scale
                else:
                    loss += d * d
                    g = t(2.0) * d * scale
                gb[o] += g
                gw, w = mat_row(buf, g0 + lay[L_HEAD_W], H, o), mat_row(buf, lay[L_HEAD_W], H, o)
                for j in range(H):
                    gw[j] += top[j] * g
                for j in range(H):
                    din[j] += w[j] * g
        for layer in range(nl - 1, -1, -1):
            cell_backward(lay, buf, layer, row + layer * rl, layer > 0)
    accumulate_weight_gradients(lay, buf, rows, start, n_rows)
    return loss * scale


# --------------------------------------------------------------- optimizers


@njit(**_JIT)  # (compiled once: inlined by Numba, each of its two call sites was typed anew)
def apply_update(opt, theta, grad, m1, m2, hp, gscale, n_updates):
    """One optimizer step in place, ``torch.optim``'s formulas (SGD with
    momentum, RMSprop, Adam, AdamW) on the gradient scaled by ``gscale``.
    Returns the sums of squares of the new parameters and of the moments the
    optimizer uses (0 for the others), taken on the way (for the next
    step's :func:`update_bound`)."""
    t = theta.dtype.type
    P = theta.shape[0]
    lr = hp[HP_LR]
    wd = hp[HP_WEIGHT_DECAY]
    eps = hp[HP_EPS]
    st = sm = sv = t(0.0)
    if opt == OPT_SGD:
        mom = hp[HP_MOMENTUM]
        for j in range(P):
            g = grad[j] * gscale + wd * theta[j]
            m = mom * m1[j] + g
            m1[j] = m
            theta[j] -= lr * m
            st += theta[j] * theta[j]
            sm += m * m
    elif opt == OPT_RMSPROP:
        alpha = hp[HP_ALPHA]
        for j in range(P):
            g = grad[j] * gscale + wd * theta[j]
            v = alpha * m2[j] + (t(1.0) - alpha) * g * g
            m2[j] = v
            theta[j] -= lr * g / (math.sqrt(v) + eps)
            st += theta[j] * theta[j]
            sv += v * v
    else:
        b1 = hp[HP_BETA1]
        b2 = hp[HP_BETA2]
        n = n_updates + 1
        step = lr / t(1.0 - b1**n)
        rbc2 = t(1.0) / t(math.sqrt(1.0 - b2**n))
        decay = t(1.0)
        l2 = wd
        if opt == OPT_ADAMW:
            decay = t(1.0) - lr * wd
            l2 = t(0.0)
        for j in range(P):
            g = grad[j] * gscale + l2 * theta[j]
            m = b1 * m1[j] + (t(1.0) - b1) * g
            v = b2 * m2[j] + (t(1.0) - b2) * g * g
            m1[j] = m
            m2[j] = v
            theta[j] = theta[j] * decay - step * m / (math.sqrt(v) * rbc2 + eps)
            st += theta[j] * theta[j]
            sm += m * m
            sv += v * v
    return float(st), float(sm), float(sv)


@njit(inline="always")
def sums_of_squares(theta, m1, m2, opt):
    """The sums of squares of the parameters and of the moments that ``opt``
    uses (0 for the others), in one pass."""
    t = theta.dtype.type
    st = sm = sv = t(0.0)
    if opt == OPT_SGD:
        for j in range(theta.shape[0]):
            st += theta[j] * theta[j]
            sm += m1[j] * m1[j]
    elif opt == OPT_RMSPROP:
        for j in range(theta.shape[0]):
            st += theta[j] * theta[j]
            sv += m2[j] * m2[j]
    else:
        for j in range(theta.shape[0]):
            st += theta[j] * theta[j]
            sm += m1[j] * m1[j]
            sv += m2[j] * m2[j]
    return float(st), float(sm), float(sv)


#: Norms not known: :func:`optimizer_step` reads the parameters and moments
#: for them. (A kernel call starts so, and carries the norms each update
#: leaves from one update to the next: nothing else writes the weights
#: meanwhile.)
NO_NORMS = (0.0, 0.0, 0.0, 0.0)


@njit(inline="always")
def update_bound(opt, sums, hp, grad_norm, n_updates):
    """An upper bound, in float64, on the magnitude of every value an
    optimizer step computes (the new parameters and moments and the terms on
    the way, in any order fast-math may evaluate them: a quotient as a
    product with ``1 / (... + eps) <= 1 / eps``), from the norms of the
    gradient, parameters and moments (``sums``: their sums of squares;
    infinite if one overflowed). Far below the dtype's largest float, the
    step cannot write a non-finite value."""
    T, M, V = math.sqrt(sums[0]), math.sqrt(sums[1]), math.sqrt(sums[2])
    lr, wd, eps = float(hp[HP_LR]), float(hp[HP_WEIGHT_DECAY]), float(hp[HP_EPS])
    inv = 1.0 / eps
    if opt == OPT_SGD:
        g = grad_norm + wd * T
        m = float(hp[HP_MOMENTUM]) * M + g
        return T + lr * m + m + g
    if opt == OPT_RMSPROP:
        g = grad_norm + wd * T
        return T + (lr + 1.0) * g * (1.0 + inv) + inv + g * g + V + g
    b1, b2 = float(hp[HP_BETA1]), float(hp[HP_BETA2])
    n = n_updates + 1
    step = lr / (1.0 - b1**n)
    rbc2 = 1.0 / math.sqrt(1.0 - b2**n)
    decay, l2 = 1.0, wd
    if opt == OPT_ADAMW:
        decay, l2 = abs(1.0 - lr * wd), 0.0
    g = grad_norm + l2 * T
    m = M + g
    v = V + g * g
    return T * (1.0 + decay + lr * wd) + (step + 1.0) * (1.0 + m * (1.0 + inv)) + inv + v + math.sqrt(v) * rbc2 + m


@njit(**_JIT)
def optimizer_step(lay, ctr, buf, norms):
    """Clip the gradient to its global norm and apply one optimizer step.

    Returns ``(applied, norms)``. Not applied, changing nothing, when the
    gradient is not finite or the step would write a non-finite parameter
    or moment (an overflow: a huge learning rate or gradient): the step is
    rolled back and counted in ``ctr[C_OVERFLOWS]``. Formulas follow
    ``torch.optim`` (SGD with momentum, RMSprop, Adam, AdamW) and
    ``torch.nn.utils.clip_grad_norm_``.

    A cheap bound (:func:`update_bound`) shows most steps safe: from
    ``norms`` (``(1.0, sums of squares...)`` as the last step of this kernel
    call left them) or, without them (:data:`NO_NORMS`), from one read of the
    parameters and moments. Only a step it cannot vouch for keeps a copy to
    roll back to and checks what it wrote.
    """
    t = buf.dtype.type
    P = lay[L_NPARAM]
    theta = vec(buf, 0, P)
    grad, m1, m2 = vec(buf, lay[L_GRAD], P), vec(buf, lay[L_M], P), vec(buf, lay[L_V], P)
    hp = vec(buf, lay[L_HP], HP_ALPHA + 1)
    clip = hp[HP_CLIP]
    opt = lay[L_OPT]

    sq = t(0.0)
    for j in range(P):
        sq += grad[j] * grad[j]
    if not math.isfinite(sq):
        return False, norms
    norm = math.sqrt(sq)
    gscale = t(1.0)
    if clip > 0:
        gscale = min(clip / (norm + t(1e-6)), t(1.0))

    n_updates = ctr[C_UPDATES]
    sums = (norms[1], norms[2], norms[3])
    if norms[0] == 0.0:
        sums = sums_of_squares(theta, m1, m2, opt)
    if update_bound(opt, sums, hp, float(norm) * float(gscale), n_updates) < 0.25 * np.finfo(buf.dtype).max:
        st, sm, sv = apply_update(opt, theta, grad, m1, m2, hp, gscale, n_updates)
        return True, (1.0, st, sm, sv)
    saved = np.empty(3 * P, dtype=buf.dtype)  # the rare step that might overflow: written, checked, rolled back
    copy_into(saved[:P], theta)
    copy_into(saved[P : 2 * P], m1)
    copy_into(saved[2 * P :], m2)
    st, sm, sv = apply_update(opt, theta, grad, m1, m2, hp, gscale, n_updates)
    if all_finite(theta) and all_finite(m1) and all_finite(m2):
        return True, (1.0, st, sm, sv)
    copy_into(theta, saved[:P])
    copy_into(m1, saved[P : 2 * P])
    copy_into(m2, saved[2 * P :])
    ctr[C_OVERFLOWS] += 1
    return False, (1.0, sums[0], sums[1], sums[2])


# ------------------------------------------------------------- TBPTT driver
# ``learn_step`` and the two functions only it calls are inlined by Numba into
# the kernels that call them (short bodies, typed anew in each caller): each
# separately compiled level would have LLVM optimise and compile its whole
# call tree once more (measured: 8 of a cold start's 35 CPU seconds).


@njit(inline="always")
def compact_row(lay, s_start, s):
    """Offset of the compact row of step ``s`` of the window that starts at
    ring row ``s_start``."""
    return ring_row(lay[L_CACHE], s_start, s, lay[L_K2], lay[L_CROW])


@njit(**_JIT)
def store_compact(lay, buf, row, crow):
    """Keep of the full row ``row`` what the window needs in the compact row
    ``crow``: input, target, prediction and each layer's gate activations
    (and the GRU's ``W_hn h + b_hn``)."""
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    rl, cl = lay[L_ROW_LAYER], lay[L_CROW_LAYER]
    copy_into(vec(buf, crow + lay[L_C_X], lay[L_INPUT]), vec(buf, row + lay[L_R_XIN], lay[L_INPUT]))
    copy_into(vec(buf, crow + lay[L_C_Y], lay[L_OUTPUT]), vec(buf, row + lay[L_R_Y], lay[L_OUTPUT]))
    copy_into(vec(buf, crow + lay[L_C_YHAT], lay[L_OUTPUT]), vec(buf, row + lay[L_R_YHAT], lay[L_OUTPUT]))
    for layer in range(lay[L_LAYERS]):
        c, base = crow + lay[L_C_LAYER0] + layer * cl, row + layer * rl
        copy_into(vec(buf, c + lay[L_C_ACT], GH), vec(buf, base + lay[L_R_ACT], GH))
        if lay[L_CELL] == CELL_GRU:
            copy_into(vec(buf, c + lay[L_C_AUX], H), vec(buf, base + lay[L_R_AUX], H))


@njit(**_JIT)
def expand_row(lay, buf, crow, row):
    """Rebuild the full row ``row`` of a step from its compact row ``crow``
    and the previous state already in ``row`` (each layer's ``hp``, ``cp``):
    input, activations, new states (the forward pass's operations, so its
    values), target and prediction."""
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    rl, cl = lay[L_ROW_LAYER], lay[L_CROW_LAYER]
    copy_into(vec(buf, row + lay[L_R_XIN], lay[L_INPUT]), vec(buf, crow + lay[L_C_X], lay[L_INPUT]))
    for layer in range(lay[L_LAYERS]):
        c, base = crow + lay[L_C_LAYER0] + layer * cl, row + layer * rl
        if layer > 0:
            copy_into(vec(buf, base + lay[L_R_XIN], H), vec(buf, base - rl + lay[L_R_HN], H))
        copy_into(vec(buf, base + lay[L_R_ACT], GH), vec(buf, c + lay[L_C_ACT], GH))
        if lay[L_CELL] == CELL_GRU:
            copy_into(vec(buf, base + lay[L_R_AUX], H), vec(buf, c + lay[L_C_AUX], H))
        cell_state(lay, buf, base)
    copy_into(vec(buf, row + lay[L_R_Y], lay[L_OUTPUT]), vec(buf, crow + lay[L_C_Y], lay[L_OUTPUT]))
    copy_into(vec(buf, row + lay[L_R_YHAT], lay[L_OUTPUT]), vec(buf, crow + lay[L_C_YHAT], lay[L_OUTPUT]))


@njit(inline="always")
def state_into_row(lay, buf, state, row):
    """Each layer's ``h``, ``c`` from the state at ``state`` into ``row``'s
    ``hp``, ``cp``."""
    H, hs, rl = lay[L_HIDDEN], lay[L_HSTRIDE], lay[L_ROW_LAYER]
    for layer in range(lay[L_LAYERS]):
        s, base = state + 2 * layer * hs, row + layer * rl
        copy_into(vec(buf, base + lay[L_R_HP], H), vec(buf, s, H))
        copy_into(vec(buf, base + lay[L_R_CP], H), vec(buf, s + hs, H))


@njit(**_JIT)
def advance_window_state(lay, buf, oldest):
    """Move the window's start state past its oldest step, at ring row
    ``oldest`` (about to be overwritten): the state that step left, rebuilt
    in the single-step row."""
    H, hs, rl = lay[L_HIDDEN], lay[L_HSTRIDE], lay[L_ROW_LAYER]
    row, ws = lay[L_PRED], lay[L_WSTATE]
    state_into_row(lay, buf, ws, row)
    expand_row(lay, buf, lay[L_CACHE] + oldest * lay[L_CROW], row)
    for layer in range(lay[L_LAYERS]):
        s, base = ws + 2 * layer * hs, row + layer * rl
        copy_into(vec(buf, s, H), vec(buf, base + lay[L_R_HN], H))
        copy_into(vec(buf, s + hs, H), vec(buf, base + lay[L_R_CN], H))


@njit(**_JIT)
def expand_window(lay, buf, start, n_rows):
    """The window's ``n_rows`` steps from ring row ``start`` as full rows,
    from the first row of the full rows region on: states rebuilt from the
    start state and the compact rows."""
    rs = lay[L_ROW]
    rows = lay[L_RCACHE]
    state_into_row(lay, buf, lay[L_WSTATE], rows)
    H, rl = lay[L_HIDDEN], lay[L_ROW_LAYER]
    for s in range(n_rows):
        row = rows + s * rs
        if s > 0:
            for layer in range(lay[L_LAYERS]):
                base = row + layer * rl
                copy_into(vec(buf, base + lay[L_R_HP], H), vec(buf, base - rs + lay[L_R_HN], H))
                copy_into(vec(buf, base + lay[L_R_CP], H), vec(buf, base - rs + lay[L_R_CN], H))
        expand_row(lay, buf, compact_row(lay, start, s), row)


@njit(inline="always")
def recompute_window(lay, buf, start, n_rows):
    """Re-run the window's steps with the current weights into the full
    rows, from the state before its first step. Returns False if a state
    went non-finite."""
    n = 2 * lay[L_LAYERS] * lay[L_HSTRIDE]
    rs = lay[L_ROW]
    O = lay[L_OUTPUT]
    ps = lay[L_PSTATE]
    copy_into(vec(buf, ps, n), vec(buf, lay[L_WSTATE], n))
    for s in range(n_rows):
        src = compact_row(lay, start, s)
        dst = lay[L_RCACHE] + s * rs
        if not network_forward(lay, buf, vec(buf, src + lay[L_C_X], lay[L_INPUT]), dst, ps, buf, nothing_ahead(lay)):
            return False
        copy_into(vec(buf, dst + lay[L_R_Y], O), vec(buf, src + lay[L_C_Y], O))
    return True


@njit(inline="always")
def tbptt_update(lay, ctr, buf, norms):
    """One TBPTT(k1, k2) update over the stored window. Returns whether the
    weights changed (a skipped update is counted in ``ctr[C_SKIPPED]``) and
    the norms :func:`optimizer_step` carries to the next update."""
    k1, k2 = lay[L_K1], lay[L_K2]
    n_rows = ctr[C_FILL]
    n_loss = min(k1, n_rows)
    start = (ctr[C_POS] - n_rows + k2) % k2
    for s in range(n_rows - n_loss, n_rows):
        if not all_finite(vec(buf, compact_row(lay, start, s) + lay[L_C_Y], lay[L_OUTPUT])):
            ctr[C_SKIPPED] += 1
            return False, norms
    if lay[L_RECOMPUTE] != 0 and k1 < k2:
        if not recompute_window(lay, buf, start, n_rows):
            ctr[C_SKIPPED] += 1
            return False, norms
    else:
        expand_window(lay, buf, start, n_rows)
    loss = window_backward(lay, buf, lay[L_RCACHE], 0, n_rows, n_loss)
    if not math.isfinite(loss):
        ctr[C_SKIPPED] += 1
        return False, norms
    applied, norms = optimizer_step(lay, ctr, buf, norms)
    if not applied:
        ctr[C_SKIPPED] += 1
        return False, norms
    ctr[C_UPDATES] += 1
    return True, norms


@njit(**_JIT)
def reset_window(lay, ctr, buf):
    """Zero the carried state and forget the stored window."""
    vec(buf, lay[L_STATE], 2 * lay[L_LAYERS] * lay[L_HSTRIDE])[:] = 0
    ctr[C_FILL] = 0
    ctr[C_SINCE] = 0


@njit(inline="always")
def learn_step(lay, ctr, buf, x, y, out, norms, ahead, n_ahead):
    """One online step: predict ``x`` from the carried state into ``out``,
    store the step in the TBPTT window, advance the state, and update the
    weights every k1 steps; fetching ``ahead[:n_ahead]`` during the forward
    step (see :func:`cell_forward`; ``n_ahead`` 0: nothing).

    Non-finite policy: a non-finite ``x`` is skipped whole (state not
    advanced, ``out`` NaN, counted); a non-finite target or loss skips the
    update (counted); an update that would write a non-finite parameter or
    moment is rolled back and skipped (counted, and in ``ctr[C_OVERFLOWS]``);
    a state that went non-finite is reset to zero along with the window
    (counted in ``ctr[C_RESETS]``).
    """
    O = lay[L_OUTPUT]
    k1, k2 = lay[L_K1], lay[L_K2]
    if not all_finite(x):
        ctr[C_SKIPPED] += 1
        out[:] = np.nan
        return norms
    # the state before the window's oldest step: the carried state when the
    # window starts (empty, or, with k1 >= k2, the next update's first step
    # here); with k1 < k2 moved past the step this one overwrites
    if ctr[C_FILL] == 0 or (k1 >= k2 and ctr[C_SINCE] == k1 - k2):
        n = 2 * lay[L_LAYERS] * lay[L_HSTRIDE]
        copy_into(vec(buf, lay[L_WSTATE], n), vec(buf, lay[L_STATE], n))
    elif ctr[C_FILL] == k2 and k1 < k2:
        advance_window_state(lay, buf, ctr[C_POS])
    row = lay[L_PRED]
    ok = network_forward(lay, buf, x, row, lay[L_STATE], ahead, n_ahead)
    copy_into(out, vec(buf, row + lay[L_R_YHAT], O))
    copy_into(vec(buf, row + lay[L_R_Y], O), y)
    ctr[C_STEPS] += 1
    if not ok:
        reset_window(lay, ctr, buf)
        ctr[C_RESETS] += 1
        ctr[C_SKIPPED] += 1
        return norms
    store_compact(lay, buf, row, lay[L_CACHE] + ctr[C_POS] * lay[L_CROW])
    ctr[C_POS] = (ctr[C_POS] + 1) % k2
    ctr[C_FILL] = min(ctr[C_FILL] + 1, k2)
    ctr[C_SINCE] += 1
    if ctr[C_SINCE] >= k1:
        ctr[C_SINCE] = 0
        norms = tbptt_update(lay, ctr, buf, norms)[1]
    return norms


@njit(**_JIT)
def learn_one(lay, ctr, buf, x, y, out):
    """:func:`learn_step` of one sample (the weights' norms not known)."""
    buf, x, y, out = unowned(buf), unowned(x), unowned(y), unowned(out)
    learn_step(lay, ctr, buf, x, y, out, NO_NORMS, buf, nothing_ahead(lay))


@njit(**_JIT)
def learn_many(lay, ctr, buf, X, Y, out):
    """``learn_one`` over the rows of ``X`` and ``Y``; predictions to ``out``
    (each update passing the weights' norms on to the next)."""
    buf, X, Y, out = unowned(buf), unowned(X), unowned(Y), unowned(out)
    norms = NO_NORMS
    for t in range(X.shape[0]):
        norms = learn_step(lay, ctr, buf, X[t], Y[t], out[t], norms, buf, nothing_ahead(lay))


@njit(**_JIT)
def sequence_gradient(lay, buf, X, Y, n_loss):
    """Gradient of the loss of the last ``n_loss`` steps of the sequence
    ``X``, ``Y`` (at most k2 rows) run from the carried state with the current
    weights, into the gradient region of ``buf``. Returns the loss (NaN if a
    state went non-finite). Changes no weights, state or counters."""
    buf, X, Y = unowned(buf), unowned(X), unowned(Y)
    n = 2 * lay[L_LAYERS] * lay[L_HSTRIDE]
    copy_into(vec(buf, lay[L_PSTATE], n), vec(buf, lay[L_STATE], n))
    rs = lay[L_ROW]
    for s in range(X.shape[0]):
        row = lay[L_RCACHE] + s * rs
        if not network_forward(lay, buf, X[s], row, lay[L_PSTATE], buf, nothing_ahead(lay)):
            return np.nan
        copy_into(vec(buf, row + lay[L_R_Y], Y.shape[1]), Y[s])
    return window_backward(lay, buf, lay[L_RCACHE], 0, X.shape[0], n_loss)


# ------------------------------------------------------------------- banks
# Many independent models of one layout. A bank stores them in one flat
# ``store``: model ``m``'s persistent part (``lay[L_PERSIST]`` values: what a
# snapshot holds) at ``m * lay[L_PERSIST]``, then, from ``scratch_at``, one
# scratch region per thread (``lay[L_BUF] - lay[L_PERSIST]`` values each), which
# every kernel writes before it reads: scratch costs a thread's worth of
# memory, not a model's. A thread runs model ``m`` on the view of the store
# from the model's start, with a copy of ``lay`` whose scratch offsets
# (:data:`SCRATCH_SLOTS`) point into its own scratch region: the
# single-model kernels run unchanged. ``ctr`` has one row per model.
#
# Rows of a batch arrive grouped by model: ``groups[g]`` is the model of rows
# ``order[starts[g]:starts[g + 1]]`` (in arrival order), groups sorted by
# model so that a thread walks through the models' memory in one direction
# (a bank alternates between increasing and decreasing order from batch to
# batch, starting where the batch before ended, on the models in the caches).
# Nothing is reduced across models, so results do not depend on which
# thread runs a model, nor on how many threads there are.
#
# The ``*_chunks`` kernels share a batch between threads without a parallel
# region: each call claims the next ``chunk`` groups from the counter
# ``claim[0]`` (an atomic addition), runs them, adds their number to
# ``claim[1]`` and claims again until none is left; any number of threads may
# run the same call at once (``streamrnn.workers``), and a thread that starts
# late, or never, delays nobody. A call that gets a chunk takes the next
# scratch region from ``claim[2]`` (so at most as many regions as calls of
# one batch are needed). The results of the rows of group ``g`` go to the
# rows ``starts[g]:starts[g + 1]`` of ``out`` (in group order: threads write to
# separate cache lines); each call returns whether it finished the batch.


@njit(inline="always")
def prefetch_range(b, start, n):
    """Start fetching ``b[start:start + n]``."""
    for j in range(start, start + n, 64 // b.itemsize):
        prefetch(b, j)


@njit(inline="always")
def model_view(lay, store, m):
    """Model ``m``'s view of the store: from its start to the store's end."""
    return store[m * lay[L_PERSIST] :]


@njit(inline="always")
def claim_groups(claim, chunk, n):
    """The first and end groups of the next chunk (first >= n: none left)."""
    first = fetch_add(claim, 0, chunk)
    return first, min(first + chunk, n)


@njit(inline="always")
def groups_done(claim, first, last, n):
    """Count the groups ``first:last`` done; whether they were the batch's last."""
    return fetch_add(claim, 1, last - first) + last - first == n


@njit(inline="always")
def next_model(lay, store, groups, g, last, buf):
    """``(ahead, n_ahead)`` for the step of the model before group ``g``:
    the view of ``g``'s model and its parameters' length, whose carried
    state is fetched now (its parameters are fetched during the step); if
    ``g >= last`` (the chunk's end) ``buf`` and 0, fetching nothing."""
    if g >= last:
        return buf, lay[L_NPARAM] * 0
    ahead = model_view(lay, store, groups[g])
    prefetch_range(ahead, lay[L_STATE], 2 * lay[L_LAYERS] * lay[L_HSTRIDE])
    return ahead, lay[L_NPARAM]


@njit(inline="always")
def thread_layout(lay, tlay, scratch_at, region, m):
    """``tlay`` (a copy of ``lay``): ``lay`` for model ``m``'s view of the
    store, its scratch offsets moved into the scratch region ``region``
    (only those change from model to model: set alone)."""
    persist = lay[L_PERSIST]
    shift = scratch_at + region * (lay[L_BUF] - persist) - persist - m * persist
    for k in SCRATCH_SLOTS:
        tlay[k] = lay[k] + shift


@njit(**_JIT)
def bank_learn_chunks(lay, ctr, store, scratch_at, groups, starts, order, X, Y, out, chunk, claim):
    """``learn_one`` for every row, each on its own model, the prediction of
    the row ``order[r]`` to ``out[r]``; chunks claimed as described above."""
    ctr, store, X, Y, out = unowned(ctr), unowned(store), unowned(X), unowned(Y), unowned(out)
    n = groups.shape[0]
    region = -1  # this call's scratch region, taken on first use
    tlay = lay.copy()
    finished = False
    first, last = claim_groups(claim, chunk, n)
    while first < n:
        for g in range(first, last):
            m = groups[g]
            buf = model_view(lay, store, m)
            ahead, n_ahead = next_model(lay, store, groups, g + 1, last, buf)
            if region < 0:
                region = fetch_add(claim, 2, 1)
            thread_layout(lay, tlay, scratch_at, region, m)
            norms = NO_NORMS
            for r in range(starts[g], starts[g + 1]):
                i = order[r]
                norms = learn_step(tlay, ctr[m], buf, X[i], Y[i], out[r], norms, ahead, n_ahead)
                n_ahead = 0
        finished = groups_done(claim, first, last, n)
        first, last = claim_groups(claim, chunk, n)
    return finished


@njit(inline="always")
def predict_into(lay, buf, order, first, last, X, out, ordered, ahead, n_ahead):
    """Predictions for the rows ``order[first:last]`` of ``X``, in order, from
    the carried state (which is not changed): the row ``order[r]``'s to
    ``out[r]`` if ``ordered``, else to ``out[order[r]]``; fetching
    ``ahead[:n_ahead]`` on the way (during the first row)."""
    n = 2 * lay[L_LAYERS] * lay[L_HSTRIDE]
    copy_into(vec(buf, lay[L_PSTATE], n), vec(buf, lay[L_STATE], n))
    row = lay[L_PRED]
    for r in range(first, last):
        i = order[r]
        o = r if ordered else i
        if all_finite(X[i]) and network_forward(lay, buf, X[i], row, lay[L_PSTATE], ahead,
                                                      n_ahead if r == first else 0):
            copy_into(out[o], vec(buf, row + lay[L_R_YHAT], out.shape[1]))
        else:
            out[o] = np.nan


@njit(**_JIT)
def predict_rows(lay, buf, order, first, last, X, out):
    """Predictions for the rows ``order[first:last]`` of ``X``, in order, from
    the carried state (which is not changed), each to its row of ``out``."""
    buf, X, out = unowned(buf), unowned(X), unowned(out)
    predict_into(lay, buf, order, first, last, X, out, False, buf, nothing_ahead(lay))


@njit(**_JIT)
def bank_predict_chunks(lay, store, scratch_at, groups, starts, order, X, out, chunk, claim):
    """Predictions for every row, the rows of a model run in order from its
    carried state (which is not changed); the row ``order[r]``'s to
    ``out[r]``, chunks claimed as described above."""
    store, X, out = unowned(store), unowned(X), unowned(out)
    n = groups.shape[0]
    region = -1
    tlay = lay.copy()
    finished = False
    first, last = claim_groups(claim, chunk, n)
    while first < n:
        for g in range(first, last):
            m = groups[g]
            buf = model_view(lay, store, m)
            ahead, n_ahead = next_model(lay, store, groups, g + 1, last, buf)
            if region < 0:
                region = fetch_add(claim, 2, 1)
            thread_layout(lay, tlay, scratch_at, region, m)
            predict_into(tlay, buf, order, starts[g], starts[g + 1], X, out, True, ahead, n_ahead)
        finished = groups_done(claim, first, last, n)
        first, last = claim_groups(claim, chunk, n)
    return finished


@njit(**_JIT)
def forecast_fed_back(lay, buf, x0, out, ahead, n_ahead):
    """``out.shape[0]`` steps from the carried state (not changed), each
    step's outputs fed back as the next inputs, starting from ``x0``;
    fetching ``ahead[:n_ahead]`` during the first step (see
    :func:`cell_forward`; ``n_ahead`` 0: nothing)."""
    n = 2 * lay[L_LAYERS] * lay[L_HSTRIDE]
    copy_into(vec(buf, lay[L_PSTATE], n), vec(buf, lay[L_STATE], n))
    row = lay[L_PRED]
    x = x0.copy()
    for k in range(out.shape[0]):
        if all_finite(x) and network_forward(lay, buf, x, row, lay[L_PSTATE], ahead, n_ahead if k == 0 else 0):
            yhat = vec(buf, row + lay[L_R_YHAT], lay[L_OUTPUT])
            copy_into(out[k], yhat)
            copy_into(x, yhat)
        else:
            out[k] = np.nan
            x[:] = np.nan


@njit(**_JIT)
def bank_forecast_chunks(lay, store, scratch_at, groups, starts, order, X0, out, chunk, claim):
    """For every row ``i = order[r]``: ``out.shape[1]`` steps of its model
    from the carried state (not changed), each step's outputs fed back as the
    next inputs, starting from the inputs ``X0[i]``, to ``out[r]``; chunks
    claimed as described above. A model's rows run one after another on
    the thread's scratch."""
    store, X0, out = unowned(store), unowned(X0), unowned(out)
    n = groups.shape[0]
    region = -1
    tlay = lay.copy()
    finished = False
    first, last = claim_groups(claim, chunk, n)
    while first < n:
        for g in range(first, last):
            m = groups[g]
            buf = model_view(lay, store, m)
            ahead, n_ahead = next_model(lay, store, groups, g + 1, last, buf)
            if region < 0:
                region = fetch_add(claim, 2, 1)
            thread_layout(lay, tlay, scratch_at, region, m)
            for r in range(starts[g], starts[g + 1]):
                forecast_fed_back(tlay, buf, X0[order[r]], out[r], ahead, n_ahead)
                n_ahead = 0
        finished = groups_done(claim, first, last, n)
        first, last = claim_groups(claim, chunk, n)
    return finished


# One thread, on whole model buffers (``buf`` with a row of ``lay[L_BUF]``
# values per model, scratch included): the reference the CUDA kernels are
# tested against.


@njit(**_JIT)
def bank_learn(lay, ctr, buf, groups, starts, order, X, Y, out):
    """``learn_one`` for every row, each on its own model, on this thread."""
    ctr, buf, X, Y, out = unowned(ctr), unowned(buf), unowned(X), unowned(Y), unowned(out)
    for g in range(groups.shape[0]):
        m = groups[g]
        norms = NO_NORMS
        for r in range(starts[g], starts[g + 1]):
            i = order[r]
            norms = learn_step(lay, ctr[m], buf[m], X[i], Y[i], out[i], norms, buf[m], nothing_ahead(lay))


@njit(**_JIT)
def bank_predict(lay, buf, groups, starts, order, X, out):
    """Predictions for every row from its model's carried state (not
    changed), on this thread."""
    buf, X, out = unowned(buf), unowned(X), unowned(out)
    for g in range(groups.shape[0]):
        predict_rows(lay, buf[groups[g]], order, starts[g], starts[g + 1], X, out)


@njit(**_JIT)
def bank_forecast(lay, buf, groups, starts, order, X0, out):
    """For every row ``i``: ``out.shape[1]`` steps of its model from the
    carried state (not changed), outputs fed back as the next inputs, from
    ``X0[i]``, on this thread."""
    buf, X0, out = unowned(buf), unowned(X0), unowned(out)
    for g in range(groups.shape[0]):
        m = groups[g]
        for r in range(starts[g], starts[g + 1]):
            i = order[r]
            forecast_fed_back(lay, buf[m], X0[i], out[i], buf[m], nothing_ahead(lay))
