"""Model buffers of files in format version 2 and earlier, upgraded on load.

Up to format version 2 a model's buffer kept two moment regions for every
optimizer and, for each step of its TBPTT window, a full row: the layers'
inputs, previous and new states, activations, the gradients of the
pre-activations and the prediction. From version 3 the window keeps only
the input, the target, the prediction and the gate activations of each step
(and the GRU's ``W_hn h + b_hn``) and the state before its oldest step; SGD and RMSprop
keep one moment region (see :mod:`streamrnn.kernels.layout`). The states
rebuilt from the compact window are those the full rows held, so an
upgraded model continues bit for bit as the saved one would have.

The functions here take a state as the file holds it, before any check:
what does not look like a version-2 state is returned unchanged, for the
checks to refuse.
"""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np

from .kernels import layout as L
from .network import ALIGN, NetworkShape, build_layout

#: First ``lay`` slot of the layer parameters' offsets in format version 2.
PARAMS0_V2 = 48

__all__ = ["format2_layout", "upgrade_rows", "upgrade_state"]


def _pad(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def format2_layout(shape: NetworkShape) -> np.ndarray:
    """The ``lay`` array a model of ``shape`` had in format version 2 (the
    slots it shares with today's keep their numbers; the layer parameters'
    offsets start at :data:`PARAMS0_V2`)."""
    H, O, GH = shape.hidden_size, shape.output_size, shape.gates * shape.hidden_size
    new = build_layout(shape)
    lay = np.zeros(PARAMS0_V2 + 4 * shape.num_layers, dtype=np.int64)
    lay[: L.L_HSTRIDE + 1] = new[: L.L_HSTRIDE + 1]
    lay[L.L_HEAD_W], lay[L.L_HEAD_B] = new[L.L_HEAD_W], new[L.L_HEAD_B]
    lay[PARAMS0_V2 : PARAMS0_V2 + 4 * shape.num_layers] = new[L.L_PARAMS0 : L.L_PARAMS0 + 4 * shape.num_layers]
    n_param = int(new[L.L_NPARAM])
    size = n_param
    offsets = {}
    for slot, n in ((L.L_M, n_param), (L.L_V, n_param), (L.L_STATE, 2 * shape.num_layers * _pad(H))):
        offsets[slot], size = size, size + _pad(n)
    row = 0
    for slot, n in ((L.L_R_XIN, max(shape.input_size, H)), (L.L_R_HP, H), (L.L_R_CP, H), (L.L_R_ACT, GH),
                    (L.L_R_AUX, H), (L.L_R_HN, H), (L.L_R_CN, H), (L.L_R_DAX, GH), (L.L_R_DAH, GH)):
        lay[slot], row = row, row + _pad(n)
    lay[L.L_ROW_LAYER] = row
    row *= shape.num_layers
    lay[L.L_R_Y], row = row, row + _pad(O)
    lay[L.L_R_YHAT], row = row, row + _pad(O)
    lay[L.L_ROW] = row
    offsets[L.L_CACHE], size = size, size + _pad(shape.k2 * row)
    offsets[L.L_HP], size = size, size + _pad(L.N_HP)
    offsets[L.L_PERSIST] = size
    for slot, at in offsets.items():
        lay[slot] = at
    scratch = (n_param, shape.k2 * row, row, 2 * shape.num_layers * _pad(H), GH, GH, max(shape.input_size, H), H,
               shape.num_layers * _pad(H), shape.num_layers * _pad(H))
    for slot, n in zip((L.L_GRAD, L.L_RCACHE, L.L_PRED, L.L_PSTATE, L.L_S_AX, L.L_S_AH, L.L_S_DIN, L.L_S_GH,
                        L.L_S_DH, L.L_S_DC), scratch):
        lay[slot], size = size, size + _pad(n)
    lay[L.L_BUF] = size
    return lay


def _window_start_rows(shape: NetworkShape, ctr: np.ndarray) -> np.ndarray:
    """The ring row whose previous state is today's window start state, per
    model: the oldest row of the window the next update reads (with k1 >= k2
    once the steps of that window have begun; before, any row will do)."""
    k1, k2 = shape.k1, shape.k2
    pos, fill, since = ctr[:, L.C_POS], ctr[:, L.C_FILL], ctr[:, L.C_SINCE]
    back = fill
    if k1 >= k2:
        back = np.where(since > k1 - k2, np.minimum(since - (k1 - k2), fill), fill)
    return (pos - back) % k2


def upgrade_rows(shape: NetworkShape, old: np.ndarray, ctr: np.ndarray) -> np.ndarray:
    """Persistent buffers of format version 2, one row per model (``old``,
    with the models' counters ``ctr``), in today's layout."""
    v2, lay = format2_layout(shape), build_layout(shape)
    n, H, hs, nl = old.shape[0], shape.hidden_size, int(lay[L.L_HSTRIDE]), shape.num_layers
    GH, k2 = shape.gates * H, shape.k2
    new = np.zeros((n, int(lay[L.L_PERSIST])), dtype=old.dtype)
    n_param = int(lay[L.L_NPARAM])
    new[:, :n_param] = old[:, :n_param]
    moment = L.L_V if shape.optimizer == "rmsprop" else L.L_M  # the one SGD and RMSprop keep
    pairs = ((L.L_M, moment),) if lay[L.L_V] == lay[L.L_M] else ((L.L_M, L.L_M), (L.L_V, L.L_V))
    for dst, src in pairs:
        new[:, lay[dst] : lay[dst] + n_param] = old[:, v2[src] : v2[src] + n_param]
    n_state = 2 * nl * hs
    new[:, lay[L.L_STATE] : lay[L.L_STATE] + n_state] = old[:, v2[L.L_STATE] : v2[L.L_STATE] + n_state]
    new[:, lay[L.L_HP] : lay[L.L_HP] + L.N_HP] = old[:, v2[L.L_HP] : v2[L.L_HP] + L.N_HP]

    rows = old[:, v2[L.L_CACHE] : v2[L.L_CACHE] + k2 * v2[L.L_ROW]].reshape(n, k2, v2[L.L_ROW])
    compact = new[:, lay[L.L_CACHE] : lay[L.L_CACHE] + k2 * lay[L.L_CROW]].reshape(n, k2, lay[L.L_CROW])
    I, O = shape.input_size, shape.output_size
    compact[:, :, lay[L.L_C_X] : lay[L.L_C_X] + I] = rows[:, :, v2[L.L_R_XIN] : v2[L.L_R_XIN] + I]
    compact[:, :, lay[L.L_C_Y] : lay[L.L_C_Y] + O] = rows[:, :, v2[L.L_R_Y] : v2[L.L_R_Y] + O]
    compact[:, :, lay[L.L_C_YHAT] : lay[L.L_C_YHAT] + O] = rows[:, :, v2[L.L_R_YHAT] : v2[L.L_R_YHAT] + O]
    first = rows[np.arange(n), _window_start_rows(shape, ctr)]
    for layer in range(nl):
        c, b = lay[L.L_C_LAYER0] + layer * lay[L.L_CROW_LAYER], layer * v2[L.L_ROW_LAYER]
        act, aux = b + v2[L.L_R_ACT], b + v2[L.L_R_AUX]
        compact[:, :, c + lay[L.L_C_ACT] : c + lay[L.L_C_ACT] + GH] = rows[:, :, act : act + GH]
        if shape.cell == "gru":
            compact[:, :, c + lay[L.L_C_AUX] : c + lay[L.L_C_AUX] + H] = rows[:, :, aux : aux + H]
        ws = lay[L.L_WSTATE] + 2 * layer * hs
        new[:, ws : ws + H] = first[:, b + v2[L.L_R_HP] : b + v2[L.L_R_HP] + H]
        new[:, ws + hs : ws + hs + H] = first[:, b + v2[L.L_R_CP] : b + v2[L.L_R_CP] + H]
    return new


def _is_v2(shape, lay, buf, ctr, ndim: int) -> bool:
    """Whether the arrays are a version-2 model's of ``shape`` (else they
    are left for the checks)."""
    if type(shape) is not NetworkShape or not all(type(a) is np.ndarray for a in (lay, buf, ctr)):
        return False
    try:
        v2 = format2_layout(shape)
    except (ValueError, TypeError, KeyError, OverflowError, MemoryError):
        return False
    return (lay.shape == v2.shape and np.array_equal(lay, v2) and buf.ndim == ndim == ctr.ndim
            and buf.dtype.kind == "f"
            and ctr.dtype == np.int64 and ctr.shape[-1:] == (L.N_CTR,) and buf.shape[-1] == v2[L.L_PERSIST]
            and (ndim == 1 or buf.shape[0] == ctr.shape[0]) and ctr.min(initial=0) >= 0
            and (ctr[..., L.C_POS] < shape.k2).all() and (ctr[..., L.C_FILL] <= shape.k2).all())


def upgrade_online_rnn(state: dict) -> dict:
    """An :class:`~streamrnn.OnlineRNN`'s state of format version 2, upgraded."""
    shape, lay, buf, ctr = state.get("_shape"), state.get("_lay"), state.get("_buf"), state.get("_ctr")
    if not _is_v2(shape, lay, buf, ctr, 1):
        return state
    return {**state, "_lay": build_layout(shape), "_buf": upgrade_rows(shape, buf[None, :], ctr[None, :])[0]}


def _bank_shape(state: dict) -> NetworkShape | None:
    """The shape of a bank's models, from its configuration, without
    allocating a model (None if the configuration is not a valid one: the
    checks then say why)."""
    from .learner import OnlineRNN
    from .persist_checks import SIZE_CAPS

    config = state.get("config")
    if not isinstance(config, dict) or not all(type(k) is str for k in config):
        return None
    defaults = inspect.signature(OnlineRNN).parameters
    sizes = {f: config.get(f, defaults[f].default) for f in SIZE_CAPS}
    if not all(type(v) is int and 1 <= v <= SIZE_CAPS[f] for f, v in sizes.items()):
        return None
    try:
        tiny = OnlineRNN(**{**config, **dict.fromkeys(SIZE_CAPS, 1)}, seed=0)
    except Exception:  # an invalid configuration
        return None
    return dataclasses.replace(tiny._shape, **sizes)


def upgrade_bank(state: dict) -> dict:
    """A :class:`~streamrnn.ModelBank`'s state of format version 2, upgraded."""
    shape = _bank_shape(state)
    lay, buf, ctr = state.get("_lay"), state.get("_buf"), state.get("_ctr")
    if shape is None or not _is_v2(shape, lay, buf, ctr, 2):
        return state
    return {**state, "_lay": build_layout(shape), "_buf": upgrade_rows(shape, buf, ctr)}


def upgrade_shared_bank(state: dict) -> dict:
    """A :class:`~streamrnn.SharedWeightsBank`'s state of format version 2,
    upgraded: the shared model's buffer and each series' state and window."""
    shape = _bank_shape(state)
    lay, buf, ctr, keys = state.get("_lay"), state.get("_buf"), state.get("_ctr"), state.get("_key_of")
    if shape is None or not isinstance(keys, list) or type(ctr) is not np.ndarray or ctr.ndim != 2:
        return state
    v2 = format2_layout(shape)
    region, stride, origin = state.get("_region"), state.get("_stride"), state.get("_origin")
    if (region, stride, origin) != (int(v2[L.L_HP] - v2[L.L_STATE]), _pad(int(v2[L.L_HP] - v2[L.L_STATE])),
                                    _pad(int(v2[L.L_BUF]))):
        return state
    persist, n = int(v2[L.L_PERSIST]), len(keys)
    if type(buf) is not np.ndarray or buf.ndim != 1 or buf.shape[0] != persist + n * stride or ctr.shape[0] < n:
        return state
    if not _is_v2(shape, lay, buf[:persist], ctr[0] if n else np.zeros(L.N_CTR, np.int64), 1):
        return state
    new_lay = build_layout(shape)
    new_region = int(new_lay[L.L_HP] - new_lay[L.L_STATE])
    new_stride, new_origin = _pad(new_region), _pad(int(new_lay[L.L_BUF]))
    # the shared model (its own region: the zero state of unseen series),
    # then each series as a model: the shared weights with its state and window
    models = np.repeat(buf[None, :persist], n + 1, axis=0)
    models[1:, v2[L.L_STATE] : v2[L.L_HP]] = buf[persist:].reshape(n, stride)[:, :region]
    ctrs = np.concatenate([np.zeros((1, L.N_CTR), np.int64), ctr[:n]])
    upgraded = upgrade_rows(shape, models, ctrs)
    out = np.zeros(int(new_lay[L.L_PERSIST]) + n * new_stride, dtype=buf.dtype)
    out[: new_lay[L.L_PERSIST]] = upgraded[0]
    series = upgraded[1:, new_lay[L.L_STATE] : new_lay[L.L_HP]]
    out[new_lay[L.L_PERSIST] :].reshape(n, new_stride)[:, :new_region] = series
    return {**state, "_lay": new_lay, "_buf": out, "_region": new_region, "_stride": new_stride,
            "_origin": new_origin}


def upgrade_entity_windows(state: dict) -> dict:
    """An estimator's stored per-entity windows (``_entities``) of format
    version 2, upgraded with its network's shape (the network is upgraded
    already: it is decoded first)."""
    from .entities import _WINDOW
    from .learner import OnlineRNN

    net, entities = state.get("_net"), state.get("_entities")
    stored = getattr(entities, "stored", None)
    if type(net) is not OnlineRNN or not isinstance(stored, dict):
        return state
    shape = net._shape
    v2 = format2_layout(shape)
    n_window = int(shape.k2 * v2[L.L_ROW])
    lay = build_layout(shape)
    span = (int(lay[L.L_WSTATE]), int(lay[L.L_CACHE] + shape.k2 * lay[L.L_CROW]))
    for entry in stored.values():
        if type(entry) is not list or len(entry) != 4:
            continue
        window, counters = entry[1], entry[2]
        if (type(window) is not np.ndarray or window.shape != (n_window,) or type(counters) is not np.ndarray
                or counters.shape != (len(_WINDOW),) or counters.dtype != np.int64):
            continue
        ctr = np.zeros((1, L.N_CTR), dtype=np.int64)
        ctr[0, _WINDOW] = counters
        if not ((0 <= ctr[0, L.C_POS] < shape.k2) and (0 <= ctr[0, L.C_FILL] <= shape.k2)):
            continue
        old = np.zeros((1, int(v2[L.L_PERSIST])), dtype=window.dtype)
        old[0, v2[L.L_CACHE] : v2[L.L_CACHE] + n_window] = window
        entry[1] = upgrade_rows(shape, old, ctr)[0, span[0] : span[1]].copy()
    return state


#: The upgrade of each class whose state holds model buffers, by class name.
_UPGRADES = {
    "streamrnn.learner:OnlineRNN": upgrade_online_rnn,
    "streamrnn.bank:ModelBank": upgrade_bank,
    "streamrnn.shared_bank:SharedWeightsBank": upgrade_shared_bank,
}


def upgrade_state(path: str, state, version: int):
    """The state of the class ``path`` (``"module:QualName"``) as saved in
    format ``version``, in today's form (unchanged if nothing changed)."""
    if version >= 3 or not isinstance(state, dict):
        return state
    upgrade = _UPGRADES.get(path)
    if upgrade is not None:
        return upgrade(state)
    if "_entities" in state and "_net" in state:
        return upgrade_entity_windows(state)
    return state
