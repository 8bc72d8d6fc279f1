"""A block of GPU threads per model: the bank's learning step for fleets of
larger models, the same algorithm as :func:`.recurrent.learn_one` split
across the threads of a block.

Why: one thread per model (:mod:`.recurrent`) re-reads the model's weights
from memory at every step of every window (an LSTM with hidden 32 moves
~53 KB of model state per learned sample), which bounds it by the GPU's
memory bandwidth. Here the block of model ``groups[blockIdx.x]`` keeps the
recurrent weights ``W_h`` (``H x G*H``) in shared memory for the whole
batch, so each step reads them there; the ``T`` threads share every loop:
thread ``t`` takes gate pre-activations, units, weight-gradient columns and
parameters ``t, t + T, t + 2T, ...``. ``W_h`` is stored there with a row
stride of ``G*H + 1``, so both the forward pass (threads read a row) and
the backward pass (threads read a column) are free of bank conflicts.

Determinism: every sum is formed by one thread in a fixed order, and the
gradient's squared norm (for clipping) is summed by thread 0 over the
threads' partial sums in thread order: results do not depend on timing,
and in float64 agree with the CPU's to rounding.

Scope: one layer, with stored windows (``recompute=False``, or
``k1 >= k2`` where nothing is recomputed); any cell, loss and optimizer.
The counters live in each thread's registers (every thread runs the same
bookkeeping; thread 0 writes them back), and every branch that a barrier
follows depends only on values all threads share.

Device buffers are the bank's, model-minor (``B[e, m]``) as for
:mod:`.recurrent`: the block's threads read one model's elements, which sit
in neighbouring models' cache lines; the shared-memory copy of ``W_h`` makes
the per-step reads local.
"""

from __future__ import annotations

import math

import numpy as np

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
    HP_CLIP,
    HP_HUBER_DELTA,
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
    L_STATE,
    L_V,
    L_WSTATE,
    LOSS_CROSS_ENTROPY,
    LOSS_HUBER,
    N_CTR,
    OPT_RMSPROP,
    OPT_SGD,
)
from . import recurrent
from .recurrent import element_update, ring_row, step_constants

#: Most threads of a block.
MAX_THREADS = 256
#: Most bytes of dynamic shared memory a block takes: what every GPU grants
#: without the per-kernel opt-in (an LSTM up to hidden 53 in float32, 36 in
#: float64).
MAX_SHARED_BYTES = 48 * 1024


def supports(lay, learn: bool = True) -> str | None:
    """None if the block kernels (learning, or prediction with ``learn``
    False) run models of layout ``lay``; otherwise why not."""
    if lay[L_LAYERS] != 1:
        return "the block-per-model kernel runs one-layer models"
    if learn and lay[L_RECOMPUTE] != 0 and lay[L_K1] < lay[L_K2]:
        return "the block-per-model kernel runs stored windows (recompute=False)"
    return None


def threads_for(lay) -> int:
    """Threads of a block: the gate pre-activations' count (or the outputs'),
    rounded up to a power of two, at most :data:`MAX_THREADS`."""
    n = max(int(lay[L_GATES] * lay[L_HIDDEN]), int(lay[L_OUTPUT]), 1)
    return min(1 << (n - 1).bit_length(), MAX_THREADS)


def shared_elements(lay, threads: int) -> int:
    """Elements of the dynamic shared memory: ``W_h`` with padded rows, the
    threads' partial sums, the head's gradients, two scalars, and the
    scratch vectors of a step (pre-activations ``ax``, ``ah``; the
    backward's ``din``, ``gh``, ``dh``, ``dc``)."""
    H, GH, O = int(lay[L_HIDDEN]), int(lay[L_GATES] * lay[L_HIDDEN]), int(lay[L_OUTPUT])
    return H * (GH + 1) + threads + O + 2 + 2 * GH + 4 * H


# ---------------------------------------------------------- device helpers
# ``t`` is the thread's index in the block, ``T`` the block's size.


