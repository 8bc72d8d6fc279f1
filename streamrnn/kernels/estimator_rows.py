"""One River row in one kernel call: a regressor's or classifier's feature
values standardised into the network's inputs beside the revealed targets,
the network's step, and (regressors) the forecast or the target side.

The same arithmetic as the estimators' row-by-row path (standardisation by
:func:`.scaling.standardize_value`, targets by
:func:`.sequential.regression_targets`, the network by
:func:`.recurrent.predict_one` and :func:`.recurrent.learn_one`), so each
prediction is bit-identical to it; what differs is that a row costs one
call and no temporary Python or NumPy objects.

Every kernel takes a float64 *row* (the constants, what a regressor's
forecast needs of its state, the per-row values) and an int64 *plan* (the
columns of the row's features, of the revealed targets, the options and
the network's layout), laid out as below. A kernel that meets a value it
does not take (an infinite feature, or while learning an unseen feature with
a value) or arrays that do not fit its plan (statistics for fewer columns,
a network of another layout: an edited state, which the row-by-row path
refuses) sets ``row[R_STATUS]`` to :data:`TAKE_SLOW_PATH` before changing
anything, and the caller takes the row-by-row path, which raises or
registers the feature.

The predictions also read the feature dict itself
(:func:`regressor_predict_dict`, :func:`classifier_proba_dict`, from
:mod:`.pyobjects`): where its keys are the plan's key objects in the plan's
order and its values numbers it reads, they go into the row without
the interpreter (else ``row[R_STATUS]`` is :data:`NOT_READ` and the caller
packs the row itself); and a classifier's softmax is taken in the kernel,
by NumPy's own exponential (:mod:`.numpy_exp`), bit for bit as before.
"""

import math

import numpy as np
from numba import njit

from .. import config
from .layout import L_BUF, L_INPUT, L_OUTPUT, N_CTR
from .numpy_exp import exp_into
from .pyobjects import OBJECTS, read_floats
from .recurrent import learn_one, predict_one
from .scaling import standardize_value
from .sequential import AUTO, CHANGE, LEVEL, regression_targets, score_candidates

# No fast-math: the arithmetic of the row-by-row path, step for step.
_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy")
# The kernels that read Python objects hold the GIL (and a call of a
# microsecond gains nothing from releasing it).
_WITH_GIL = dict(cache=config.CACHE, error_model="numpy")

#: The row (float64): a status the kernel writes, the constants of the
#: scalers and of the forecast, the forecast's terms (a regressor's
#: ``a + b * out[o]``, or ``a`` where ``o`` < 0: what its state gives
#: any prediction, set after each learned row), then what the stream
#: revealed (the revealed-target inputs of a regressor's prediction; the
#: last classes a classifier learned, the latest first, -1: none), then from
#: ``plan[P_VALUES]`` on the feature values in the plan's order and the
#: target (a classifier's: the class's index).
(R_STATUS, R_CLIP, R_GLITCH, R_GLITCH_OUT, R_WARMUP, R_SHIFT_AFTER, R_Y_GLITCH, R_Y_GLITCH_OUT, R_SPAN, R_MARGIN,
 R_FORECAST_A, R_FORECAST_B, R_FORECAST_OUT) = range(13)
R_REVEALED = 13
#: ``row[R_FORECAST_OUT]`` where the forecast's terms are not set.
UNSET = -2
#: ``row[R_STATUS]`` after a call: done, take the row-by-row path, or (the
#: kernels that read a dict) the dict was not read: pack the row and call again.
DONE, TAKE_SLOW_PATH, NOT_READ = 0.0, 1.0, 2.0

#: The plan (int64): the number of feature values ``n``, the options, the
#: number ``m`` of revealed-target columns, where the values start in the
#: row, where the network's layout and the keys' addresses start in the
#: plan, the addresses of NumPy's exponential loop and its data (0: none,
#: from :func:`.numpy_exp.exp_loop`), what describes the interpreter's objects
#: (:data:`.pyobjects.OBJECTS`) and the state of a dict's reading
#: (3 values); then the scaler's column of each value (-1: an unseen
#: feature), the network's input column of each value, the network's
#: columns of the revealed targets, the addresses of the keys (``id``), and
#: the network's layout (``lay``).
P_N, P_MODE, P_SCALED, P_REVEALED, P_CLASSES, P_M, P_VALUES, P_LAY, P_KEYS, P_EXP, P_EXP_DATA = range(11)
P_OBJECTS = 11
P_DICT = P_OBJECTS + len(OBJECTS)
P_COLUMNS = P_DICT + 3


