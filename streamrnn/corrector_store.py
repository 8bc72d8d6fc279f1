"""Many series' window correctors with their state in one set of arrays, a
row per series, so that their updates in a batch of rows take one kernel
call (:func:`~streamrnn.kernels.window_network.corrector_batch`) instead of
a call each.

Each :class:`~streamrnn.window_network.WindowCorrector` attached keeps its
arrays as views of its row: it saves, loads and updates alone as before,
and its state saved is its own arrays (the store is made again from the
correctors on loading)."""

from __future__ import annotations

import numpy as np

from .combination import DISCOUNT, MARGIN, MIN_COUNT, THIN, TRIM
from .kernels.window_network import corrector_batch
from .window_network import (
    _BETAS, _EPS, CLIP_INPUTS, CLIP_TARGETS, HORIZON, LEVEL, WINDOW, WindowCorrector, WindowNetwork,
)

#: The arrays of a corrector (then those of its combination) held a row per series.
_OWN = ("values", "anchors")
_COMBINATION = ("made", "origin", "unit", "sq_errors", "counts", "abs_errors", "n_abs")


class CorrectorStore:
    """The window correctors of many keys, updated in batches by one shared
    ``network``: :meth:`queue` each key's update, :meth:`flush` them (a
    key queued again first flushes the queue, so each key's updates keep
    their order, and so do the network's). Results equal
    :meth:`WindowCorrector.update` called row by row, bit for bit."""

    def __init__(self, network: WindowNetwork):
        self.network = network
        self._arrays: dict = {}  # name -> array (capacity, *shape)
        self._slots: dict = {}  # key -> row
        self._members: dict = {}  # row -> corrector
        self._outputs: list = []  # row -> the views of its last output (given, choice)
        self._free: list = []
        self._queue: list = []
        self._queued: set = set()

    def __len__(self) -> int:
        return len(self._slots)

    def _views(self, slot: int, corrector: WindowCorrector) -> None:
        """Point the corrector's arrays (and its last output) at its row."""
        a = self._arrays
        for name in _OWN:
            setattr(corrector, name, a[name][slot])
        comb = corrector.combination
        for name in _COMBINATION:
            setattr(comb, name, a[name][slot])
        if corrector.made is not None:
            corrector.made = self._outputs[slot]

    def _grow(self, like: WindowCorrector) -> None:
        old = self._arrays
        capacity = len(old["values"]) if old else 0
        new = max(8, 2 * capacity)
        sources = {**{n: getattr(like, n) for n in _OWN}, **{n: getattr(like.combination, n) for n in _COMBINATION},
                   "given": np.empty(HORIZON), "choice": np.empty(HORIZON, dtype=np.int64)}
        arrays = {}
        for name, source in sources.items():
            a = np.zeros((new,) + source.shape, dtype=source.dtype)
            if capacity:
                a[:capacity] = old[name]
            arrays[name] = a
        self._arrays = arrays
        self._outputs = [(arrays["given"][i], arrays["choice"][i]) for i in range(new)]
        self._free.extend(range(new - 1, capacity - 1, -1))  # (the lowest row first)
        for slot, corrector in self._members.items():
            self._views(slot, corrector)

    def attach(self, key, corrector: WindowCorrector) -> None:
        """Hold ``key``'s corrector (its state copied into a row)."""
        if not self._free:
            self._grow(corrector)
        slot = self._free.pop()
        a = self._arrays
        for name in _OWN:
            a[name][slot] = getattr(corrector, name)
        comb = corrector.combination
        for name in _COMBINATION:
            a[name][slot] = getattr(comb, name)
        if corrector.made is not None:
            a["given"][slot], a["choice"][slot] = corrector.made  # (before its views are given out)
        self._slots[key] = slot
        self._members[slot] = corrector
        self._views(slot, corrector)

    def detach(self, key) -> None:
        """Let go of ``key``'s corrector (after the updates queued): it keeps
        copies of its arrays."""
        self.flush()
        slot = self._slots.pop(key)
        corrector = self._members.pop(slot)
        for name in _OWN:
            setattr(corrector, name, getattr(corrector, name).copy())
        comb = corrector.combination
        for name in _COMBINATION:
            setattr(comb, name, getattr(comb, name).copy())
        if corrector.made is not None:
            corrector.made = tuple(a.copy() for a in corrector.made)
        self._free.append(slot)

    def queue(self, key, value: float, forecast: np.ndarray) -> None:
        """:meth:`WindowCorrector.update` of ``key``'s corrector (attached),
        run at the next :meth:`flush`."""
        if key in self._queued:
            self.flush()
        slot = self._slots[key]
        corrector = self._members[slot]
        prepared = corrector._prepare(value, forecast)
        if prepared is not None:
            self._queue.append((slot, corrector, forecast) + prepared)
            self._queued.add(key)

    def flush(self) -> None:
        """Run the updates queued, in order, in one kernel call."""
        rows = self._queue
        if not rows:
            return
        self._queue, self._queued = [], set()
        n = len(rows)
        if n == 1:  # (one row: the corrector's own kernel call, without the batch's arrays)
            slot, corrector, forecast, z, k, logs = rows[0]
            corrector._learn(forecast, z, k, logs, self.network, *self._outputs[slot])
            return
        forecasts, logs = np.empty((n, HORIZON)), np.empty((n, HORIZON))
        n_logs = np.zeros(n, dtype=np.int64)
        slots, ns, ts, zs, ks = [], [], [], [], []
        for i, (slot, corrector, forecast, z, k, lg) in enumerate(rows):
            forecasts[i, :k] = forecast[:k]
            if len(lg):
                logs[i, :k] = lg
                n_logs[i] = k
            slots.append(slot)
            ns.append(corrector.n)
            ts.append(corrector.combination.t)
            zs.append(z)
            ks.append(k)
        slots, ns, ts = np.array(slots, dtype=np.int64), np.array(ns, dtype=np.int64), np.array(ts, dtype=np.int64)
        zs, ks = np.array(zs, dtype=np.float64), np.array(ks, dtype=np.int64)
        refused = np.empty(n, dtype=np.bool_)
        a, net = self._arrays, self.network
        steps, pending = corrector_batch(
            slots, ns, ts, zs, forecasts, ks, logs, n_logs, a["values"], a["anchors"], WINDOW, LEVEL, CLIP_INPUTS,
            CLIP_TARGETS, net.theta, net.m1, net.m2, net._grad, net.summed if net.batch > 1 else net._grad,
            net.batch, net.pending, net.steps, net.lr, _BETAS[0], _BETAS[1], _EPS, net._hidden, net._out, net._x,
            net._y, np.empty((2, HORIZON)), a["made"], a["origin"], a["unit"], a["sq_errors"], a["counts"],
            a["abs_errors"], a["n_abs"], DISCOUNT, THIN, MIN_COUNT, TRIM, MARGIN, np.empty(HORIZON), a["given"],
            a["choice"], refused)
        net.steps = steps
        if net.batch > 1:
            net.pending = pending
        outputs = self._outputs
        for (slot, corrector, *_), no in zip(rows, refused.tolist()):
            if no:  # a forecast value not positive (nothing changed)
                corrector.idle, corrector.made = True, None
            else:
                corrector.n += 1
                corrector.combination.t += 1
                corrector.made = outputs[slot]
