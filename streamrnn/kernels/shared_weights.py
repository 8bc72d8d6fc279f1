"""CPU kernels of a shared-weights bank: one set of parameters and optimizer
moments learning from many series, each series with its own carried state
and TBPTT window.

All series live in one buffer: the model's own buffer (parameters, moments,
hyperparameters, scratch), then one region per series holding its state and
window, laid out as in a single model. Series ``m`` has its own copy of the
layout, ``lays[m]``, identical but for the offsets ``L_STATE`` and
``L_CACHE`` which point into its region; so the single-model kernels of
:mod:`.recurrent` run unchanged on ``(lays[m], ctrs[m], buf)``. Rows are
processed one after another in arrival order (every row may update the
shared weights), so results never depend on the number of threads.
"""

import numpy as np
from numba import njit

from .. import config
from .layout import C_UPDATES, L_HSTRIDE, L_LAYERS, L_OUTPUT, L_PRED, L_PSTATE, L_R_YHAT, L_STATE
from .recurrent import all_finite, copy_into, learn_one, network_forward, vec

_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy", fastmath=config.FASTMATH)


@njit(**_JIT)
def shared_learn(lays, ctrs, updates, buf, slots, X, Y, out):
    """``learn_one`` for every row in order, on the state of series
    ``slots[i]`` and the shared weights; ``updates[0]`` counts the weight
    updates of the shared optimizer (its bias corrections use it)."""
    for i in range(slots.shape[0]):
        m = slots[i]
        ctr = ctrs[m]
        ctr[C_UPDATES] = updates[0]
        learn_one(lays[m], ctr, buf, X[i], Y[i], out[i])
        updates[0] = ctr[C_UPDATES]


@njit(**_JIT)
def shared_predict(lays, buf, groups, starts, order, X, out):
    """Predictions for every row; the rows of a series run in order from its
    carried state (not changed). ``lays[-1]`` serves unseen series (zero
    state)."""
    for g in range(groups.shape[0]):
        lay = lays[groups[g]]
        n = 2 * lay[L_LAYERS] * lay[L_HSTRIDE]
        copy_into(vec(buf, lay[L_PSTATE], n), vec(buf, lay[L_STATE], n))
        row = lay[L_PRED]
        for r in range(starts[g], starts[g + 1]):
            i = order[r]
            if all_finite(X[i]) and network_forward(lay, buf, X[i], row, lay[L_PSTATE]):
                copy_into(out[i], vec(buf, row + lay[L_R_YHAT], out.shape[1]))
            else:
                out[i] = np.nan


@njit(**_JIT)
def shared_forecast(lays, buf, slots, X0, out):
    """For each series ``slots[i]``: ``out.shape[1]`` steps from its carried
    state (not changed), each step's outputs fed back as the next inputs,
    starting from ``X0[i]``."""
    for i in range(slots.shape[0]):
        lay = lays[slots[i]]
        O = lay[L_OUTPUT]
        n = 2 * lay[L_LAYERS] * lay[L_HSTRIDE]
        copy_into(vec(buf, lay[L_PSTATE], n), vec(buf, lay[L_STATE], n))
        row = lay[L_PRED]
        x = X0[i].copy()
        for k in range(out.shape[1]):
            if all_finite(x) and network_forward(lay, buf, x, row, lay[L_PSTATE]):
                yhat = vec(buf, row + lay[L_R_YHAT], O)
                copy_into(out[i, k], yhat)
                copy_into(x, yhat)
            else:
                out[i, k] = np.nan
                x[:] = np.nan