@njit(**_JIT)
def _layout(plan):
    return plan[plan[P_LAY] :]


@njit(**_JIT)
def _lay(plan, field):
    """The network layout's ``field`` (an element, not a view: a view costs
    reference counting on every call)."""
    return plan[plan[P_LAY] + field]


@njit(**_JIT)
def takes_row(row, plan, learn, stats, beyond, buf, scratch):
    """Whether the row is for this path: its values finite or missing and
    (``learn``) none unseen with a value, the statistics, the network's
    buffer and the scratch of the sizes the plan indexes (nothing here is
    bounds-checked); else the status says so."""
    row[R_STATUS] = TAKE_SLOW_PATH
    n, at = plan[P_N], plan[P_VALUES]
    if (buf.shape[0] != _lay(plan, L_BUF) or scratch.shape[0] < _lay(plan, L_INPUT) + 2 * _lay(plan, L_OUTPUT)
            or at + n >= row.shape[0]):
        return False
    columns = min(stats.shape[1], beyond.shape[0])
    for i in range(n):
        v = row[at + i]
        j = plan[P_COLUMNS + i]
        if math.isinf(v) or (learn and j < 0 and v == v) or j >= columns:
            return False
    row[R_STATUS] = DONE
    return True


@njit(**_JIT)
def standardized_inputs(row, plan, stats, beyond, update, u):
    """The network's inputs ``u``: zeros, then each known feature's value
    standardised into its column (and, with ``update``, joined to the
    statistics ``stats`` of the guarded scaler)."""
    u[:] = 0
    n, at = plan[P_N], plan[P_VALUES]
    clip, glitch, glitch_out = row[R_CLIP], row[R_GLITCH], row[R_GLITCH_OUT]
    warmup, shift_after = row[R_WARMUP], row[R_SHIFT_AFTER]
    for i in range(n):
        j = plan[P_COLUMNS + i]
        if j >= 0:
            u[plan[P_COLUMNS + n + i]] = standardize_value(stats, beyond, j, row[at + i], update, clip, glitch,
                                                           glitch_out, warmup, shift_after)


@njit(**_JIT)
def _revealed_columns(plan):
    n = plan[P_N]
    return plan[P_COLUMNS + 2 * n : P_COLUMNS + 2 * n + plan[P_M]]


# ---------------------------------------------------------------- regressors


@njit(**_JIT)
def regressor_refresh(row, plan, carried, y_stats, changes, errors, scored):
    """What a regressor's state gives its next predictions, into the row:
    the revealed-target inputs (the carried standardised targets, 0 for
    none) and the terms of the forecast from the network's outputs, as
    :meth:`~streamrnn.target_change.TargetChange.forecast_one` forms it from
    the target's moments, the base ``carried[-1]``, the change scale and
    (``"auto"``) the candidates' running errors. Carried values that do
    not fit the plan (an edited state) leave the terms unset: predictions
    then take the row-by-row path."""
    k = carried.shape[0] - 1
    if k != plan[P_M] or R_REVEALED + k > plan[P_VALUES]:
        row[R_FORECAST_OUT] = UNSET
        return
    for j in range(k):
        v = carried[j]
        row[R_REVEALED + j] = v if v == v else 0.0
    mode = plan[P_MODE]
    mean, std = 0.0, 1.0
    if plan[P_SCALED] != 0:
        count, mean, root = y_stats[0, 0], y_stats[1, 0], y_stats[2, 0]
        std = root / math.sqrt(max(count, 1.0)) if count > 1 and root > 0 else 0.0
    base = carried[k]
    s = changes[1] / changes[0] if changes[0] > 0 and changes[1] > 0 else 1.0
    a, b, o = mean, std, 0  # the level
    if mode == LEVEL or base != base:
        if mode == CHANGE:
            o = -1
    elif mode == CHANGE:
        a, b = base, s
    else:  # auto: the candidate with the smallest running error (no change within the margin)
        choice = 1
        if scored[0] >= row[R_WARMUP]:
            best = 0 if errors[0] <= errors[2] else 2
            if errors[best] < row[R_MARGIN] * errors[1]:
                choice = best
        if choice == 0:
            a, b, o = base, s, 1
        elif choice == 1:
            a, o = base, -1
    row[R_FORECAST_A] = a
    row[R_FORECAST_B] = b
    row[R_FORECAST_OUT] = o


