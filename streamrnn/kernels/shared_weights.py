"""CPU kernels of a shared-weights bank: one set of parameters and optimizer
moments learning from many series, each series with its own carried state
and TBPTT window.

All series live in one buffer: the model's own buffer (parameters, moments,
hyperparameters, scratch), then one region per series holding its state and
window, laid out as in a single model. Series ``m`` has its own copy of the
layout, ``lays[m]``, identical but for the offsets ``L_STATE``,
``L_WSTATE`` and ``L_CACHE`` which point into its region; so the single-model kernels of
:mod:`.recurrent` run unchanged on ``(lays[m], ctrs[m], buf)``. Rows are
processed one after another in arrival order (every row may update the
shared weights), so results never depend on the number of threads.
"""

from numba import njit

from .. import config
from .layout import C_UPDATES
from .recurrent import NO_NORMS, forecast_fed_back, learn_step, nothing_ahead, predict_rows

_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy", fastmath=config.FASTMATH)


@njit(**_JIT)
def shared_learn(lays, ctrs, updates, buf, slots, X, Y, out):
    """``learn_step`` for every row in order, on the state of series
    ``slots[i]`` and the shared weights; ``updates[0]`` counts the weight
    updates of the shared optimizer (its bias corrections use it)."""
    norms = NO_NORMS  # (the shared weights' norms, passed from update to update)
    for i in range(slots.shape[0]):
        m = slots[i]
        ctr = ctrs[m]
        ctr[C_UPDATES] = updates[0]
        norms = learn_step(lays[m], ctr, buf, X[i], Y[i], out[i], norms, buf, nothing_ahead(lays[m]))
        updates[0] = ctr[C_UPDATES]


@njit(**_JIT)
def shared_predict(lays, buf, groups, starts, order, X, out):
    """Predictions for every row; the rows of a series run in order from its
    carried state (not changed). The last row of ``lays`` serves unseen
    series (zero state): each such group starts from it."""
    for g in range(groups.shape[0]):
        predict_rows(lays[groups[g]], buf, order, starts[g], starts[g + 1], X, out)


@njit(**_JIT)
def shared_forecast(lays, buf, slots, X0, out):
    """For each series ``slots[i]``: ``out.shape[1]`` steps from its carried
    state (not changed), each step's outputs fed back as the next inputs,
    starting from ``X0[i]``."""
    for i in range(slots.shape[0]):
        forecast_fed_back(lays[slots[i]], buf, X0[i], out[i], buf, nothing_ahead(lays[slots[i]]))
