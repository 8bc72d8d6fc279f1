"""Rows of a batch grouped by model, for the bank kernels.

``group_rows`` is a counting sort on the slots: the models in slot order,
each model's rows in arrival order (what a stable argsort gives), in one
pass over the rows and one over the slots up to the largest, without
sorting (a tenth of numpy's ``argsort`` and its companions for 1,000 rows).
"""

import numpy as np
from numba import njit

from .. import config


@njit(cache=config.CACHE, nogil=True)
def group_rows(slots, n_slots):
    """``(groups, starts, order)`` for the rows' ``slots`` (each below
    ``n_slots``): ``groups`` the distinct slots in increasing order, the rows
    of ``groups[g]`` being ``order[starts[g]:starts[g + 1]]`` in arrival order."""
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
    for s in range(n_slots):
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