@njit(**_JIT)
def regressor_predict(row, plan, stats, buf, scratch):
    """``predict_one`` of a regressor without entities: the forecast (NaN
    with ``row[R_STATUS]`` set when the row is not for this path)."""
    if not takes_row(row, plan, False, stats, stats[0], buf, scratch):
        return math.nan
    lay = _layout(plan)
    n_in = lay[L_INPUT]
    u, out = scratch[:n_in], scratch[n_in : n_in + lay[L_OUTPUT]]
    standardized_inputs(row, plan, stats, stats[0], False, u)
    ycols = _revealed_columns(plan)
    for j in range(ycols.shape[0]):
        u[ycols[j]] = row[R_REVEALED + j]
    o = int(row[R_FORECAST_OUT])
    if o == UNSET:
        row[R_STATUS] = TAKE_SLOW_PATH
        return math.nan
    predict_one(lay, buf, u, out)
    if o < 0:
        return row[R_FORECAST_A]
    return row[R_FORECAST_A] + row[R_FORECAST_B] * np.float64(out[o])


@njit(inline="always")
def learning_vectors(row, plan, stats, beyond, scratch):
    """The network's layout and, in ``scratch``, the step's input (the row's
    features standardised, their statistics moving on), target and output
    vectors, for a row to learn."""
    lay = _layout(plan)
    n_in, n_out = lay[L_INPUT], lay[L_OUTPUT]
    u, target, out = scratch[:n_in], scratch[n_in : n_in + n_out], scratch[n_in + n_out : n_in + 2 * n_out]
    standardized_inputs(row, plan, stats, beyond, True, u)
    return lay, u, target, out


@njit(**_JIT)
def regressor_learn(row, plan, stats, beyond, carried, ctr, buf, scratch, y_stats, y_beyond, changes, errors,
                    scored):
    """``learn_one`` of a regressor without entities, the target after the
    values: the features' statistics, the target's, the revealed targets
    and the change scale move on, the network learns the step, the
    candidates are scored (``"auto"``) and the forecast's terms refreshed.
    Returns whether the row was for this path (``row[R_STATUS]``)."""
    if (not takes_row(row, plan, True, stats, beyond, buf, scratch) or ctr.shape[0] < N_CTR
            or carried.shape[0] != plan[P_M] + 1):
        row[R_STATUS] = TAKE_SLOW_PATH
        return False
    lay, u, target, out = learning_vectors(row, plan, stats, beyond, scratch)
    ycols = _revealed_columns(plan)
    k = carried.shape[0] - 1
    mode = plan[P_MODE]
    outputs = 2 if mode == AUTO else 1
    floats = np.empty(1 + outputs + k + 5)
    y = floats[:1]
    y[0] = row[plan[P_VALUES] + plan[P_N]]
    T = floats[1 : 1 + outputs].reshape((1, outputs))
    R = floats[1 + outputs : 1 + outputs + k].reshape((1, k))
    seen = floats[1 + outputs + k :].reshape((1, 5))
    regression_targets(y_stats, y_beyond, row[R_Y_GLITCH], row[R_Y_GLITCH_OUT], row[R_WARMUP], row[R_SHIFT_AFTER],
                       row[R_CLIP], plan[P_SCALED] != 0, mode, y, carried, changes, T, R, seen)
    for j in range(ycols.shape[0]):
        u[ycols[j]] = R[0, j]
    for o in range(target.shape[0]):
        target[o] = T[0, o]
    learn_one(lay, ctr, buf, u, target, out)
    if mode == AUTO:
        score_candidates(out.reshape((1, out.shape[0])), y, seen, errors, scored, row[R_SPAN])
    regressor_refresh(row, plan, carried, y_stats, changes, errors, scored)
    return True


# --------------------------------------------------------------- classifiers


@njit(**_JIT)
def _classes_fit(row, plan, c):
    """Whether the last classes learned and ``c`` (-1: none) have outputs
    and revealed-target columns in the plan."""
    k, classes = plan[P_REVEALED], plan[P_CLASSES]
    if c >= classes or plan[P_M] != classes * k or _lay(plan, L_OUTPUT) < classes:
        return False
    for j in range(k):
        if row[R_REVEALED + j] >= classes:
            return False
    return True


@njit(**_JIT)
def _one_hots(row, plan, u):
    """The one-hots of the last classes learned: class ``c`` at lag ``j + 1``
    is revealed-target column ``c * k + j``."""
    k = plan[P_REVEALED]
    ycols_at = P_COLUMNS + 2 * plan[P_N]
    for j in range(k):
        c = int(row[R_REVEALED + j])
        if c >= 0:
            u[plan[ycols_at + c * k + j]] = 1.0


