"""Kernels of the forecasters' statistical candidates and of their
combination: robust seasonal exponential smoothing
(:class:`streamrnn.smoothing.SeasonalSmoothing`) and per-horizon weighting
and scoring (:class:`streamrnn.combination.HorizonCombination`). Scalar
loops over a few settings and horizons: compiled, they cost a microsecond
or two a step, where the same NumPy calls cost tens."""

import math

import numpy as np

from numba import njit

from .. import config

# No fast-math: these are short scalar loops, and NaN marks a missing forecast.
_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy")


@njit(**_JIT)
def smoothing_update(params, state, season, season_long, t, m, M, z, clip, decay, shift_after):
    """Learn value ``z``, the ``t``-th (from 0), in every setting.

    ``params`` rows: alpha, gamma of the period ``m`` and of the long period
    ``M`` (each already times ``1 - alpha``); ``state`` rows: level, running
    mean square of the clipped errors, signed count of the last errors
    beyond the clip (all of one sign); ``season`` ``(K, m)`` and
    ``season_long`` ``(K, M)`` the indices (``m``, ``M`` 0 when absent).
    """
    K = params.shape[1]
    if t == 0:
        for k in range(K):
            state[0, k] = z
        return
    if m > 0 and t < m:  # the first cycle sets each phase's index from the first value
        for k in range(K):
            season[k, t] = z - state[0, k]
        return
    first = t < max(m, 1) + 2  # the first errors set the scale
    for k in range(K):
        expected = state[0, k]
        if m > 0:
            expected += season[k, t % m]
        if M > 0 and t >= 2 * M:
            expected += season_long[k, t % M]
        e = z - expected
        if first:
            state[1, k] = max(state[1, k], e * e)
        bound = clip * math.sqrt(state[1, k])
        side = 0.0
        if e > bound:
            side = 1.0
        elif e < -bound:
            side = -1.0
        count = state[2, k]
        if side != 0.0 and side * count > 0:
            count += side
        else:
            count = side
        state[2, k] = count
        if abs(count) < shift_after and bound > 0:  # (no scale yet after a constant start: no clip)
            e = min(max(e, -bound), bound)
        state[1, k] += decay * (e * e - state[1, k])
        state[0, k] += params[0, k] * e
        if m > 0:
            season[k, t % m] += params[1, k] * e
        if M > 0 and t >= M:
            season_long[k, t % M] += params[2, k] * e


@njit(**_JIT)
def smoothing_forecast(state, season, season_long, t, m, M, out):
    """Each setting's forecasts of the values ``t, t + 1, ...`` into the rows
    of ``out`` ``(K, horizon)``; NaN while the first cycle is incomplete."""
    K, horizon = out.shape
    for k in range(K):
        for h in range(horizon):
            if t == 0 or (m > 0 and t < m):
                out[k, h] = math.nan
                continue
            v = state[0, k]
            if m > 0:
                v += season[k, (t + h) % m]
            if M > 0 and t >= 2 * M:
                v += season_long[k, (t + h) % M]
            out[k, h] = v


@njit(**_JIT)
def combination_observe(made, origin, unit, sq_errors, counts, abs_errors, n_abs, t, z, discount, thin):
    """Value ``z`` (the ``t``-th, from 0) arrived: score the forecasts made
    for it ``h`` steps earlier, ``origin[o] + unit[o] * made[o, row, h - 1]``
    with ``o = (t - h + 1) % H`` (the value at that origin, and the
    forecast's change from it in float32, in units of ``unit[o]``): the
    candidates' and their mixture's (rows ``0 .. C``) into the discounted
    sums of squared errors ``sq_errors`` and counts ``counts`` ``(C + 1,
    H)``, and the absolute errors of the first candidate and of the mixture
    into their rings, ``abs_errors[0]`` and ``abs_errors[1]`` ``(H,
    window)``, for the origins that are multiples of ``thin``. Then clear
    the row of the next origin."""
    H = made.shape[0]
    rows = sq_errors.shape[0]
    window = abs_errors.shape[2]
    n = min(t + 1, H)
    for s in range(n):
        at = (t - s) % H
        for c in range(rows):
            f = origin[at] + unit[at] * made[at, c, s]
            sq_errors[c, s] *= discount
            counts[c, s] *= discount
            if not math.isnan(f):
                e = f - z
                if math.isfinite(e):
                    sq_errors[c, s] += e * e
                    counts[c, s] += 1.0
        if (t - s) % thin != 0:  # the rings keep the errors of every thin-th origin
            continue
        for ring in range(2):
            e = origin[at] + unit[at] * made[at, 0 if ring == 0 else rows - 1, s] - z
            if math.isfinite(e):
                abs_errors[ring, s, n_abs[ring, s] % window] = abs(e)
                n_abs[ring, s] += 1
    nxt = (t + 1) % H
    origin[nxt] = math.nan
    for c in range(rows):
        for s in range(H):
            made[nxt, c, s] = math.nan