def shared_offsets(lay, T):
    """Offsets in shared memory: the padded row stride of ``W_h``, the
    partial sums, the head's gradients, the loss and the squared norm."""
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    sw = GH + 1
    red = H * sw
    hg = red + T
    return sw, red, hg, hg + lay[L_OUTPUT], hg + lay[L_OUTPUT] + 1


def scratch_offsets(lay, T):
    """Offsets in shared memory of the step's scratch vectors ``ax``, ``ah``
    (``GH`` each), ``din``, ``gh``, ``dh``, ``dc`` (``H`` each): the CPU keeps
    them in the model's scratch region, not part of its state."""
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    ax = H * (GH + 1) + T + lay[L_OUTPUT] + 2
    return ax, ax + GH, ax + 2 * GH, ax + 2 * GH + H, ax + 2 * GH + 2 * H, ax + 2 * GH + 3 * H


def stage_recurrent_weights(lay, B, m, sh, t, T):
    """``W_h`` (global, row-major ``H x GH``) into shared memory, padded rows."""
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    wh = lay[L_PARAMS0 + 1]
    sw = GH + 1
    for e in range(t, H * GH, T):
        j = e // GH
        sh[j * sw + e - j * GH] = B[wh + e, m]


def block_forward(lay, B, m, sh, row, state, t, T):
    """One step of the one-layer network at ``row`` (its input already
    there) from the state at ``state``; writes the new state there if it is
    finite. Returns whether it was (the same in every thread)."""
    tp = B.dtype.type
    one = tp(1.0)
    cell = lay[L_CELL]
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    O = lay[L_OUTPUT]
    nin = lay[L_INPUT]
    hs = lay[L_HSTRIDE]
    approx = lay[L_APPROX] != 0
    sw = GH + 1
    wx, bx, bh = lay[L_PARAMS0], lay[L_PARAMS0 + 2], lay[L_PARAMS0 + 3]
    ax, ah, _, _, _, _ = scratch_offsets(lay, T)
    xin, hp, cp = row + lay[L_R_XIN], row + lay[L_R_HP], row + lay[L_R_CP]
    act, aux = row + lay[L_R_ACT], row + lay[L_R_AUX]
    hn, cn = row + lay[L_R_HN], row + lay[L_R_CN]

    for j in range(t, H, T):
        B[hp + j, m] = B[state + j, m]
        B[cp + j, m] = B[state + hs + j, m]
    cuda.syncthreads()
    for k in range(t, GH, T):
        a = B[bx + k, m]
        for j in range(nin):
            a += B[xin + j, m] * B[wx + j * GH + k, m]
        sh[ax + k] = a
        a = B[bh + k, m]
        for j in range(H):
            a += B[hp + j, m] * sh[j * sw + k]
        sh[ah + k] = a
    cuda.syncthreads()
    for k in range(t, H, T):  # each unit's gates, then its state
        if cell == CELL_GRU:
            r = act_sigmoid(sh[ax + k] + sh[ah + k], approx)
            z = act_sigmoid(sh[ax + H + k] + sh[ah + H + k], approx)
            a = sh[ah + 2 * H + k]
            n = act_tanh(sh[ax + 2 * H + k] + r * a, approx)
            B[act + k, m] = r
            B[act + H + k, m] = z
            B[act + 2 * H + k, m] = n
            B[aux + k, m] = a
            B[hn + k, m] = (one - z) * n + z * B[hp + k, m]
        elif cell == CELL_LSTM:
            i = act_sigmoid(sh[ax + k] + sh[ah + k], approx)
            f = act_sigmoid(sh[ax + H + k] + sh[ah + H + k], approx)
            g = act_tanh(sh[ax + 2 * H + k] + sh[ah + 2 * H + k], approx)
            o = act_sigmoid(sh[ax + 3 * H + k] + sh[ah + 3 * H + k], approx)
            B[act + k, m] = i
            B[act + H + k, m] = f
            B[act + 2 * H + k, m] = g
            B[act + 3 * H + k, m] = o
            c = f * B[cp + k, m] + i * g
            B[cn + k, m] = c
            a = act_tanh(c, approx)
            B[aux + k, m] = a
            B[hn + k, m] = o * a
        else:
            a = act_tanh(sh[ax + k] + sh[ah + k], approx)
            B[act + k, m] = a
            B[hn + k, m] = a
    cuda.syncthreads()
    W, b, yhat = lay[L_HEAD_W], lay[L_HEAD_B], row + lay[L_R_YHAT]
    for o in range(t, O, T):
        s = B[b + o, m]
        for j in range(H):
            s += B[W + o * H + j, m] * B[hn + j, m]
        B[yhat + o, m] = s
    finite = 1
    for j in range(t, H, T):
        if not (math.isfinite(B[hn + j, m]) and math.isfinite(B[cn + j, m])):
            finite = 0
    ok = cuda.syncthreads_and(finite) != 0
    if ok:
        for j in range(t, H, T):
            B[state + j, m] = B[hn + j, m]
            B[state + hs + j, m] = B[cn + j, m]
    cuda.syncthreads()
    return ok


