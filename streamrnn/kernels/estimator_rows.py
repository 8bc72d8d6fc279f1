"""One River row in one kernel call: a regressor's or classifier's feature
values standardised into the network's inputs beside the revealed targets,
the network's step, and (regressors) the forecast or the target side.

The same arithmetic as the estimators' row-by-row path (standardisation by
:func:`.scaling.standardize_value`, targets by
:func:`.sequential.regression_targets`, the network by
:func:`.recurrent.predict_one` and :func:`.recurrent.learn_one`), so each
prediction is bit-identical to it; what differs is that a row costs one
call and no temporary Python or NumPy objects.

Every kernel takes a float64 *row* (the per-row values and the constants)
and an int64 *plan* (the columns of the row's features, of the revealed
targets and the options), laid out as below. A kernel that meets a value it
does not take (an infinite feature, or while learning an unseen feature with
a value) sets ``row[R_STATUS]`` to :data:`TAKE_SLOW_PATH` before changing
anything, and the caller takes the row-by-row path, which raises or
registers the feature.
"""

import math

import numpy as np
from numba import njit

from .. import config
from .layout import L_INPUT, L_OUTPUT
from .recurrent import learn_one, predict_one
from .scaling import standardize_value
from .sequential import AUTO, CHANGE, LEVEL, regression_targets, score_candidates

# No fast-math: the arithmetic of the row-by-row path, step for step.
_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy")

#: The row (float64): a status the kernel writes, the constants of the
#: scalers, the target, then the feature values in the plan's order and
#: (classifiers) the last classes learned, the latest first (-1: none).
R_STATUS, R_CLIP, R_GLITCH, R_GLITCH_OUT, R_WARMUP, R_SHIFT_AFTER, R_Y_GLITCH, R_Y_GLITCH_OUT, R_SPAN = range(9)
R_MARGIN = 9
R_TARGET = 10
R_VALUES = 11
#: ``row[R_STATUS]`` after a call: done, or take the row-by-row path.
DONE, TAKE_SLOW_PATH = 0.0, 1.0

#: The plan (int64): the number of feature values ``n``, the options, the
#: number of revealed-target columns ``m``, then the scaler's column of each
#: value (-1: an unseen feature), the network's input column of each value,
#: and the network's columns of the revealed targets.
P_N, P_MODE, P_SCALED, P_REVEALED, P_CLASSES, P_M = range(6)
P_COLUMNS = 6


@njit(**_JIT)
def takes_row(row, plan, learn):
    """Whether the row's values are for this path: finite or missing, and
    (``learn``) none unseen with a value; else the status says so."""
    n = plan[P_N]
    for i in range(n):
        v = row[R_VALUES + i]
        if math.isinf(v) or (learn and plan[P_COLUMNS + i] < 0 and v == v):
            row[R_STATUS] = TAKE_SLOW_PATH
            return False
    row[R_STATUS] = DONE
    return True


@njit(**_JIT)
def standardized_inputs(row, plan, stats, beyond, update, u):
    """The network's inputs ``u``: zeros, then each known feature's value
    standardised into its column (and, with ``update``, joined to the
    statistics ``stats`` of the guarded scaler)."""
    u[:] = 0
    n = plan[P_N]
    clip, glitch, glitch_out = row[R_CLIP], row[R_GLITCH], row[R_GLITCH_OUT]
    warmup, shift_after = row[R_WARMUP], row[R_SHIFT_AFTER]
    for i in range(n):
        j = plan[P_COLUMNS + i]
        if j >= 0:
            u[plan[P_COLUMNS + n + i]] = standardize_value(stats, beyond, j, row[R_VALUES + i], update, clip,
                                                           glitch, glitch_out, warmup, shift_after)


@njit(**_JIT)
def _revealed_columns(plan):
    n = plan[P_N]
    return plan[P_COLUMNS + 2 * n : P_COLUMNS + 2 * n + plan[P_M]]


# ---------------------------------------------------------------- regressors


@njit(**_JIT)
def regressor_forecast(out, carried, y_stats, scaled, mode, changes, errors, scored, warmup, margin):
    """The forecast of a regressor from the network's outputs ``out``, as
    :meth:`~streamrnn.target_change.TargetChange.forecast_one` gives it from
    the target's moments and the base ``carried[-1]``."""
    mean, std = 0.0, 1.0
    if scaled:
        count, mean, root = y_stats[0, 0], y_stats[1, 0], y_stats[2, 0]
        std = root / math.sqrt(max(count, 1.0)) if count > 1 and root > 0 else 0.0
    base = carried[carried.shape[0] - 1]
    o0 = np.float64(out[0])
    if mode == LEVEL or base != base:
        return mean + std * o0 if mode != CHANGE else mean
    s = changes[1] / changes[0] if changes[0] > 0 and changes[1] > 0 else 1.0
    if mode == CHANGE:
        return base + s * o0
    # auto: the candidate with the smallest running error (no change within the margin)
    choice = 1
    if scored[0] >= warmup:
        best = 0 if errors[0] <= errors[2] else 2
        if errors[best] < margin * errors[1]:
            choice = best
    if choice == 0:
        return base + s * np.float64(out[1])
    return base if choice == 1 else mean + std * o0