@njit(**_JIT)
def observe_smoothed(made, origin, unit, sq_errors, counts, abs_errors, n_abs, t, z, discount, thin, params, state,
                     season, season_long, n, m, M, clip, decay, shift_after, recent, n_recent):
    """A forecaster's value ``z`` arrived, in one call:
    :func:`combination_observe` (its arguments up to ``thin``), then
    :func:`smoothing_update` of ``z`` (``params`` ... ``shift_after``; ``n``:
    the smoothing's count), then ``z`` into the ring of recent values
    ``recent`` (``n_recent`` written before it)."""
    combination_observe(made, origin, unit, sq_errors, counts, abs_errors, n_abs, t, z, discount, thin)
    smoothing_update(params, state, season, season_long, n, m, M, z, clip, decay, shift_after)
    recent[n_recent % recent.shape[0]] = z


@njit(**_JIT)
def combination_record(made, origin, unit, i, forecasts, mixture, at):
    """Keep in row ``i`` the candidates' ``forecasts`` ``(C, >= H)`` and their
    ``mixture`` of the next ``H`` values, the value now being ``at``: as
    float32 changes from ``at`` in units of the row's largest finite change
    (1 if there is none), kept in ``unit[i]``; NaN stays NaN."""
    C = forecasts.shape[0]
    H = made.shape[2]
    largest = 0.0
    for c in range(C + 1):
        for h in range(H):
            f = mixture[h] if c == C else forecasts[c, h]
            d = abs(f - at)
            if d > largest and d < math.inf:
                largest = d
    u = largest if largest > 0.0 else 1.0
    for c in range(C + 1):
        for h in range(H):
            f = mixture[h] if c == C else forecasts[c, h]
            made[i, c, h] = (f - at) / u
    origin[i] = at
    unit[i] = u


@njit(**_JIT)
def combination_combine(sq_errors, counts, forecasts, min_count, trim, margin, fallback, mixture, out, choice):
    """At each horizon ``h`` (beyond the tracked ones, the last one's
    errors): into ``mixture``, the mean of the available ``forecasts`` ``(C,
    horizon)`` weighted by ``(best MSE / MSE) ** 2`` over the candidates with
    a count of at least ``min_count`` there and an MSE within ``trim`` times
    the best (where none is, candidate ``fallback``'s forecast, or the first
    one's if it has none); into ``out``, the mixture where the first
    candidate has not been scored enough there or the mixture's own MSE is
    below ``margin`` times the first candidate's, else the first candidate's
    forecast; into ``choice``, 1 where the mixture is given, else 0."""
    C, horizon = forecasts.shape
    H = sq_errors.shape[1]
    for h in range(horizon):
        j = min(h, H - 1)
        best = math.inf
        for c in range(C):
            if counts[c, j] >= min_count:
                best = min(best, sq_errors[c, j] / counts[c, j])
        total = 0.0
        acc = 0.0
        if best < math.inf:
            for c in range(C):
                f = forecasts[c, h]
                if counts[c, j] >= min_count and not math.isnan(f):
                    mse = sq_errors[c, j] / counts[c, j]
                    if mse > trim * best:
                        continue
                    ratio = 1.0 if mse == best else best / mse
                    w = ratio * ratio
                    total += w
                    acc += w * f
        first = forecasts[0, h]
        if total > 0:
            mixture[h] = acc / total
        else:
            mixture[h] = first if math.isnan(forecasts[fallback, h]) else forecasts[fallback, h]
        out[h] = mixture[h]
        choice[h] = 1
        if counts[0, j] >= min_count:
            # the first candidate has a record here: given unless the mixture's is better
            if not (counts[C, j] >= min_count and sq_errors[C, j] / counts[C, j] < margin * (sq_errors[0, j] / counts[0, j])):
                out[h] = first
                choice[h] = 0