def block_head_gradient(lay, B, m, sh, row, scale, t, T):
    """Thread 0: the loss of the step at ``row`` and each output's gradient
    into shared memory (``window_backward``'s loss, as on the CPU). Returns
    the step's loss in thread 0 (0 elsewhere)."""
    tp = B.dtype.type
    zero = tp(0.0)
    loss = zero
    if t != 0:
        return loss
    O = lay[L_OUTPUT]
    huber = lay[L_LOSS] == LOSS_HUBER
    cross_entropy = lay[L_LOSS] == LOSS_CROSS_ENTROPY
    delta = B[lay[L_HP] + HP_HUBER_DELTA, m]
    _, _, hg, _, _ = shared_offsets(lay, T)
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
            loss += delta * (abs(d) - tp(0.5) * delta)
            g = delta * scale if d > zero else -delta * scale
        elif huber:
            loss += tp(0.5) * d * d
            g = d * scale
        else:
            loss += d * d
            g = tp(2.0) * d * scale
        sh[hg + o] = g
    return loss


def block_cell_backward(lay, B, m, sh, row, t, T):
    """Backward one step of the one layer (``cell_backward`` on the CPU):
    each unit's pre-activation gradients, then ``dh = W_h dah + gh``."""
    tp = B.dtype.type
    one = tp(1.0)
    zero = tp(0.0)
    cell = lay[L_CELL]
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    sw = GH + 1
    dax, dah = row + lay[L_R_DAX], row + lay[L_R_DAH]
    _, _, din, gh, dh, dc = scratch_offsets(lay, T)
    hp, cp = row + lay[L_R_HP], row + lay[L_R_CP]
    act, aux = row + lay[L_R_ACT], row + lay[L_R_AUX]
    for k in range(t, H, T):
        ghk = sh[dh + k] + sh[din + k]
        if cell == CELL_LSTM:
            i = B[act + k, m]
            f = B[act + H + k, m]
            g = B[act + 2 * H + k, m]
            o = B[act + 3 * H + k, m]
            a = B[aux + k, m]
            c = sh[dc + k] + ghk * o * (one - a * a)
            B[dax + k, m] = c * g * i * (one - i)
            B[dax + H + k, m] = c * B[cp + k, m] * f * (one - f)
            B[dax + 2 * H + k, m] = c * i * (one - g * g)
            B[dax + 3 * H + k, m] = ghk * a * o * (one - o)
            sh[dc + k] = c * f
            for q in range(4):
                B[dah + q * H + k, m] = B[dax + q * H + k, m]
            sh[gh + k] = zero
        elif cell == CELL_GRU:
            r = B[act + k, m]
            z = B[act + H + k, m]
            n = B[act + 2 * H + k, m]
            dn = ghk * (one - z) * (one - n * n)
            B[dax + 2 * H + k, m] = dn
            B[dax + k, m] = dn * B[aux + k, m] * r * (one - r)
            B[dax + H + k, m] = ghk * (B[hp + k, m] - n) * z * (one - z)
            B[dah + k, m] = B[dax + k, m]
            B[dah + H + k, m] = B[dax + H + k, m]
            B[dah + 2 * H + k, m] = dn * r
            sh[gh + k] = ghk * z
        else:
            a = B[act + k, m]
            d = ghk * (one - a * a)
            B[dax + k, m] = d
            B[dah + k, m] = d
            sh[gh + k] = zero
    cuda.syncthreads()
    for j in range(t, H, T):
        s = zero
        for k in range(GH):
            s += sh[j * sw + k] * B[dah + k, m]
        sh[dh + j] = s + sh[gh + j]
    cuda.syncthreads()


