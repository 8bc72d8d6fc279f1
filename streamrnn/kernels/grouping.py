"""Rows of a batch grouped by model, for the bank kernels.

``group_rows`` is a counting sort on the slots: the models in slot order
(increasing or decreasing), each model's rows in arrival order (what a
stable argsort gives), in one pass over the rows and one over the slots up
to the largest, without sorting (a tenth of numpy's ``argsort`` and its
companions for 1,000 rows).
"""

import numpy as np
from numba import njit

from .. import config


@njit(cache=config.CACHE, nogil=True)
def group_rows(slots, n_slots, descending):
    """``(groups, starts, order)`` for the rows' ``slots`` (each below
    ``n_slots``): ``groups`` the distinct slots in increasing order (in
    decreasing order if ``descending``), the rows of ``groups[g]`` being
    ``order[starts[g]:starts[g + 1]]`` in arrival order."""
    count = np.zeros(n_slots, dtype=np.int64)
    for i in range(slots.shape[0]):
        count[slots[i]] += 1
    n_groups = 0
    for s in range(n_slots):
        if count[s] > 0:
            n_groups += 1
    groups = np.empty(n_groups, dtype=np.int64)
    starts = np.empty(n_groups + 1, dtype=np.int64)
    at = count  # becomes each slot's next position in ``order``
    total = g = 0
    for k in range(n_slots):
        s = n_slots - 1 - k if descending else k
        c = count[s]
        if c > 0:
            groups[g] = s
            starts[g] = total
            g += 1
        at[s] = total
        total += c
    starts[n_groups] = total
    order = np.empty(slots.shape[0], dtype=np.int64)
    for i in range(slots.shape[0]):
        s = slots[i]
        order[at[s]] = i
        at[s] += 1
    return groups, starts, order


@njit(cache=config.CACHE, nogil=True)
def dense_groups(slots, descending):
    """``(groups, starts, order, True)`` by ``group_rows`` when the int64
    ``slots`` are non-negative and dense enough for a counting sort (the
    largest below four times their number plus 64), found in the same call;
    else ``(empty, empty, empty, False)`` (slots few and far apart, or
    negative codes: for a stable sort). One call where the bounds and the
    choice were numpy calls of their own (~15 µs a batch, 0.015 µs a row of
    a 1,000-key tick)."""
    n = slots.shape[0]
    empty = np.empty(0, dtype=np.int64)
    if n == 0:
        return empty, np.zeros(1, dtype=np.int64), empty, True
    low = high = slots[0]
    for i in range(n):
        low = min(low, slots[i])
        high = max(high, slots[i])
    if low < 0 or high + 1 > 4 * n + 64:
        return empty, empty, empty, False
    groups, starts, order = group_rows(slots, high + 1, descending)
    return groups, starts, order, True


@njit(cache=config.CACHE, nogil=True)
def table_slots(table, low, keys):
    """``(slots, found)``: ``table[keys - low]`` for integer ``keys``, and
    whether every key is in the table's range with a slot (not -1); one
    pass where bounds, gather and check were four numpy calls."""
    slots = np.empty(keys.shape[0], dtype=np.int64)
    size = table.shape[0]
    for i in range(keys.shape[0]):
        k = np.int64(keys[i]) - low
        if k < 0 or k >= size:
            return slots, False
        s = table[k]
        if s < 0:
            return slots, False
        slots[i] = s
    return slots, True


@njit(cache=config.CACHE, nogil=True)
def scatter_rows(out, rows, ordered):
    """``out[rows] = ordered`` for 2-D arrays (numpy's fancy assignment
    costs ~5 µs for 1,000 rows)."""
    for r in range(rows.shape[0]):
        o = out[rows[r]]
        src = ordered[r]
        for c in range(o.shape[0]):
            o[c] = src[c]