@njit(**_JIT)
def gate_departure(d, gate_scale, reach, sq_errors, counts, min_count):
    """In place, the steps ``d`` of a departure from a path, their running
    sums ``S_k`` (k = 1..n) kept within ``±b_k``: ``b_k = gate_scale *
    sqrt(k)``, and at most ``reach`` times the path's root mean squared
    error at horizon ``k`` (``sq_errors / counts``, where ``counts >=
    min_count``; beyond the last horizon, the last one's grown as
    ``sqrt(k / H)``). ``d`` is left as it is (bit for bit) where every sum
    stays within; a NaN sum stays NaN."""
    n = d.shape[0]
    H = sq_errors.shape[0]
    bound = np.empty(n)
    clip = False
    total = 0.0
    for k in range(n):
        b = gate_scale * math.sqrt(k + 1.0)
        if H > 0:
            j = min(k, H - 1)
            if counts[j] >= min_count:
                r = reach * math.sqrt(sq_errors[j] / counts[j])
                if k >= H:
                    r *= math.sqrt((k + 1.0) / H)
                b = min(b, r)
        bound[k] = b
        total += d[k]
        if not abs(total) <= b:
            clip = True
    if not clip:
        return
    total = 0.0
    previous = 0.0
    for k in range(n):
        total += d[k]
        c = total
        if c > bound[k]:
            c = bound[k]
        elif c < -bound[k]:
            c = -bound[k]
        d[k] = c - previous
        previous = c


@njit(**_JIT)
def seasonal_naive(recent, n, m, out):
    """Into ``out``, the seasonal naive forecasts of period ``m`` of the
    next ``len(out)`` values from the ring ``recent`` of the last values
    (``n`` written so far): the value ``m`` steps before each (NaN while
    fewer than ``m`` are known)."""
    L = recent.shape[0]
    if m <= 0 or n < m:
        out[:] = np.nan
        return
    for h in range(out.shape[0]):
        out[h] = recent[(n - m + h % m) % L]


@njit(**_JIT)
def seasonal_naives(recent, n, m, long_m, F, row):
    """:func:`seasonal_naive` of periods ``m`` and ``long_m`` into rows
    ``row`` and ``row + 1`` of ``F`` (one call: each costs more than its work)."""
    seasonal_naive(recent, n, m, F[row])
    seasonal_naive(recent, n, long_m, F[row + 1])


@njit(**_JIT)
def statistical_path(d, s, last, rho, by_phase, seen, phase0):
    """In place, the running sums of the changes forecast step by step: into
    ``d``, those of ``d`` (the network's) plus the reversion ``last * rho **
    k`` (none where ``rho`` is 0) plus the seasonal base's change at the
    step's phase (``by_phase``, from phase ``phase0`` on; 0 at a phase not
    ``seen``; no base where ``by_phase`` is empty); into ``s``, the same
    without the network's."""
    m = by_phase.shape[0]
    sum_d = 0.0
    sum_s = 0.0
    for k in range(d.shape[0]):
        step = d[k]
        without = 0.0
        if rho != 0.0:
            reversion = last * rho ** (k + 1.0)
            step += reversion
            without += reversion
        if m > 0:
            p = (phase0 + k) % m
            if seen[p]:
                change = by_phase[p]
                step += change
                without += change
        sum_d += step
        sum_s += without
        d[k] = sum_d
        s[k] = sum_s


@njit(**_JIT)
def seasonal_weights(errors, no_change_error, n_errors, margin, out):
    """A seasonal base's weights of its constants, from their summed
    absolute one-step ``errors`` over ``n_errors`` steps (``n_errors`` > 0),
    into ``out``: ``exp(-(E_k - E_min) / (E_min / n))`` normalised (where
    ``E_min`` is 0: 1 for each constant without error, 0 for the others).
    Returns False (``out`` untouched) where the base forecasts no change: an
    error is NaN, or the lowest is not below ``margin`` times the error of
    no change. (The Python it replaces, operation for operation: the same
    bits.)"""
    K = errors.shape[0]
    total = 0.0
    for k in range(K):
        total += errors[k]
    if total != total:
        return False
    lowest = errors[0]
    for k in range(1, K):
        if errors[k] < lowest:
            lowest = errors[k]
    if not lowest < margin * no_change_error:
        return False
    norm = 0.0
    if lowest <= 0:
        for k in range(K):
            out[k] = 1.0 if errors[k] <= 0 else 0.0
            norm += out[k]
    else:
        scale = n_errors / lowest
        for k in range(K):
            out[k] = math.exp((lowest - errors[k]) * scale)
            norm += out[k]
    for k in range(K):
        out[k] = out[k] / norm
    return True