def block_weight_gradients(lay, B, m, rows, start, n_rows, t, T):
    """The weight and bias gradients from the window's pre-activation
    gradients (``accumulate_weight_gradients`` on the CPU): thread ``t``
    forms the columns ``k = t, t + T, ...``, each sum over the steps in
    order."""
    zero = B.dtype.type(0.0)
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    nin = lay[L_INPUT]
    k2, rs = lay[L_K2], lay[L_ROW]
    g0 = lay[L_GRAD]
    gwx, gwh = g0 + lay[L_PARAMS0], g0 + lay[L_PARAMS0 + 1]
    gbx, gbh = g0 + lay[L_PARAMS0 + 2], g0 + lay[L_PARAMS0 + 3]
    rdax, rdah, rxin, rhp = lay[L_R_DAX], lay[L_R_DAH], lay[L_R_XIN], lay[L_R_HP]
    for k in range(t, GH, T):
        for s in range(n_rows):
            b = ring_row(rows, start, s, k2, rs)
            B[gbx + k, m] += B[b + rdax + k, m]
            B[gbh + k, m] += B[b + rdah + k, m]
        for j in range(nin):
            a = zero
            for s in range(n_rows):
                b = ring_row(rows, start, s, k2, rs)
                a += B[b + rxin + j, m] * B[b + rdax + k, m]
            B[gwx + j * GH + k, m] += a
        for j in range(H):
            a = zero
            for s in range(n_rows):
                b = ring_row(rows, start, s, k2, rs)
                a += B[b + rhp + j, m] * B[b + rdah + k, m]
            B[gwh + j * GH + k, m] += a
    cuda.syncthreads()


def block_window_backward(lay, B, m, sh, start, n_rows, n_loss, t, T):
    """Backpropagate the mean loss of the last ``n_loss`` of the window's
    ``n_rows`` steps, expanded in the full rows from ring row ``start``, into
    the gradient region (``window_backward`` on the CPU). Returns the loss,
    the same in every thread."""
    tp = B.dtype.type
    zero = tp(0.0)
    H = lay[L_HIDDEN]
    O = lay[L_OUTPUT]
    k2, rs = lay[L_K2], lay[L_ROW]
    rows = lay[L_RCACHE]
    g0 = lay[L_GRAD]
    _, _, din, _, dh, dc = scratch_offsets(lay, T)
    W = lay[L_HEAD_W]
    gW, gb = g0 + lay[L_HEAD_W], g0 + lay[L_HEAD_B]
    _, _, hg, sloss, _ = shared_offsets(lay, T)

    for e in range(t, lay[L_NPARAM], T):
        B[g0 + e, m] = zero
    for j in range(t, H, T):
        sh[dh + j] = zero
        sh[dc + j] = zero
    cross_entropy = lay[L_LOSS] == LOSS_CROSS_ENTROPY
    scale = tp(1.0) / tp(n_loss if cross_entropy else n_loss * O)
    loss = zero
    cuda.syncthreads()
    for s in range(n_rows - 1, -1, -1):
        row = ring_row(rows, start, s, k2, rs)
        top = row + lay[L_R_HN]
        if s >= n_rows - n_loss:
            loss += block_head_gradient(lay, B, m, sh, row, scale, t, T)
            cuda.syncthreads()
            for o in range(t, O, T):
                B[gb + o, m] += sh[hg + o]
            for j in range(t, H, T):
                d = zero
                for o in range(O):
                    g = sh[hg + o]
                    B[gW + o * H + j, m] += B[top + j, m] * g
                    d += B[W + o * H + j, m] * g
                sh[din + j] = d
        else:
            for j in range(t, H, T):
                sh[din + j] = zero
        cuda.syncthreads()
        block_cell_backward(lay, B, m, sh, row, t, T)
    block_weight_gradients(lay, B, m, rows, start, n_rows, t, T)
    if t == 0:
        sh[sloss] = loss * scale
    cuda.syncthreads()
    total = sh[sloss]
    cuda.syncthreads()
    return total


