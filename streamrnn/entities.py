"""Per-entity state of a River estimator whose one network serves many
entities (``key=``): each entity (a chick, a sensor, a customer) carries its
own hidden state, TBPTT window and revealed targets, while the weights are
shared.

The semantics are those of :class:`~streamrnn.SharedWeightsBank` (each row
runs from its own key's state, enters its own key's window, and every ``k1``
rows of a key the shared weights take a TBPTT update over that key's
window): the estimators grow their inputs and outputs as features and
classes appear, which a bank's fixed layout cannot, so the states of the
keys are kept here and swapped in and out of the estimator's one
:class:`~streamrnn.OnlineRNN` (only when the key changes from row to row).
"""

from __future__ import annotations

import contextlib

from .checks import check_integer
from .keys import holds_nan
from .kernels import layout as L
from .network import window_span

#: The window counters each key keeps (the others count over all keys).
_WINDOW = [L.C_POS, L.C_FILL, L.C_SINCE]


def check_key(key) -> None:
    """A key usable as an entity's name: hashable, neither NaN nor holding one."""
    try:
        hash(key)
    except TypeError:
        raise ValueError(f"the key value {key!r} is not hashable") from None
    if holds_nan(key):
        raise ValueError(f"the key value {key!r} is or holds NaN: a missing key? (None is a valid key)")


class EntityStates:
    """The carried states of the entities of one network.

    The state of the *active* key (the key of the last row learned) lives in
    the network; the others are stored here: each as ``[hidden state,
    window (None once the network resized: the window restarts, as
    :meth:`~streamrnn.OnlineRNN.resize` restarts its own), window counters,
    carried values]``, where the carried values are the estimator's own
    per-entity values (its revealed targets). A key not learned in the last
    ``max_idle`` rows (over all keys) is forgotten: it starts again from a
    fresh state, as an unseen key does.

    Examples
    --------
    >>> from streamrnn import GRURegressor
    >>> model = GRURegressor(hidden_size=4, key="chick", seed=0)
    >>> for t in range(6):
    ...     model.learn_one({"chick": t % 2, "time": t}, float(t))
    >>> len(model._entities), model._entities.rows
    (2, 6)
    """

    def __init__(self, max_idle: int | None = None):
        self.max_idle = check_integer("max_idle", max_idle, none_ok=True)
        self.stored: dict = {}  # key -> [state, window or None, counters, carried]
        self.last_seen: dict = {}  # key -> the row count when it was last learned
        self.rows = 0  # rows learned, over all keys
        self.has_active = False
        self.active = None  # the key whose state is in the network (if has_active)
        self._next_sweep = self.max_idle or 0

    def __len__(self) -> int:
        """Keys held (idle ones not yet swept included)."""
        return len(self.last_seen)

    def _expired(self, key) -> bool:
        seen = self.last_seen.get(key)
        return seen is None or (self.max_idle is not None and self.rows - seen > self.max_idle)

    @staticmethod
    def _parts(net):
        lay, buf = net._lay, net._buf
        state = buf[lay[L.L_STATE] : lay[L.L_STATE] + 2 * lay[L.L_LAYERS] * lay[L.L_HSTRIDE]]
        start, end = window_span(lay)
        window = buf[start:end]
        return state, window

    def activate(self, owner, key) -> None:
        """Put ``key``'s state into ``owner``'s network (``owner._net``) and
        its carried values into ``owner._carried``, storing the active
        key's; a new or forgotten key starts fresh (zero state, empty
        window, ``owner._fresh_carried()``)."""
        if self.has_active and self.active == key:
            return
        net = owner._net
        state, window = self._parts(net)
        if self.has_active:
            self.stored[self.active] = [state.copy(), window.copy(), net._ctr[_WINDOW].copy(), owner._carried.copy()]
        entry = self.stored.pop(key, None)
        if self._expired(key):
            entry = None
        if entry is None:
            state[:] = 0
            net._ctr[_WINDOW] = 0
            owner._carried = owner._fresh_carried()
        else:
            state[:] = entry[0]
            if entry[1] is None:
                net._ctr[_WINDOW] = 0
            else:
                window[:] = entry[1]
                net._ctr[_WINDOW] = entry[2]
            owner._carried = entry[3]
        self.has_active, self.active = True, key

    def learned(self, key, n: int = 1) -> None:
        """``n`` rows of the active ``key`` were learned."""
        self.rows += n
        self.last_seen[key] = self.rows - 1
        if self.max_idle is not None and self.rows >= self._next_sweep:
            self._next_sweep = self.rows + self.max_idle
            for k in [k for k in self.last_seen if self._expired(k) and not (self.has_active and k == self.active)]:
                del self.last_seen[k]
                self.stored.pop(k, None)

    @contextlib.contextmanager
    def peeking(self, owner, key):
        """Within the block, ``owner``'s network carries ``key``'s hidden
        state and ``owner._carried`` its carried values (for predictions,
        which read nothing else); both are restored after it."""
        if self.has_active and self.active == key:
            yield
            return
        state, _ = self._parts(owner._net)
        saved_state, saved_carried = state.copy(), owner._carried
        entry = None if self._expired(key) else self.stored.get(key)
        if entry is None:
            state[:] = 0
            owner._carried = owner._fresh_carried()
        else:
            state[:] = entry[0]
            owner._carried = entry[3]
        try:
            yield
        finally:
            state[:] = saved_state
            owner._carried = saved_carried

    def resized(self) -> None:
        """The network grew: the stored windows no longer fit its rows and
        restart (the hidden states keep)."""
        for entry in self.stored.values():
            entry[1] = None