@njit(**_JIT)
def regressor_predict(row, plan, stats, carried, lay, buf, scratch, y_stats, changes, errors, scored):
    """``predict_one`` of a regressor without entities: the forecast (NaN
    with ``row[R_STATUS]`` set when the row is not for this path)."""
    if not takes_row(row, plan, False):
        return math.nan
    n_in = lay[L_INPUT]
    u, out = scratch[:n_in], scratch[n_in : n_in + lay[L_OUTPUT]]
    standardized_inputs(row, plan, stats, stats[0], False, u)
    ycols = _revealed_columns(plan)
    for j in range(ycols.shape[0]):
        v = carried[j]
        u[ycols[j]] = v if v == v else 0.0
    predict_one(lay, buf, u, out)
    return regressor_forecast(out, carried, y_stats, plan[P_SCALED] != 0, plan[P_MODE], changes, errors, scored,
                              row[R_WARMUP], row[R_MARGIN])


@njit(**_JIT)
def regressor_learn(row, plan, stats, beyond, carried, lay, ctr, buf, scratch, y_stats, y_beyond, changes, errors,
                    scored):
    """``learn_one`` of a regressor without entities, the target in
    ``row[R_TARGET]``: the features' statistics, the target's, the revealed
    targets and the change scale move on, the network learns the step, and
    (``"auto"``) the candidates are scored."""
    if not takes_row(row, plan, True):
        return
    n_in, n_out = lay[L_INPUT], lay[L_OUTPUT]
    u, target, out = scratch[:n_in], scratch[n_in : n_in + n_out], scratch[n_in + n_out : n_in + 2 * n_out]
    standardized_inputs(row, plan, stats, beyond, True, u)
    ycols = _revealed_columns(plan)
    k = carried.shape[0] - 1
    mode = plan[P_MODE]
    outputs = 2 if mode == AUTO else 1
    floats = np.empty(1 + outputs + k + 5)
    y = floats[:1]
    y[0] = row[R_TARGET]
    T = floats[1 : 1 + outputs].reshape((1, outputs))
    R = floats[1 + outputs : 1 + outputs + k].reshape((1, k))
    seen = floats[1 + outputs + k :].reshape((1, 5))
    regression_targets(y_stats, y_beyond, row[R_Y_GLITCH], row[R_Y_GLITCH_OUT], row[R_WARMUP], row[R_SHIFT_AFTER],
                       row[R_CLIP], plan[P_SCALED] != 0, mode, y, carried, changes, T, R, seen)
    for j in range(ycols.shape[0]):
        u[ycols[j]] = R[0, j]
    for o in range(n_out):
        target[o] = T[0, o]
    learn_one(lay, ctr, buf, u, target, out)
    if mode == AUTO:
        score_candidates(out.reshape((1, n_out)), y, seen, errors, scored, row[R_SPAN])


# --------------------------------------------------------------- classifiers


@njit(**_JIT)
def _one_hots(row, plan, u):
    """The one-hots of the last classes learned (in the row after the
    values): class ``c`` at lag ``j + 1`` is revealed-target column ``c * k + j``."""
    n, k = plan[P_N], plan[P_REVEALED]
    ycols = _revealed_columns(plan)
    for j in range(k):
        c = int(row[R_VALUES + n + j])
        if c >= 0:
            u[ycols[c * k + j]] = 1.0


@njit(**_JIT)
def classifier_logits(row, plan, stats, lay, buf, scratch, shifted):
    """``predict_proba_one`` of a classifier without entities, up to the
    exponential: each seen class's logit (as float64) less the largest into
    ``shifted`` (NaN throughout if one is NaN); ``row[R_STATUS]`` set when
    the row is not for this path."""
    if not takes_row(row, plan, False):
        return
    n_in = lay[L_INPUT]
    u, out = scratch[:n_in], scratch[n_in : n_in + lay[L_OUTPUT]]
    standardized_inputs(row, plan, stats, stats[0], False, u)
    _one_hots(row, plan, u)
    predict_one(lay, buf, u, out)
    nc = shifted.shape[0]
    if nc == 0:
        return
    top = np.float64(out[0])  # (NaN if any is: as NumPy's max)
    for c in range(1, nc):
        v = np.float64(out[c])
        if top != top:
            break
        if v != v or v > top:
            top = v
    for c in range(nc):
        shifted[c] = np.float64(out[c]) - top


@njit(**_JIT)
def classifier_learn(row, plan, stats, beyond, lay, ctr, buf, scratch):
    """``learn_one`` of a classifier without entities, for a class seen
    before (its index in ``row[R_TARGET]``): the features' statistics move
    on and the network learns the step towards the class's one-hot."""
    if not takes_row(row, plan, True):
        return
    n_in, n_out = lay[L_INPUT], lay[L_OUTPUT]
    u, target, out = scratch[:n_in], scratch[n_in : n_in + n_out], scratch[n_in + n_out : n_in + 2 * n_out]
    standardized_inputs(row, plan, stats, beyond, True, u)
    _one_hots(row, plan, u)
    target[:] = 0
    target[int(row[R_TARGET])] = 1.0
    learn_one(lay, ctr, buf, u, target, out)