def block_optimizer_step(lay, cnt, B, m, sh, t, T):
    """Clip to the global norm and apply one optimizer step
    (``optimizer_step`` on the CPU), updating the shared copy of ``W_h``
    too. Returns False, changing nothing, when the gradient is not finite
    or when the step would write a non-finite parameter or moment anywhere
    (an overflow, counted in ``cnt[C_OVERFLOWS]``, as the CPU's rollback):
    each thread computes its elements' new values once to check them, the
    block agrees (``syncthreads_or``), and only then writes them."""
    tp = B.dtype.type
    one = tp(1.0)
    zero = tp(0.0)
    P = lay[L_NPARAM]
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    grad, m1, m2 = lay[L_GRAD], lay[L_M], lay[L_V]
    hp = lay[L_HP]
    clip = B[hp + HP_CLIP, m]
    opt = lay[L_OPT]
    sw, red, _, _, snorm = shared_offsets(lay, T)
    wh = lay[L_PARAMS0 + 1]

    part = zero
    for e in range(t, P, T):
        g = B[grad + e, m]
        part += g * g
    sh[red + t] = part
    cuda.syncthreads()
    if t == 0:
        sq = zero
        for q in range(T):
            sq += sh[red + q]
        sh[snorm] = sq
    cuda.syncthreads()
    sq = sh[snorm]
    if not math.isfinite(sq):
        return False
    norm = math.sqrt(sq)
    gscale = one
    if clip > zero:
        gscale = min(clip / (norm + tp(1e-6)), one)

    hps = step_constants(opt, B, m, hp, cnt[C_UPDATES], one, zero)
    bad = 0  # an integer: what the barrier's predicate takes
    for e in range(t, P, T):
        th, v1, v2 = element_update(opt, B[e, m], B[grad + e, m], B[m1 + e, m], B[m2 + e, m], gscale, hps, one)
        if not (math.isfinite(th) and math.isfinite(v1) and math.isfinite(v2)):
            bad = 1
    if cuda.syncthreads_or(bad) != 0:  # an overflow somewhere: roll back (write nothing), as the CPU
        cnt[C_OVERFLOWS] += 1
        return False
    for e in range(t, P, T):
        th, v1, v2 = element_update(opt, B[e, m], B[grad + e, m], B[m1 + e, m], B[m2 + e, m], gscale, hps, one)
        B[e, m] = th
        if opt != OPT_RMSPROP:  # (SGD's and RMSprop's one moment: both names, one region)
            B[m1 + e, m] = v1
        if opt != OPT_SGD:
            B[m2 + e, m] = v2
        if e >= wh and e < wh + H * GH:
            j = (e - wh) // GH
            sh[j * sw + (e - wh) - j * GH] = th
    cuda.syncthreads()
    return True