@njit(**_JIT)
def classifier_logits(row, plan, stats, buf, scratch, shifted):
    """``predict_proba_one`` of a classifier without entities, up to the
    exponential: each seen class's logit (as float64) less the largest into
    ``shifted`` (NaN throughout if one is NaN). Returns whether the row was
    for this path (``row[R_STATUS]``)."""
    if not (takes_row(row, plan, False, stats, stats[0], buf, scratch) and _classes_fit(row, plan, -1)):
        row[R_STATUS] = TAKE_SLOW_PATH
        return False
    lay = _layout(plan)
    n_in = lay[L_INPUT]
    u, out = scratch[:n_in], scratch[n_in : n_in + lay[L_OUTPUT]]
    standardized_inputs(row, plan, stats, stats[0], False, u)
    _one_hots(row, plan, u)
    predict_one(lay, buf, u, out)
    nc = shifted.shape[0]
    if nc == 0:
        return True
    top = np.float64(out[0])  # (NaN if any is: as NumPy's max)
    for c in range(1, nc):
        v = np.float64(out[c])
        if top != top:
            break
        if v != v or v > top:
            top = v
    for c in range(nc):
        shifted[c] = np.float64(out[c]) - top
    return True


@njit(**_JIT)
def classifier_learn(row, plan, stats, beyond, ctr, buf, scratch):
    """``learn_one`` of a classifier without entities, for a class seen
    before (its index as the target): the features' statistics move on,
    the network learns the step towards the class's one-hot and the class
    joins the last classes learned. Returns whether the row was for this
    path (``row[R_STATUS]``)."""
    c = row[plan[P_VALUES] + plan[P_N]]
    if not (takes_row(row, plan, True, stats, beyond, buf, scratch) and ctr.shape[0] >= N_CTR
            and _classes_fit(row, plan, c)):
        row[R_STATUS] = TAKE_SLOW_PATH
        return False
    lay, u, target, out = learning_vectors(row, plan, stats, beyond, scratch)
    _one_hots(row, plan, u)
    target[:] = 0
    target[int(c)] = 1.0
    learn_one(lay, ctr, buf, u, target, out)
    for j in range(plan[P_REVEALED] - 1, 0, -1):
        row[R_REVEALED + j] = row[R_REVEALED + j - 1]
    if plan[P_REVEALED] > 0:
        row[R_REVEALED] = c
    return True


# ------------------------------------------------- predictions from the dict


@njit(**_WITH_GIL)
def _read_dict(row, plan, address):
    """The values of the dict at ``address`` into the row, where it holds
    the plan's keys in order and numbers :func:`.pyobjects.read_floats`
    reads; else ``row[R_STATUS]`` is
    :data:`NOT_READ`."""
    if read_floats(address, plan, plan[P_KEYS], plan[P_N], P_DICT, P_OBJECTS, row, plan[P_VALUES]):
        return True
    row[R_STATUS] = NOT_READ
    return False


@njit(**_WITH_GIL)
def regressor_predict_dict(row, plan, stats, buf, scratch, address):
    """:func:`regressor_predict` of the dict at ``address`` (NaN with
    ``row[R_STATUS]`` set where it is not for this call)."""
    if not _read_dict(row, plan, address):
        return math.nan
    return regressor_predict(row, plan, stats, buf, scratch)


@njit(**_WITH_GIL)
def classifier_proba_dict(row, plan, stats, buf, scratch, shifted, address):
    """:func:`classifier_logits` of the dict at ``address``, then, where
    the plan holds NumPy's float64 exponential (``plan[P_EXP]``; 0: leave
    the logits), the probabilities into ``shifted``: NumPy's exponential of
    each, each over their sum in order from 0 (NumPy's sum of fewer than 8
    values). Returns whether the row was for this call (else
    ``row[R_STATUS]`` says why)."""
    if not (_read_dict(row, plan, address) and classifier_logits(row, plan, stats, buf, scratch, shifted)):
        return False
    nc = shifted.shape[0]
    if plan[P_EXP] != 0 and nc > 0:
        exp_into(plan[P_EXP], plan[P_EXP_DATA], shifted, nc)
        total = 0.0
        for c in range(nc):
            total += shifted[c]
        for c in range(nc):
            shifted[c] = shifted[c] / total
    return True


@njit(**_WITH_GIL)
def classifier_binary_dict(row, plan, stats, buf, scratch, shifted, address):
    """:func:`classifier_proba_dict` of two classes, the exponential in the
    plan: their probabilities (NaN with ``row[R_STATUS]`` set where the row
    is not for this call)."""
    if not classifier_proba_dict(row, plan, stats, buf, scratch, shifted, address):
        return math.nan, math.nan
    return shifted[0], shifted[1]