@njit(**_JIT)
def seasonal_base_update(means, seen, errors, gammas, phase, change):
    """A seasonal base's update by the ``change`` at ``phase``: each
    constant's mean there moves by ``gammas[i]`` of its error, whose absolute
    value adds to ``errors[i]``; a phase not seen yet starts at ``change``.
    Returns whether the phase had been seen (its errors scored)."""
    if seen[phase]:
        for i in range(means.shape[0]):
            step = change - means[i, phase]
            errors[i] += abs(step)
            means[i, phase] += step * gammas[i]
        return True
    for i in range(means.shape[0]):
        means[i, phase] = change
    seen[phase] = True
    return False


@njit(**_JIT)
def record_origin(d, gate_scale, reach, last, rho, by_phase, seen, phase0, z, state, season, season_long, t, m,
                  long_m, recent, n_recent, sq_errors, counts, min_count, trim, margin, made, origin, unit, i, F,
                  mixture, given, choice):
    """A forecaster's candidates at an origin, their combination and its
    record, in one call: the network's departure ``d`` gated
    (:func:`gate_departure`, by the path without the network, the last row
    of ``sq_errors``/``counts``), the recurrent path and the path without
    the network (:func:`statistical_path`) from the value now ``z``, into
    ``F``'s first and last rows; each smoothing setting's forecasts
    (:func:`smoothing_forecast`, smoothing state ``state``, ``season``,
    ``season_long`` after ``t`` values, periods ``m`` and ``long_m``), the
    last value and the seasonal naive forecasts (:func:`seasonal_naives`,
    ring ``recent``, ``n_recent`` written) into the rows between; their
    ``mixture``, the forecast ``given`` and the ``choice``
    (:func:`combination_combine`), kept in row ``i`` of the record
    (:func:`combination_record`). ``d`` is overwritten."""
    C = F.shape[0]
    H = F.shape[1]
    k = state.shape[1]
    gate_departure(d, gate_scale, reach, sq_errors[C - 1], counts[C - 1], min_count)
    s = F[C - 1]
    statistical_path(d, s, last, rho, by_phase, seen, phase0)
    for h in range(H):
        F[0, h] = d[h] + z
        s[h] += z
    smoothing_forecast(state, season, season_long, t, m, long_m, F[1 : k + 1])
    F[k + 1, :] = recent[(n_recent - 1) % recent.shape[0]]
    seasonal_naives(recent, n_recent, m, long_m, F, k + 2)
    combination_combine(sq_errors, counts, F, min_count, trim, margin, C - 1, mixture, given, choice)
    combination_record(made, origin, unit, i, F, mixture, z)


@njit(**_JIT)
def scaled_column(U, col, values, scale, clip):
    """``U[k, col] = clip(values[k] / scale, -clip, clip)`` for each ``k``
    of ``values`` (as ``np.clip`` does: NaN and -0.0 kept; three NumPy calls
    and a strided copy cost a few microseconds more on 48 values)."""
    for k in range(values.shape[0]):
        v = values[k] / scale
        if v < -clip:
            v = -clip
        elif v > clip:
            v = clip
        U[k, col] = v


@njit(**_JIT)
def observe_record(made, origin, unit, sq_errors, counts, abs_errors, n_abs, t, z, discount, thin, params, state,
                   season, season_long, n, sm, sM, clip, decay, shift_after, recent, n_recent, d, gate_scale, reach,
                   last, rho, by_phase, seen, phase0, m, long_m, min_count, trim, margin, F, mixture, given, choice):
    """A forecaster's value ``z`` arrived and its next origin, in one call:
    :func:`observe_smoothed` (its arguments up to ``n_recent``; ``sm``,
    ``sM``: the smoothing's periods), then :func:`record_origin` from the
    value ``z`` (``d`` ... ``choice``, the record's arrays those of the
    observation, after it: the smoothing's ``n + 1`` values, ``n_recent +
    1`` recent ones, row ``(t + 1) % H``)."""
    observe_smoothed(made, origin, unit, sq_errors, counts, abs_errors, n_abs, t, z, discount, thin, params, state,
                     season, season_long, n, sm, sM, clip, decay, shift_after, recent, n_recent)
    record_origin(d, gate_scale, reach, last, rho, by_phase, seen, phase0, z, state, season, season_long, n + 1, m,
                  long_m, recent, n_recent + 1, sq_errors, counts, min_count, trim, margin, made, origin, unit,
                  (t + 1) % made.shape[0], F, mixture, given, choice)