def block_expand_row(lay, B, m, crow, row, t, T):
    """The full row ``row`` of a step rebuilt from its compact row ``crow``
    and the previous state already in ``row`` (``expand_row`` on the CPU;
    each unit's state with :func:`block_forward`'s operations)."""
    tp = B.dtype.type
    one = tp(1.0)
    cell = lay[L_CELL]
    H = lay[L_HIDDEN]
    GH = lay[L_GATES] * H
    O = lay[L_OUTPUT]
    approx = lay[L_APPROX] != 0
    c = crow + lay[L_C_LAYER0]
    hp, cp = row + lay[L_R_HP], row + lay[L_R_CP]
    act, aux = row + lay[L_R_ACT], row + lay[L_R_AUX]
    hn, cn = row + lay[L_R_HN], row + lay[L_R_CN]
    for j in range(t, lay[L_INPUT], T):
        B[row + lay[L_R_XIN] + j, m] = B[crow + lay[L_C_X] + j, m]
    for o in range(t, O, T):
        B[row + lay[L_R_Y] + o, m] = B[crow + lay[L_C_Y] + o, m]
        B[row + lay[L_R_YHAT] + o, m] = B[crow + lay[L_C_YHAT] + o, m]
    for k in range(t, GH, T):
        B[act + k, m] = B[c + lay[L_C_ACT] + k, m]
    cuda.syncthreads()
    for k in range(t, H, T):
        if cell == CELL_GRU:
            z = B[act + H + k, m]
            B[aux + k, m] = B[c + lay[L_C_AUX] + k, m]
            B[hn + k, m] = (one - z) * B[act + 2 * H + k, m] + z * B[hp + k, m]
        elif cell == CELL_LSTM:
            cc = B[act + H + k, m] * B[cp + k, m] + B[act + k, m] * B[act + 2 * H + k, m]
            B[cn + k, m] = cc
            a = act_tanh(cc, approx)
            B[aux + k, m] = a
            B[hn + k, m] = B[act + 3 * H + k, m] * a
        else:
            B[hn + k, m] = B[act + k, m]
    cuda.syncthreads()


def block_expand_window(lay, B, m, start, n_rows, t, T):
    """The window's steps from ring row ``start`` as full rows, states
    rebuilt from the state before its first step (``expand_window`` on the
    CPU)."""
    H, hs, rs = lay[L_HIDDEN], lay[L_HSTRIDE], lay[L_ROW]
    k2, crs = lay[L_K2], lay[L_CROW]
    for s in range(n_rows):
        row = lay[L_RCACHE] + s * rs
        for j in range(t, H, T):
            if s == 0:
                B[row + lay[L_R_HP] + j, m] = B[lay[L_WSTATE] + j, m]
                B[row + lay[L_R_CP] + j, m] = B[lay[L_WSTATE] + hs + j, m]
            else:
                B[row + lay[L_R_HP] + j, m] = B[row - rs + lay[L_R_HN] + j, m]
                B[row + lay[L_R_CP] + j, m] = B[row - rs + lay[L_R_CN] + j, m]
        block_expand_row(lay, B, m, ring_row(lay[L_CACHE], start, s, k2, crs), row, t, T)


def block_tbptt_update(lay, cnt, B, m, sh, t, T):
    """One TBPTT(k1, k2) update over the stored window (``tbptt_update`` on
    the CPU); counts a skipped update in ``cnt``."""
    k1, k2 = lay[L_K1], lay[L_K2]
    n_rows = cnt[C_FILL]
    n_loss = min(k1, n_rows)
    start = (cnt[C_POS] - n_rows + k2) % k2
    crs = lay[L_CROW]
    O = lay[L_OUTPUT]
    for s in range(n_rows - n_loss, n_rows):
        y = ring_row(lay[L_CACHE], start, s, k2, crs) + lay[L_C_Y]
        for o in range(O):
            if not math.isfinite(B[y + o, m]):
                cnt[C_SKIPPED] += 1
                return
    block_expand_window(lay, B, m, start, n_rows, t, T)
    loss = block_window_backward(lay, B, m, sh, 0, n_rows, n_loss, t, T)
    if not math.isfinite(loss) or not block_optimizer_step(lay, cnt, B, m, sh, t, T):
        cnt[C_SKIPPED] += 1
        return
    cnt[C_UPDATES] += 1


def block_learn_one(lay, cnt, B, m, sh, X, Y, out, i, t, T):
    """``learn_one`` of the CPU for the row ``i``, by the block."""
    nan = B.dtype.type(math.nan)
    O = lay[L_OUTPUT]
    nin = lay[L_INPUT]
    H, hs = lay[L_HIDDEN], lay[L_HSTRIDE]
    GH = lay[L_GATES] * H
    k1, k2 = lay[L_K1], lay[L_K2]
    finite = True
    for j in range(nin):
        if not math.isfinite(X[i, j]):
            finite = False
    if not finite:
        cnt[C_SKIPPED] += 1
        for o in range(t, O, T):
            out[i, o] = nan
        return
    row, ws = lay[L_PRED], lay[L_WSTATE]
    # the state before the window's oldest step (as learn_step on the CPU)
    if cnt[C_FILL] == 0 or (k1 >= k2 and cnt[C_SINCE] == k1 - k2):
        for j in range(t, 2 * hs, T):
            B[ws + j, m] = B[lay[L_STATE] + j, m]
        cuda.syncthreads()
    elif cnt[C_FILL] == k2 and k1 < k2:
        for j in range(t, H, T):
            B[row + lay[L_R_HP] + j, m] = B[ws + j, m]
            B[row + lay[L_R_CP] + j, m] = B[ws + hs + j, m]
        block_expand_row(lay, B, m, lay[L_CACHE] + cnt[C_POS] * lay[L_CROW], row, t, T)
        for j in range(t, H, T):
            B[ws + j, m] = B[row + lay[L_R_HN] + j, m]
            B[ws + hs + j, m] = B[row + lay[L_R_CN] + j, m]
        cuda.syncthreads()
    for j in range(t, nin, T):
        B[row + lay[L_R_XIN] + j, m] = X[i, j]
    ok = block_forward(lay, B, m, sh, row, lay[L_STATE], t, T)
    yhat, y = row + lay[L_R_YHAT], row + lay[L_R_Y]
    for o in range(t, O, T):
        out[i, o] = B[yhat + o, m]
        B[y + o, m] = Y[i, o]
    cnt[C_STEPS] += 1
    if not ok:
        for j in range(t, 2 * hs, T):
            B[lay[L_STATE] + j, m] = B.dtype.type(0.0)
        cnt[C_FILL] = 0
        cnt[C_SINCE] = 0
        cnt[C_RESETS] += 1
        cnt[C_SKIPPED] += 1
        cuda.syncthreads()
        return
    crow = lay[L_CACHE] + cnt[C_POS] * lay[L_CROW]
    for j in range(t, nin, T):
        B[crow + lay[L_C_X] + j, m] = B[row + lay[L_R_XIN] + j, m]
    for o in range(t, O, T):
        B[crow + lay[L_C_Y] + o, m] = B[y + o, m]
        B[crow + lay[L_C_YHAT] + o, m] = B[yhat + o, m]
    c = crow + lay[L_C_LAYER0]
    for k in range(t, GH, T):
        B[c + lay[L_C_ACT] + k, m] = B[row + lay[L_R_ACT] + k, m]
    if lay[L_CELL] == CELL_GRU:
        for k in range(t, H, T):
            B[c + lay[L_C_AUX] + k, m] = B[row + lay[L_R_AUX] + k, m]
    cnt[C_POS] = (cnt[C_POS] + 1) % k2
    cnt[C_FILL] = min(cnt[C_FILL] + 1, k2)
    cnt[C_SINCE] += 1
    cuda.syncthreads()
    if cnt[C_SINCE] >= k1:
        cnt[C_SINCE] = 0
        block_tbptt_update(lay, cnt, B, m, sh, t, T)


def make_learn_kernel(shared_type, counter_type):
    """The kernel for buffers of one dtype (``shared_type``, a Numba type:
    shared and local arrays need theirs at compile time)."""

    def bank_learn_block_kernel(lay, ctr, B, groups, starts, order, X, Y, out):
        g = cuda.blockIdx.x
        if g >= groups.shape[0]:
            return
        m = groups[g]
        t = cuda.threadIdx.x
        T = cuda.blockDim.x
        sh = cuda.shared.array(0, shared_type)
        cnt = cuda.local.array(N_CTR, counter_type)
        for c in range(N_CTR):
            cnt[c] = ctr[c, m]
        stage_recurrent_weights(lay, B, m, sh, t, T)
        cuda.syncthreads()
        for r in range(starts[g], starts[g + 1]):
            block_learn_one(lay, cnt, B, m, sh, X, Y, out, order[r], t, T)
        cuda.syncthreads()
        if t == 0:
            for c in range(N_CTR):
                ctr[c, m] = cnt[c]

    return bank_learn_block_kernel


def make_predict_kernel(shared_type):
    """Predictions for every row, the rows of a model run in order from its
    carried state (not changed: steps run on the scratch state), a block per
    model: the twin of ``bank_predict_kernel``."""

    def bank_predict_block_kernel(lay, B, groups, starts, order, X, out):
        g = cuda.blockIdx.x
        if g >= groups.shape[0]:
            return
        m = groups[g]
        t = cuda.threadIdx.x
        T = cuda.blockDim.x
        sh = cuda.shared.array(0, shared_type)
        nan = B.dtype.type(math.nan)
        nin, O = lay[L_INPUT], lay[L_OUTPUT]
        ps, row = lay[L_PSTATE], lay[L_PRED]
        for j in range(t, 2 * lay[L_HSTRIDE], T):
            B[ps + j, m] = B[lay[L_STATE] + j, m]
        stage_recurrent_weights(lay, B, m, sh, t, T)
        cuda.syncthreads()
        for r in range(starts[g], starts[g + 1]):
            i = order[r]
            ok = True
            for j in range(nin):
                if not math.isfinite(X[i, j]):
                    ok = False
            if ok:
                for j in range(t, nin, T):
                    B[row + lay[L_R_XIN] + j, m] = X[i, j]
                ok = block_forward(lay, B, m, sh, row, ps, t, T)
            for o in range(t, O, T):
                out[i, o] = B[row + lay[L_R_YHAT] + o, m] if ok else nan
            cuda.syncthreads()

    return bank_predict_block_kernel


# ------------------------------------------------------------- compilation

_DEVICE_FUNCTIONS = (
    "ring_row",
    "element_update",
    "step_constants",
    "shared_offsets",
    "scratch_offsets",
    "stage_recurrent_weights",
    "block_forward",
    "block_head_gradient",
    "block_cell_backward",
    "block_weight_gradients",
    "block_window_backward",
    "block_optimizer_step",
    "block_expand_row",
    "block_expand_window",
    "block_tbptt_update",
    "block_learn_one",
)
_built: dict = {}
cuda = None  # numba.cuda, bound by build(): the device code above refers to it


def build(dtype, kind: str = "learn") -> object:
    """The compiled-on-demand block kernel ``kind`` (``"learn"`` or
    ``"predict"``) for buffers of ``dtype`` (lazy: the first call imports
    ``numba.cuda`` and wraps the device functions)."""
    dtype = np.dtype(dtype)
    if (kind, dtype) in _built:
        return _built[kind, dtype]
    from numba import cuda as numba_cuda
    from numba import from_dtype

    recurrent.build()  # the shared device functions call each other through that module's names
    g = globals()
    if g["cuda"] is None:
        g["cuda"] = numba_cuda
        for name in _DEVICE_FUNCTIONS:
            f = g[name]  # some are shared with .recurrent: wrap the Python function
            f = getattr(f, "py_func", None) or getattr(f, "fn", None) or f
            g[name] = numba_cuda.jit(device=True)(f)
    if kind == "learn":
        kernel = make_learn_kernel(from_dtype(dtype), from_dtype(np.dtype(np.int64)))
    else:
        kernel = make_predict_kernel(from_dtype(dtype))
    _built[kind, dtype] = numba_cuda.jit(cache=config.CACHE)(kernel)
    return _built[kind, dtype]


__all__ = ["MAX_SHARED_BYTES", "MAX_THREADS", "build", "shared_elements", "supports", "threads_for"]
