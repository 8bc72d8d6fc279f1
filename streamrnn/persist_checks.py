"""Checks of the state of each class :mod:`streamrnn.persistence` loads,
run before the object is built, so that no kernel and no method of the
class ever sees a value an edited file put there.

Every check validates against what the code derives itself from validated
arguments, never against what the file says about itself: an
:class:`~streamrnn.OnlineRNN`'s sizes are positive integers within
:data:`SIZE_CAPS`, its cell, loss, optimizer and dtype known ones, its layout
is the one :func:`~streamrnn.network.build_layout` derives from them, its
hyperparameters are those its constructor stores for its saved arguments
(which the constructor checks), its weights, optimizer moments and hidden
state are finite and its second moments non-negative; its counters are in
the ranges the kernels index by. An estimator's arguments equal its
network's, its features, scalers and classes agree in size with the network,
and its constructor accepts them.

Each check raises :class:`Invalid` with a message naming the problem.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import inspect
import math
import numbers

import numpy as np

__all__ = ["Invalid", "Limits", "SIZE_CAPS", "need"]

#: The largest sizes a loaded network may have (the loader refuses more: a
#: file must not make it allocate what the caps of :func:`load` forbid).
SIZE_CAPS = {"input_size": 1 << 20, "hidden_size": 1 << 14, "num_layers": 64, "output_size": 1 << 20,
             "k1": 1 << 20, "k2": 1 << 16}


class Invalid(Exception):
    """A problem found while decoding; becomes a ``FormatError``."""

    def __init__(self, problem: str, kind: type | None = None):
        super().__init__(problem)
        self.kind = kind


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a load may allocate: ``max_bytes`` for any one buffer it derives."""

    max_bytes: int
    claimed: set = dataclasses.field(default_factory=set)  # ids of the arrays a kernel-backed object holds


def claim(name, limits, *arrays) -> None:
    """The arrays a kernel indexes belong to one object: an edited file must
    not hand the counters of one network to another of other sizes."""
    for a in arrays:
        need(id(a) not in limits.claimed, f"the {name} shares its arrays with another object")
        limits.claimed.add(id(a))


def need(cond, problem: str) -> None:
    if not cond:
        raise Invalid(problem)


def _same_int(v, n: int) -> bool:
    """``v`` is an integer (NumPy's too, not a bool or a float) equal to ``n``."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v == n


def _int_tuple(v, n: int) -> bool:
    return type(v) is tuple and len(v) == 1 and type(v[0]) is int and v[0] == n


def _is_int(v, low: int = 0, high: float = math.inf) -> bool:
    return type(v) is int and low <= v <= high


def _dict_state(name, state) -> dict:
    need(isinstance(state, dict), f"the state of the {name} must be a dictionary")
    return state


def _array(name, state, key, ndim, dtype=None) -> np.ndarray:
    a = state.get(key)
    need(type(a) is np.ndarray and a.ndim == ndim and (dtype is None or a.dtype == dtype),
         f"the {name}'s {key} is missing or malformed")
    return a


# ------------------------------------------------------------------ networks


def check_network_shape(cls, state, limits) -> None:
    from .kernels import layout as L

    state = _dict_state("NetworkShape", state)
    need(set(state) == set(cls.__dataclass_fields__), "the NetworkShape's fields are malformed")
    need(state["cell"] in L.CELL_CODES and state["loss"] in L.LOSS_CODES and state["optimizer"] in L.OPT_CODES,
         "the NetworkShape names an unknown cell, loss or optimizer")
    need(type(state["approx"]) is bool and type(state["recompute"]) is bool, "the NetworkShape's flags must be bools")
    for field, cap in SIZE_CAPS.items():
        need(_is_int(state[field], 1, cap), f"the NetworkShape's {field} must be an integer in [1, {cap}], "
                                            f"got {state[field]!r}")


def checked_layout(name, shape, itemsize: int, limits, rows: int = 1) -> np.ndarray:
    """The layout of a (checked) shape, within the loader's byte cap."""
    from .kernels import layout as L
    from .network import build_layout

    lay = build_layout(shape)
    need(rows * int(lay[L.L_BUF]) * itemsize <= limits.max_bytes,
         f"the {name}'s buffers would take {rows * int(lay[L.L_BUF]) * itemsize} bytes, above the cap of "
         f"{limits.max_bytes} bytes (max_bytes of load)")
    return lay


def check_weights(name, buf: np.ndarray, lay, optimizer: str, hp: np.ndarray | None) -> None:
    """Rows of persistent buffers (``(n, persist)``): finite weights, moments
    and hidden state, second moments >= 0, hyperparameters ``hp``."""
    from .kernels import layout as L

    n_param = int(lay[L.L_NPARAM])
    state = int(lay[L.L_STATE])
    n_state = 2 * int(lay[L.L_LAYERS]) * int(lay[L.L_HSTRIDE])
    for what, start, n in (("weights", 0, n_param), ("optimizer moments", int(lay[L.L_M]), n_param),
                           ("optimizer moments", int(lay[L.L_V]), n_param), ("hidden state", state, n_state)):
        need(np.isfinite(buf[:, start : start + n]).all(), f"the {name}'s {what} are not all finite")
    if optimizer != "sgd":
        v = int(lay[L.L_V])
        need((buf[:, v : v + n_param] >= 0).all(), f"the {name}'s second moments must be >= 0")
    if hp is not None:
        at = int(lay[L.L_HP])
        need((buf[:, at : at + L.N_HP] == hp).all() and not np.isnan(buf[:, at : at + L.N_HP]).any(),
             f"the {name}'s hyperparameters are not those of its arguments")


_RNN_ARGS = ("cell", "optimizer", "loss", "dtype", "device", "lr", "clip_norm", "momentum", "betas", "eps", "alpha",
             "weight_decay", "huber_delta", "recompute", "approx_activations", "seed")


def require_attributes(name, cls, state: dict, fresh, optional=()) -> None:
    """Every attribute a fresh instance saves is in ``state``, or has a
    class-level default (states of earlier versions)."""
    saved = fresh.__getstate__()
    saved = saved if isinstance(saved, dict) else vars(fresh)
    missing = sorted(k for k in saved if k not in state and not hasattr(cls, k) and k not in optional)
    if missing:
        raise Invalid(f"the {name}'s state lacks {missing[0]!r}")


_SCALARS = (type(None), bool, int, float, str, np.integer, np.floating, np.bool_)


def construct(cls, args: dict):
    """``cls(**args)``: the instance the code builds from these arguments,
    which the checks compare a state with (read, never changed). Cached
    where the arguments are scalars (or tuples of them): loading many models
    of one configuration builds it once."""
    try:
        key = (cls, tuple(sorted((k, type(v), v if type(v) is not tuple else (tuple, *map(type, v), *v))
                                 for k, v in args.items())))
        hash(key)
    except TypeError:
        return cls(**args)
    if not all(isinstance(v, _SCALARS) or (type(v) is tuple and all(isinstance(x, _SCALARS) for x in v))
               for v in args.values()):
        return cls(**args)
    return _construct_cached(key, cls, tuple(args.items()))


@functools.lru_cache(maxsize=64)
def _construct_cached(key, cls, items):
    return cls(**dict(items))


def _tiny(name, args: dict):
    """An OnlineRNN of size one with the arguments ``args`` (its constructor
    checks them); its hyperparameters are those of any size."""
    from .learner import OnlineRNN

    sizes = dict.fromkeys(SIZE_CAPS, 1)
    try:
        return construct(OnlineRNN, {**args, **sizes})
    except (ValueError, TypeError, KeyError) as e:
        raise Invalid(f"the {name}'s arguments are invalid ({type(e).__name__}: {e})") from None


def _hp(net) -> np.ndarray:
    from .kernels import layout as L

    at = int(net._lay[L.L_HP])
    return net._buf[at : at + L.N_HP].copy()


def check_online_rnn(cls, state, limits) -> None:
    from .kernels import layout as L
    from .network import NetworkShape, counters_problem

    name = cls.__qualname__
    state = _dict_state(name, state)
    shape = state.get("_shape")
    need(type(shape) is NetworkShape, f"the {name}'s shape is not a NetworkShape")
    dtype = state.get("_np_dtype")
    need(isinstance(dtype, np.dtype) and dtype in (np.float32, np.float64),
         f"the {name}'s dtype must be float32 or float64, got {dtype!r}")
    lay = checked_layout(name, shape, dtype.itemsize, limits)
    need(np.array_equal(_array(name, state, "_lay", 1, np.int64), lay), f"the {name}'s layout does not match its shape")
    buf = _array(name, state, "_buf", 1, dtype)
    need(buf.shape == (lay[L.L_PERSIST],), f"the {name}'s buffer does not match its layout")
    need(_array(name, state, "_ctr", 1, np.int64).shape == (L.N_CTR,), f"the {name}'s counters do not match its layout")
    problem = counters_problem(lay, state["_ctr"])
    need(problem is None, f"the {name}'s {problem}")
    need(_int_tuple(state.get("_in_shape"), shape.input_size)
         and _int_tuple(state.get("_out_shape"), shape.output_size),
         f"the {name}'s input and output shapes do not match its layout")
    for field in SIZE_CAPS:
        need(_same_int(state.get(field), getattr(shape, field)), f"the {name}'s {field} does not match its shape")
    tiny = _tiny(name, {k: state[k] for k in _RNN_ARGS if k in state})
    need(tiny._np_dtype == dtype and all(getattr(tiny._shape, f) == getattr(shape, f)
                                         for f in ("cell", "loss", "optimizer", "approx", "recompute")),
         f"the {name}'s shape does not match its arguments")
    check_weights(name, buf[None, :], lay, shape.optimizer, _hp(tiny))
    require_attributes(name, cls, state, tiny)
    claim(name, limits, state["_ctr"], state["_lay"])


def check_bank(cls, state, limits) -> None:
    from .kernels import layout as L
    from .learner import OnlineRNN
    from .network import counters_problem
    from .shared_bank import SharedWeightsBank

    name = cls.__qualname__
    state = _dict_state(name, state)
    config = state.get("config")
    need(isinstance(config, dict) and all(type(k) is str for k in config), f"the {name}'s config is malformed")
    need(set(config) <= set(inspect.signature(OnlineRNN).parameters) - {"seed"}, f"the {name}'s config is malformed")
    tiny = _tiny(name, {k: v for k, v in config.items() if k not in SIZE_CAPS})
    defaults = inspect.signature(OnlineRNN).parameters
    sizes = {f: config.get(f, defaults[f].default) for f in SIZE_CAPS}
    for field, v in sizes.items():
        need(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 1 <= v <= SIZE_CAPS[field],
             f"the {name}'s {field} must be an integer in [1, {SIZE_CAPS[field]}], got {v!r}")
    shape = dataclasses.replace(tiny._shape, **{f: int(v) for f, v in sizes.items()})
    dtype = tiny._np_dtype
    ctr = _array(name, state, "_ctr", 2, np.int64)
    n = ctr.shape[0]
    capacity = state.get("_capacity_rows", n)
    need(_is_int(capacity, max(n, 1)), f"the {name}'s capacity is malformed")
    lay = checked_layout(name, shape, dtype.itemsize, limits, rows=1)
    template = OnlineRNN(**config, seed=0)
    need(np.array_equal(template._lay, lay), f"the {name}'s layout does not match its configuration")
    need(np.array_equal(_array(name, state, "_lay", 1, np.int64), lay),
         f"the {name}'s layout does not match its configuration")
    persist = int(lay[L.L_PERSIST])
    parameters = inspect.signature(cls).parameters
    extra = {"device": state.get("device", "cpu")} if "device" in parameters else {}
    if "seed_by_key" in parameters:  # (absent from states saved before there was a choice)
        extra["seed_by_key"] = state.get("seed_by_key", False)
    try:  # the constructor checks the seed, max_idle, device and seeding
        fresh = cls(capacity=1, seed=state.get("seed"), max_idle=state.get("max_idle"), **extra, **config)
    except (ValueError, TypeError, RuntimeError) as e:
        raise Invalid(f"the {name}'s arguments are invalid ({type(e).__name__}: {e})") from None
    need(state.get("_dev") is None and _is_int(state.get("_batch", 0)) and _is_int(state.get("_steps_gone", 0)),
         f"the {name}'s device state or counts are malformed")
    require_attributes(name, cls, state, fresh, optional=("_capacity_rows", "_dev", "device"))  # (set by __setstate__)
    need(type(state.get("seed_by_key", False)) is bool, f"the {name}'s seed_by_key must be True or False")
    if issubclass(cls, SharedWeightsBank):
        need((state.get("_region"), state.get("_stride"), state.get("_origin"))
             == (fresh._region, fresh._stride, fresh._origin), f"the {name}'s regions do not match its layout")
        need(_array(name, state, "_updates", 1, np.int64).shape == (1,), f"the {name}'s update count is malformed")
        need(ctr.shape[1] == L.N_CTR, f"the {name}'s counters do not match its layout")
        buf = _array(name, state, "_buf", 1, dtype)
        key_of = state.get("_key_of")
        need(isinstance(key_of, list) and buf.shape[0] == persist + len(key_of) * fresh._stride,
             f"the {name}'s buffer does not match its layout and keys")
        need((fresh._origin + capacity * fresh._stride) * dtype.itemsize <= limits.max_bytes,
             f"the {name}'s buffer would exceed the cap of {limits.max_bytes} bytes (max_bytes of load)")
        rows = buf[None, :persist]
    else:
        buf = _array(name, state, "_buf", 2, dtype)
        need(buf.shape[0] == n and buf.shape[1] == persist, f"the {name}'s buffers do not match its layout")
        need(capacity * int(lay[L.L_BUF]) * dtype.itemsize <= limits.max_bytes,
             f"the {name}'s buffers would exceed the cap of {limits.max_bytes} bytes (max_bytes of load)")
        key_of = state.get("_key_of")
        need(isinstance(key_of, list) and len(key_of) <= n, f"the {name}'s keys are malformed")
        rows = buf[: len(key_of)]  # (files of format 1 hold the unused rows too: a new model overwrites them)
    need(ctr.shape == (n, L.N_CTR), f"the {name}'s counters do not match its buffers")
    problem = counters_problem(lay, ctr)
    need(problem is None, f"the {name}'s {problem}")
    need(_array(name, state, "_last_seen", 1, np.int64).shape == (n,),
         f"the {name}'s idle counts do not match its buffers")
    need(_same_int(state.get("_input_size"), int(lay[L.L_INPUT])) and _same_int(state.get("_output_size"),
                                                                                 int(lay[L.L_OUTPUT]))
         and isinstance(state.get("_dtype"), np.dtype) and state.get("_dtype") == dtype,
         f"the {name}'s sizes or dtype do not match its configuration")
    slot_of, free, key_of = state.get("_slot_of"), state.get("_free"), state.get("_key_of")
    need(isinstance(slot_of, dict) and isinstance(free, list) and isinstance(key_of, list) and len(key_of) <= n,
         f"the {name}'s keys are malformed")
    slots = [*slot_of.values(), *free]
    need(all(type(s) is int and 0 <= s < len(key_of) for s in slots) and len(set(slots)) == len(slots),
         f"the {name}'s slots do not match its buffers")
    need(all(key_of[s] is k or key_of[s] == k for k, s in slot_of.items()), f"the {name}'s keys do not match its slots")
    need(_is_int(state.get("_n_created", 0)), f"the {name}'s count of models is malformed")
    check_weights(name, rows, lay, shape.optimizer, _hp(template))
    claim(name, limits, *(state[k] for k in ("_ctr", "_lay", "_last_seen", "_updates") if k in state))


# ------------------------------------------------------------------ features


def check_feature_space(cls, state, limits) -> None:
    state = _dict_state("FeatureSpace", state)
    names, index = state.get("names"), state.get("index")
    need(type(names) is list and type(index) is dict, "the FeatureSpace's names and index are malformed")
    try:
        derived = {n: i for i, n in enumerate(names)}
    except TypeError:
        raise Invalid("the FeatureSpace's names must be hashable") from None
    need(len(derived) == len(names) and index == derived and all(type(i) is int for i in index.values()),
         "the FeatureSpace's index does not match its names")


def check_running_scaler(cls, state, limits) -> None:
    state = _dict_state("RunningScaler", state)
    stats = state.get("stats")
    need(type(stats) is np.ndarray and stats.dtype == np.float64 and stats.ndim == 2 and stats.shape[0] == 3,
         "the RunningScaler's statistics must be a float64 array of 3 rows")
    need(np.isfinite(stats).all() and (stats[0] >= 0).all() and (stats[2] >= 0).all(),
         "the RunningScaler's statistics must be finite, its counts and deviations >= 0")
    if "glitch" in state:  # the glitch guard (states saved before it have none)
        beyond, glitch, out = state.get("beyond"), state.get("glitch"), state.get("glitch_out")
        need(type(beyond) is np.ndarray and beyond.dtype == np.float64 and beyond.shape == (stats.shape[1],)
             and np.isfinite(beyond).all(),
             "the RunningScaler's glitch counts must be a float64 array of one value per column")
        need(type(glitch) is float and math.isfinite(glitch) and glitch >= 0,
             "the RunningScaler's glitch bound must be a finite float >= 0")
        need(type(out) is float and (out == 0.0 or math.isnan(out)),
             "the RunningScaler's glitch value must be 0.0 or NaN")
    need(type(state.get("_rooted", False)) is bool, "the RunningScaler's flag is malformed")


# ---------------------------------------------------------------- estimators


_NET_ARGS = ("hidden_size", "num_layers", "k1", "k2")
_NET_ATTRS = ("optimizer", "lr", "clip_norm", "dtype", "device", "seed")


def _check_arguments(cls, state, net, cell: bool = False, optional=(), require: bool = True) -> None:
    """The estimator's arguments: those its network was built with, and
    accepted by its constructor (built here with them: no larger than the
    network, whose sizes are checked)."""
    name = cls.__qualname__
    if net is not None:
        for arg in _NET_ARGS:
            need(arg not in state or _same_int(state[arg], getattr(net._shape, arg)),
                 f"the {name}'s {arg} does not match its network")
        for arg in _NET_ATTRS + (("cell",) if cell else ()):
            need(arg not in state or _same(state[arg], getattr(net, arg)),
                 f"the {name}'s {arg} does not match its network")
    args = _ctor_args(cls, state)
    for k, v in args.items():  # sizes not tied to the network: within the network caps
        need(not (isinstance(v, numbers.Integral) and not isinstance(v, bool)) or abs(v) <= 1 << 20 or k == "seed",
             f"the {name}'s {k} is out of range")
    try:
        fresh = construct(cls, args)
    except (ValueError, TypeError) as e:
        raise Invalid(f"the {name}'s arguments are invalid ({type(e).__name__}: {e})") from None
    if require:
        require_attributes(name, cls, state, fresh, optional)
    return fresh


def _ctor_args(cls, state: dict) -> dict:
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
    return {p.name: state[p.name] for p in params if p.name in state}


def _same(a, b) -> bool:
    return a is b or (type(a) is type(b) and a == b) or (
        isinstance(a, numbers.Number) and isinstance(b, numbers.Number) and a == b)


def _estimator(cls, state, outputs_at_least: int) -> None:
    from .features import FeatureSpace, RunningScaler
    from .learner import OnlineRNN

    name = cls.__qualname__
    state = _dict_state(name, state)
    net, features, scaler = state.get("_net"), state.get("_features"), state.get("_x_scaler")
    need(type(net) is OnlineRNN and type(features) is FeatureSpace and type(scaler) is RunningScaler,
         f"the {name}'s network, features or scaler are missing")
    F = len(features.names)
    if "_cols_x" in state:  # the features' and the revealed targets' columns of the network's inputs
        cols_x, cols_y, n_cols = state.get("_cols_x"), state.get("_cols_y"), state.get("_n_cols")
        need(type(cols_x) is list and type(cols_y) is list and _is_int(n_cols, 0, net._shape.input_size)
             and net._shape.input_size == max(n_cols, 1) and len(cols_x) == F
             and all(_is_int(c, 0, n_cols - 1) for c in cols_x + cols_y)
             and len(set(cols_x + cols_y)) == len(cols_x) + len(cols_y),
             f"the {name}'s input columns do not match its network")
        need(scaler.stats.shape[1] == F, f"the {name}'s features and scaler do not agree in size")
    else:  # saved before revealed targets (none of their state): the features' columns, in order
        need(not any(k in state for k in _REVEALED_STATE), f"the {name}'s input columns are missing")
        need(scaler.stats.shape[1] == F and net._shape.input_size == max(F, 1),
             f"the {name}'s features, scaler and network do not agree in size")
    need(net._shape.output_size >= outputs_at_least, f"the {name}'s network has too few outputs")
    # (a state saved before revealed targets lacks these: its __setstate__ sets them)
    upgraded = () if "_cols_x" in state else ("_carried", "_cols_x", "_cols_y", "_entities", "_n_cols", "_target")
    _check_arguments(cls, state, net, optional=upgraded)
    _check_entities(name, state, net)


#: What a regressor's or classifier's state holds since revealed targets (all or none).
_REVEALED_STATE = ("_cols_y", "_n_cols", "_carried", "_entities", "revealed_targets", "key", "max_idle", "_target",
                   "model_change")


def _check_carried(name, state, carried) -> None:
    """What a regressor or classifier carries of the revealed targets."""
    R, columns = state.get("revealed_targets"), len(state["_cols_y"])
    if isinstance(carried, np.ndarray):  # a regressor's: standardised targets, then the base (NaN: none)
        need(carried.dtype == np.float64 and carried.shape == (R + 1,) and not np.isinf(carried).any()
             and columns == R, f"the {name}'s revealed targets are malformed")
    else:  # a classifier's: class indices, the latest first (-1: none); a one-hot per class and lag
        n = len(state.get("_classes") or ())
        need(type(carried) is list and len(carried) == R and all(_is_int(c, -1, n - 1) for c in carried)
             and columns == n * R, f"the {name}'s revealed targets are malformed")


def _check_entities(name, state, net) -> None:
    """The carried targets, and each stored entity's hidden state, window,
    window counters and carried targets as the network swaps them in."""
    from .entities import _WINDOW, EntityStates
    from .kernels import layout as L
    from .network import counters_problem, window_span

    if "_cols_x" not in state:
        return
    need(_is_int(state.get("revealed_targets"), 0, 1 << 10), f"the {name}'s revealed_targets is out of range")
    _check_carried(name, state, state.get("_carried"))
    entities = state.get("_entities")
    if entities is None:
        need(state.get("key") is None, f"the {name}'s entities are missing")
        return
    need(type(entities) is EntityStates and state.get("key") is not None
         and entities.max_idle == state.get("max_idle"), f"the {name}'s entities are malformed")
    lay, dtype = net._lay, net._np_dtype
    n_state = int(2 * lay[L.L_LAYERS] * lay[L.L_HSTRIDE])
    start, end = window_span(lay)
    n_window = end - start
    for entry in entities.stored.values():
        need(type(entry) is list and len(entry) == 4, f"the {name}'s stored entities are malformed")
        hidden, window, counters, carried = entry
        need(type(hidden) is np.ndarray and hidden.dtype == dtype and hidden.shape == (n_state,)
             and np.isfinite(hidden).all(), f"the {name}'s stored hidden states are malformed")
        if window is not None:
            need(type(window) is np.ndarray and window.dtype == dtype and window.shape == (n_window,)
                 and np.isfinite(window).all() and type(counters) is np.ndarray and counters.dtype == np.int64
                 and counters.shape == (len(_WINDOW),), f"the {name}'s stored windows are malformed")
            ctr = net._ctr.copy()
            ctr[_WINDOW] = counters
            need(counters_problem(lay, ctr) is None, f"the {name}'s stored window counters are out of range")
        _check_carried(name, state, carried)


def check_target_change(cls, state, limits) -> None:
    from .target_change import check_mode

    state = _dict_state("TargetChange", state)
    try:
        check_mode(state.get("mode"))
    except ValueError as e:
        raise Invalid(str(e)) from None
    for key, n, dtype in (("changes", 2, np.float64), ("errors", 3, np.float64), ("scored", 1, np.int64)):
        a = _array("TargetChange", state, key, 1, dtype)
        need(a.shape == (n,) and np.isfinite(a).all() and (a >= 0).all(), f"the TargetChange's {key} is malformed")


def check_entity_states(cls, state, limits) -> None:
    state = _dict_state("EntityStates", state)
    rows, stored, seen = state.get("rows"), state.get("stored"), state.get("last_seen")
    need(_is_int(rows) and type(stored) is dict and type(seen) is dict
         and all(_is_int(v, 0, max(rows - 1, 0)) for v in seen.values())
         and type(state.get("has_active")) is bool and _is_int(state.get("_next_sweep", 0))
         and (state.get("max_idle") is None or _is_int(state.get("max_idle"), 1)),
         "the EntityStates are malformed")


def check_series_view(cls, state, limits) -> None:
    try:
        cls.__new__(cls).__setstate__(dict(_dict_state("SeriesView", state)))
    except (ValueError, TypeError) as e:
        raise Invalid(str(e)) from None


def check_global_forecaster(cls, state, limits) -> None:
    """Its arguments (the network's built from them: the bank's), and each
    key's forecaster of its cell's class running on a view of that key."""
    from .global_forecasting import _FORECASTERS
    from .shared_bank import SeriesView, SharedWeightsBank

    name = "GlobalForecaster"
    state = _dict_state(name, state)
    fresh = _check_arguments(cls, state, None)
    bank, series, seen = state.get("_bank"), state.get("_series"), state.get("_last_seen")
    need(type(bank) is SharedWeightsBank and bank.config == fresh._bank.config
         and np.array_equal(bank._lay, fresh._bank._lay), f"the {name}'s network does not match its arguments")
    need(type(series) is dict and all(type(f) is _FORECASTERS[state["cell"]] and type(f._net) is SeriesView
                                      and f._net.key == k for k, f in series.items()),
         f"the {name}'s forecasters do not run on its network")
    need(all(k in series for k in bank.keys), f"the {name}'s network holds keys it does not")
    need(_is_int(state.get("_row")) and isinstance(seen, dict) and set(seen) == set(series)
         and all(_is_int(v, 0, max(state["_row"] - 1, 0)) for v in seen.values()),
         f"the {name}'s keys are malformed")
    if "correct" in state:  # (saved before the corrections: none)
        window, mine = state.get("_window"), fresh._window
        need(state["correct"] is (window is not None) and (window is None or (
            type(window) is type(mine) and all(getattr(window, k) == getattr(mine, k)
                                               for k in ("n_in", "n_hidden", "n_out", "lr")))),
             f"the {name}'s window network does not match its arguments")
        correctors = state.get("_correctors")
        need(type(correctors) is dict and all(k in series for k in correctors)
             and (window is not None or not correctors), f"the {name}'s corrections are malformed")


def _by_setstate(name, cls, state) -> None:
    """The checks of the class's own ``__setstate__`` (on a copy)."""
    state = _dict_state(name, state)
    try:
        cls.__new__(cls).__setstate__(dict(state))
    except (ValueError, TypeError) as e:
        raise Invalid(str(e)) from None


def check_window_network(cls, state, limits) -> None:
    """Its sizes and arrays (by its ``__setstate__``), then finite values."""
    _by_setstate("WindowNetwork", cls, state)
    need(all(np.isfinite(state[k]).all() for k in ("theta", "m1", "m2", "summed") if k in state)
         and (state["m2"] >= 0).all(),
         "the window network's weights or moments are not finite")


def check_window_corrector(cls, state, limits) -> None:
    """Its arrays (by its ``__setstate__``), then values: finite but for
    NaN marking forecasts not corrected."""
    _by_setstate("WindowCorrector", cls, state)
    need(np.isfinite(state["values"]).all() and not np.isinf(state["anchors"]).any(),
         "the window corrector's values are not finite")


def check_regressor(cls, state, limits) -> None:
    from .features import RunningScaler

    _estimator(cls, state, 1)
    y = state.get("_y_scaler")
    need(type(y) is RunningScaler and y.stats.shape[1] == 1, f"the {cls.__qualname__}'s target scaler is malformed")
    target = state.get("_target")
    if target is not None:
        from .target_change import TargetChange

        need(type(target) is TargetChange and target.mode == state.get("model_change", "level"),
             f"the {cls.__qualname__}'s target modelling is malformed")
    outputs = 1 if target is None else target.outputs
    need(state["_net"]._shape.output_size == outputs and state.get("_loss", state["_net"].loss) == state["_net"].loss,
         f"the {cls.__qualname__}'s network does not match its target")


def check_classifier(cls, state, limits) -> None:
    state = _dict_state(cls.__qualname__, state)
    classes, index = state.get("_classes"), state.get("_class_index")
    need(type(classes) is list and type(index) is dict, f"the {cls.__qualname__}'s classes are malformed")
    try:
        derived = {c: i for i, c in enumerate(classes)}
    except TypeError:
        raise Invalid(f"the {cls.__qualname__}'s classes must be hashable") from None
    need(len(derived) == len(classes) and index == derived and all(type(i) is int for i in index.values()),
         f"the {cls.__qualname__}'s class index does not match")
    _estimator(cls, state, len(classes))


def check_forecaster(cls, state, limits) -> None:
    """The forecaster's arguments, then each attribute and part (the
    combination, the smoothing, the seasonal bases) of the kind, and each
    array of the dtype and shape, of a forecaster built with the same
    arguments and period; its kernel-indexed arrays are checked again by its
    ``__setstate__``."""
    from .learner import OnlineRNN
    from .shared_bank import SeriesView

    name = cls.__qualname__
    state = _dict_state(name, state)
    net = state.get("_net")
    view = type(net) is SeriesView  # a key's forecaster of a GlobalForecaster (which checks the view's key)
    need(type(net) is OnlineRNN or view, f"the {name}'s network is missing")
    # (a state saved before the combination lacks these: its __setstate__ sets them)
    # (all or none of them: a state with the combination has each of its parts)
    before = ("combine", "_combination", "_clean", "_made", "_smoothing", "_recent", "_n_recent")
    fresh = _check_arguments(cls, state, None if view else net, optional=() if "combine" in state else before)
    args = _ctor_args(cls, state)
    period = state.get("_period")
    if period is not None and period != fresh._period:  # found in the stream: the same as if given
        need(_is_int(period, 2, 1 << 16), f"the {name}'s period is malformed")
        fresh = construct(cls, {**args, "seasonality": period})
    _check_made(name, state.get("_made"), state.get("_combination"))
    _check_last(name, state)
    _check_running_values(name, state)
    like_fresh(name, {k: v for k, v in state.items() if k not in ("_made", "_last", *(("_net",) if view else ()))
                      and k not in args}, vars(fresh))
    parts = [(part, state.get(part), getattr(fresh, part, None)) for part in ("_combination", "_smoothing")]
    parts += [("seasonal base", base, (fresh._bases or {}).get(key))
              for key, base in (state.get("_bases") or {}).items()]
    for part, mine, theirs in parts:
        if mine is not None and theirs is not None:
            need(type(mine) is type(theirs), f"the {name}'s {part} is malformed")
            require_attributes(f"{name}'s {part}", type(mine), vars(mine), theirs)
            like_fresh(f"{name}'s {part}", vars(mine), vars(theirs))


def _is_float(v) -> bool:
    return type(v) is float and math.isfinite(v)


def _check_running_values(name, state) -> None:
    """The values the forecaster keeps of the stream, which a fresh one
    holds none of (so :func:`like_fresh` cannot tell their kind): finite
    floats (the inputs waiting for their targets, with direct forecasts,
    float arrays)."""
    history, surprises, pending = state.get("_history"), state.get("_surprises"), state.get("_pending")
    need(type(history) is dict and set(history) <= {"lin", "log"}
         and all(type(d) is collections.deque and all(_is_float(v) for v in d) for d in history.values()),
         f"the {name}'s history is malformed")
    need(type(surprises) is collections.deque and all(_is_float(v) for v in surprises),
         f"the {name}'s surprises are malformed")
    need(type(pending) is collections.deque
         and all(type(u) is np.ndarray and u.ndim == 1 and u.dtype.kind == "f" and np.isfinite(u).all()
                 for u in pending), f"the {name}'s pending inputs are malformed")
    residuals, stats = state.get("_residuals"), state.get("_w_stats")
    need(type(residuals) is list and len(residuals) == 4 and all(_is_float(v) for v in residuals[:3])
         and (residuals[3] is None or _is_float(residuals[3])) and residuals[1] >= 0 and residuals[2] >= 0,
         f"the {name}'s residual sums are malformed")
    need(type(stats) is list and len(stats) == 2 and _is_int(stats[0]) and _is_float(stats[1]) and stats[1] >= 0,
         f"the {name}'s surprise statistics are malformed")


def _check_last(name, state) -> None:
    """The last value learned: one ``learn_one`` accepts (finite, within
    ±MAX_ABS_VALUE), positive on the log scale."""
    from .forecasting import MAX_ABS_VALUE

    last, log = state.get("_last"), state.get("_log", False)
    need(last is None or (_finite(last) and abs(last) <= MAX_ABS_VALUE and (not log or last > 0)),
         f"the {name}'s last value is malformed")
    need(not log or state.get("_positive", True) is True, f"the {name}'s scale is malformed")


def check_combination(cls, state, limits) -> None:
    """The shapes its ``__setstate__`` checks, then the values: finite sums,
    counts and units (> 0), and the absolute errors written so far finite
    and >= 0 (NaN marks a ring's unwritten places)."""
    state = _dict_state("HorizonCombination", state)
    try:
        cls.__new__(cls).__setstate__(dict(state))
    except (ValueError, TypeError) as e:
        raise Invalid(str(e)) from None
    from .combination import WINDOW

    need(all(np.isfinite(state[k]).all() for k in ("sq_errors", "counts", "unit")) and (state["unit"] > 0).all()
         and not np.isinf(state["origin"]).any(), "the combination's errors, counts or units are not finite")
    filled = np.arange(WINDOW)[None, None, :] < np.minimum(state["n_abs"], WINDOW)[:, :, None]
    errors = state["abs_errors"][filled]
    need(np.isfinite(errors).all() and (errors >= 0).all(), "the combination's absolute errors are malformed")


def _check_made(name, made, combination) -> None:
    """The forecasts made at the last origin: the candidates' (NaN where a
    candidate has none), the one given (finite) and which (0 or 1)."""
    if made is None:
        return
    need(type(made) is tuple and len(made) == 3, f"the {name}'s last forecasts are malformed")
    F, given, choice = made
    need(type(F) is np.ndarray and F.dtype == np.float64 and F.ndim == 2 and not np.isinf(F).any()
         and type(given) is np.ndarray and given.dtype == np.float64 and given.shape == (F.shape[1],)
         and np.isfinite(given).all()
         and type(choice) is np.ndarray and choice.dtype == np.int64 and choice.shape == (F.shape[1],)
         and ((choice == 0) | (choice == 1)).all()
         and (combination is None or F.shape[0] == combination.n_candidates),
         f"the {name}'s last forecasts are malformed")


_MAX_DEPTH = 6


def like_fresh(name, state: dict, fresh: dict) -> None:
    """Each attribute of ``state`` of the kind of the same attribute of a
    fresh instance built with the same arguments (the code's own): arrays of
    its dtype and shape, finite where the fresh one is;
    numbers, flags and strings of its type, numbers finite; containers of
    its type, lists and tuples of its length, dictionaries of its keys
    (unless empty: filled later). Attributes a fresh instance leaves None
    hold numbers (finite), arrays (finite) or containers of them. Counts
    (``n``, ``n_*``) are >= 0."""
    for key, value in state.items():
        if key in fresh:
            need(_like(value, fresh[key], 0), f"the {name}'s {key} is not of the kind its code makes")
            bare = key.lstrip("_")
            if (bare == "n" or bare.startswith("n_")) and isinstance(value, numbers.Integral):  # a count
                need(value >= 0, f"the {name}'s {key} is a count: it must be >= 0")


def _like(v, f, depth: int) -> bool:
    if depth > _MAX_DEPTH:
        return False
    if f is None:
        return v is None or _plain(v, depth)
    if isinstance(f, np.ndarray):
        if not (type(v) is np.ndarray and v.dtype == f.dtype and v.shape == f.shape):
            return False
        return v.dtype.kind != "f" or np.isnan(f).any() or bool(np.isfinite(v).all())
    if isinstance(f, bool | np.bool_):
        return type(v) is type(f)
    if isinstance(f, numbers.Integral):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_)
    if isinstance(f, numbers.Real):
        return (isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)
                and (math.isfinite(v) or not math.isfinite(f)))
    if isinstance(f, str):
        return type(v) is str
    if type(f) in (list, tuple):
        return type(v) is type(f) and len(v) == len(f) and all(_like(a, b, depth + 1) for a, b in zip(v, f))
    if isinstance(f, dict):
        if not f:  # filled later (the seasonal bases, once the period is known)
            return type(v) is type(f) and all(_plain(a, depth + 1) for a in v.values())
        return (type(v) is type(f) and v.keys() == f.keys()
                and all(_like(v[k], f[k], depth + 1) for k in f))
    if type(f).__name__ == "deque":  # (its length may follow the period, found later)
        return type(v) is type(f) and all(_plain(a, depth + 1) for a in v)
    return type(v) is type(f)


def _plain(v, depth: int) -> bool:
    """Numbers (finite), strings, arrays (finite floats) or containers of them
    (the declared objects a fresh instance leaves None are checked on their
    own)."""
    if depth > _MAX_DEPTH:
        return False
    if v is None or isinstance(v, bool | np.bool_ | str):
        return True
    if isinstance(v, numbers.Real):
        return math.isfinite(v)
    if type(v) is np.ndarray:
        return v.dtype.kind != "f" or not np.isinf(v).any()  # (NaN: forecasts not made)
    if isinstance(v, list | tuple):
        return all(_plain(a, depth + 1) for a in v)
    if isinstance(v, dict):
        return all(_plain(a, depth + 1) for a in v.values())
    return type(v).__module__.startswith(("streamrnn", "datetime", "pandas"))


def check_detector(cls, state, limits) -> None:
    check_detector_state(cls, state)
    _check_arguments(cls, state, state["_net"], cell=True,
                     optional=("_scale_kept", "_season", "_quiet", "_recent_ranges"))  # (set by __setstate__)


def check_keyed(cls, state, limits) -> None:
    state = _dict_state(cls.__qualname__, state)
    models, template = state.get("_models"), state.get("template")
    need(type(models) is dict and _is_int(state.get("_n_created"))
         and all(type(m) is type(template) for m in models.values()),
         f"the {cls.__qualname__}'s models are malformed (each of its template's class)")
    need(type(state.get("seed_by_key", False)) is bool, f"the {cls.__qualname__}'s seed_by_key must be True or False")
    _check_arguments(cls, state, None)


# -------------------------------------------------------------------- River


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def check_river_scaler(cls, state, limits) -> None:
    from river import preprocessing

    state = _dict_state(cls.__qualname__, state)
    need(state.get("window_size") is None,
         f"the {cls.__qualname__} over a rolling window is not one the format declares "
         "(use pickle for files you trust)")
    if cls is preprocessing.StandardScaler:
        counts, means, variances = state.get("counts"), state.get("means"), state.get("vars")
        need(isinstance(counts, dict) and isinstance(means, dict) and isinstance(variances, dict)
             and all(_is_int(c) for c in counts.values()) and all(_finite(m) for m in means.values())
             and all(_finite(v) and v >= 0 for v in variances.values())
             and type(state.get("with_std", True)) is bool,
             "the StandardScaler's statistics are malformed")
        need(set(counts) == set(means) and (not state.get("with_std", True) or set(counts) == set(variances))
             and all(c >= 1 for c in counts.values()),
             "the StandardScaler's counts, means and variances do not cover the same features")
    else:
        need(all(isinstance(state.get(k), dict) for k in ("min", "max")), "the MinMaxScaler's statistics are malformed")


_MISSING = object()


def check_pipeline(cls, state, limits) -> None:
    """Steps by name; the plan and the caches River derives from them (on
    first use) are those a pipeline of the same steps derives."""
    state = _dict_state("Pipeline", state)
    steps = state.get("steps")
    need(isinstance(steps, dict) and steps and all(type(k) is str for k in steps),
         "the Pipeline's steps are malformed")
    try:
        fresh = cls(*steps.items())
        if state.get("_plan") is not None:
            fresh._build_plan()
    except Exception as e:  # (River's own checks of the steps)
        raise Invalid(f"the Pipeline's steps do not make a pipeline ({type(e).__name__}: {e})") from None
    need(list(fresh.steps) == list(steps), "the Pipeline's steps are malformed")
    for key in ("_plan", "_inference_transformers", "_last_step_cached", "_last_step_params"):
        need(_identical(state.get(key, _MISSING), getattr(fresh, key, _MISSING), 0),
             f"the Pipeline's {key} is not the one its steps make")


def _identical(a, b, depth: int) -> bool:
    """The same structure: containers alike, objects the same ones, scalars equal."""
    if depth > _MAX_DEPTH:
        return False
    if type(a) in (tuple, list) or type(b) in (tuple, list):
        return type(a) is type(b) and len(a) == len(b) and all(_identical(x, y, depth + 1) for x, y in zip(a, b))
    if isinstance(b, dict):
        return (type(a) is type(b) and list(a) == list(b)
                and all(_identical(a[k], b[k], depth + 1) for k in b))
    if b is None or isinstance(b, bool | int | float | str | frozenset):
        return type(a) is type(b) and a == b
    return a is b


def check_union(cls, state, limits) -> None:
    state = _dict_state("TransformerUnion", state)
    t = state.get("transformers")
    need(isinstance(t, dict) and all(type(k) is str for k in t), "the TransformerUnion's transformers are malformed")


def check_filter(cls, state, limits) -> None:
    from river import stats
    from river.base import AnomalyDetector

    state = _dict_state(cls.__qualname__, state)
    need(isinstance(state.get("anomaly_detector"), AnomalyDetector)
         and type(state.get("protect_anomaly_detector")) is bool, f"the {cls.__qualname__}'s detector is malformed")
    if "threshold" in state:
        need(_finite(state["threshold"]), "the ThresholdFilter's threshold must be finite")
    if "quantile" in state:
        need(type(state["quantile"]) is stats.Quantile, "the QuantileFilter's quantile is malformed")


def check_extremum(cls, state, limits) -> None:
    state = _dict_state(cls.__qualname__, state)
    v = next(iter(state.values()), 0.0)
    need(isinstance(v, numbers.Real) and not isinstance(v, bool) and not math.isnan(v),
         f"the {cls.__qualname__}'s value is malformed")


def check_quantile(cls, state, limits) -> None:
    state = _dict_state("Quantile", state)
    q = state.get("q")
    need(_finite(q) and 0 < q < 1 and type(state.get("_is_updated", False)) is bool,
         "the Quantile's q must be in (0, 1)")
    backend = state.get("_quantile")
    need(backend is not None and type(backend) is type(cls(0.5)._quantile), "the Quantile's estimator is malformed")


def check_quantile_backend(cls, state, limits) -> None:
    """River's P² estimator (Rust): its state is fixed-size, of floats first."""
    from river import stats

    size = len(stats.Quantile(0.5)._quantile.__getstate__())
    need(type(state) is bytes and len(state) == size, "the quantile estimator's state is malformed")
    floats = np.frombuffer(state[: size - size % 8], dtype="<f8")
    need(np.isfinite(floats).all(), "the quantile estimator's state is not finite")


def check_detector_state(cls: type, state) -> None:
    """The score statistics and, for the reconstruction detector, the window
    of an anomaly detector: sized as the kernels of
    :mod:`streamrnn.kernels.scoring` expect (its network is an
    :class:`~streamrnn.OnlineRNN`, checked on its own)."""
    from .anomaly import ReconstructionDetector
    from .checks import is_integer
    from .kernels import scoring as S
    from .learner import OnlineRNN

    name = cls.__qualname__
    need(isinstance(state, dict), f"the state of the {name} must be a dictionary")
    k, names = state.get("short_window"), getattr(state.get("_features"), "names", None)
    need(is_integer(k) and k >= 1 and isinstance(names, list),
          f"the {name}'s window or features are malformed")
    F = len(names)
    st = state.get("_st")
    # (F fewer numbers: saved before the counts of calm values were kept; HEAD - OLD_HEAD
    # fewer: before the histograms of the errors were)
    sizes = [S.state_size(k, F) - d for d in (0, S.HEAD - S.OLD_HEAD)]
    need(type(st) is np.ndarray and st.dtype == np.float64 and st.ndim == 1
          and st.shape[0] in (*sizes, *(size - F for size in sizes)),
          f"the {name}'s score statistics do not match its window and features")
    if st.shape[0] in (sizes[1], sizes[1] - F):  # (upgraded on load)
        st = S.with_seen_counts(st, F)
    need(st[S.S_WINDOW] == k and 0 <= st[S.S_POS] < k and st[S.S_POS] == int(st[S.S_POS]),
          f"the {name}'s score statistics are inconsistent")
    _check_score_ranges(name, st, k, F)
    season = state.get("_season")  # (absent: saved before the seasonal errors, added on load)
    if season is not None or "_season" in state:
        from .anomaly_season import SeasonalErrors

        need(type(season) is SeasonalErrors and season.n_features == F
             and season.st.shape[0] == S.state_size(k, F) and season.st[S.S_WINDOW] == k,
             f"the {name}'s seasonal errors do not match its window and features")
    quiet = state.get("_quiet")  # (absent: saved before the quiet state, added on load)
    if quiet is not None or "_quiet" in state:
        _check_quiet(name, quiet)
    ranges = state.get("_recent_ranges")  # (absent: saved before the recent ranges, added on load)
    if ranges is not None or "_recent_ranges" in state:
        _check_recent_ranges(name, ranges, k, F)
    net = state.get("_net")
    need(isinstance(net, OnlineRNN) and net._shape.input_size >= F and net._shape.output_size >= F,
          f"the {name}'s network does not match its features")
    need(type(state.get("_has_last")) is bool and _is_int(state.get("_n_skipped"))
         and type(state.get("_scale_kept", False)) is bool, f"the {name}'s flags or counts are malformed")
    if not issubclass(cls, ReconstructionDetector):  # it learns its last input to predict the next
        width = max(F, 1)
        inp = state.get("_input")
        need(net._shape.input_size == width and net._shape.output_size == width and type(inp) is np.ndarray
             and inp.dtype.kind == "f" and inp.shape == (width,) and np.isfinite(inp).all(),
             f"the {name}'s network and last input do not match its features")
    if issubclass(cls, ReconstructionDetector):
        window, recent = state.get("window"), state.get("_recent_z")
        need(is_integer(window) and window >= 1
              and type(recent) is np.ndarray and recent.dtype == np.float64 and recent.shape == (window, F)
              and net._shape.output_size >= window * F,
              f"the {name}'s window does not match its features and network")
        stats = getattr(state.get("_scaler"), "stats", None)
        need(type(stats) is np.ndarray and stats.dtype == np.float64 and stats.shape == (3, F),
              f"the {name}'s scaler does not match its features")


def _check_score_ranges(name: str, st: np.ndarray, k: int, F: int) -> None:
    """Every number of a scoring state of window ``k`` and ``F`` features
    (its size checked) finite and in its range."""
    from .kernels import scoring as S

    need(np.isfinite(st).all(), f"the {name}'s score statistics are not all finite")
    tails = [S.S_TAIL + j for j in (1, 2, 3)] + [S.S_TAIL_RECENT + j for j in (1, 2, 3)]
    a = S.HEAD + 2 * k
    need(min(st[S.S_N], st[S.S_SCORED], st[S.S_MEMORY], st[S.S_GRACE], *st[tails]) >= 0
         and 0 < st[S.S_ALPHA] <= 1 and 0 <= st[S.S_DECAY] < 1
         and st[S.S_TAIL + 2] <= 1 and st[S.S_TAIL_RECENT + 2] <= 1
         and (st[a + F : a + 2 * F] >= 0).all() and (st[a + 5 * F : a + 6 * F] >= 0).all()
         and (st[S.S_SEEN : S.HEAD] >= 0).all() and st[S.S_HIST : S.HEAD].sum() <= 2 * st[S.S_SEEN] + 1e-6 * st[S.S_SEEN],
         f"the {name}'s score statistics are out of their ranges (counts, variances, rates, scales >= 0)")
    ring = st[S.HEAD + k : S.HEAD + 2 * k]  # the last evidences, in [0, 1], plus FLAG for an alarm at the threshold
    need((((ring >= 0) & (ring <= 1)) | ((ring >= S.FLAG) & (ring <= S.FLAG + 1))).all(),
         f"the {name}'s last evidences are out of their range")


def _check_recent_ranges(name: str, rr, k: int, F: int) -> None:
    """A detector's recent ranges: their length for ``F`` features, every
    number finite, the values counted whole, the block being filled and the
    ring's slot those that count derives, the counts of calm values in
    [0, ``k``], and each complete block's low at most its high."""
    from .kernels import scoring as S

    need(type(rr) is np.ndarray and rr.dtype == np.float64 and rr.shape == (S.recent_size(F),)
         and np.isfinite(rr).all(), f"the {name}'s recent ranges must be {S.recent_size(F)} finite float64 numbers")
    seen = rr[S.R_SEEN]
    need(seen >= 0 and seen == np.floor(seen) and rr[S.R_FILL] == seen % S.RECENT_BLOCK
         and rr[S.R_POS] == (seen // S.RECENT_BLOCK) % S.RECENT_BLOCKS,
         f"the {name}'s recent ranges' counts are inconsistent")
    for j in range(F):
        a = S.RECENT_HEAD + j * S.RECENT_PER_FEATURE
        lows, highs = rr[a + 2 : a + 2 + S.RECENT_BLOCKS], rr[a + 2 + S.RECENT_BLOCKS : a + 2 + 2 * S.RECENT_BLOCKS]
        calm = rr[a + 2 + 2 * S.RECENT_BLOCKS : a + 2 + 2 * S.RECENT_BLOCKS + S.RECENT_WINDOWS]
        need(rr[a] <= rr[a + 1] and (lows <= highs).all() and ((calm >= 0) & (calm <= k)).all(),
             f"the {name}'s recent ranges are out of their ranges")
        # each window's range over its complete blocks: derived from the blocks, not taken from the file
        complete = int(seen // S.RECENT_BLOCK)
        c, J = a + 2 + 2 * S.RECENT_BLOCKS, S.RECENT_WINDOWS
        window_lows, window_highs = rr[c + J : c + 2 * J], rr[c + 2 * J : c + 3 * J]
        last = (int(rr[S.R_POS]) - 1) % S.RECENT_BLOCKS  # the newest complete block's slot
        for w in range(S.RECENT_WINDOWS):
            n = min((S.RECENT_FIRST << w) // S.RECENT_BLOCK, complete)
            if n == 0:
                need(window_lows[w] == 0 and window_highs[w] == 0, f"the {name}'s recent ranges are inconsistent")
                continue
            slots = (last - np.arange(n)) % S.RECENT_BLOCKS
            need(window_lows[w] == lows[slots].min() and window_highs[w] == highs[slots].max(),
                 f"the {name}'s recent ranges do not match their blocks")


def _check_quiet(name: str, quiet) -> None:
    """A detector's quiet state: its length, every number finite and in
    its range (counts whole, the ring's slot within it, variance, rate,
    excess and the ring's mean squares of clipped scaled changes)."""
    from .kernels import scoring as S

    need(type(quiet) is np.ndarray and quiet.dtype == np.float64 and quiet.shape == (S.QUIET_SIZE,)
         and np.isfinite(quiet).all(), f"the {name}'s quiet state must be {S.QUIET_SIZE} finite float64 numbers")
    counts = quiet[[S.Q_N, S.Q_FILLED, S.Q_POS]]
    ring = quiet[S.QUIET_HEAD :]
    need((counts >= 0).all() and (counts == np.floor(counts)).all() and quiet[S.Q_FILLED] <= S.QUIET_WINDOW
         and quiet[S.Q_POS] < S.QUIET_WINDOW and min(quiet[S.Q_TAIL + 1], quiet[S.Q_TAIL + 2], quiet[S.Q_TAIL + 3]) >= 0
         and quiet[S.Q_TAIL + 2] <= 1 and ((ring >= 0) & (ring <= S.CLIP * S.CLIP)).all(),
         f"the {name}'s quiet state is out of its ranges")


def check_seasonal_errors(cls, state, limits) -> None:
    """The seasonal errors of a detector: every array shaped as the kernels
    index it (the period's ring, the phase within it, the history while
    looks remain), every number finite and in its range."""
    from .anomaly_season import CYCLES, HISTORY
    from .kernels import scoring as S

    name = "seasonal errors"
    state = _dict_state(name, state)
    F, n, period = state.get("n_features"), state.get("n"), state.get("period")
    phase, cycle = state.get("phase"), state.get("cycle")
    need(_is_int(F) and _is_int(n) and _is_int(cycle) and "period" in state and (period is None or _is_int(period, 1))
         and _is_int(phase, 0, (period or 1) - 1), f"the {name}' counts or period are malformed")
    arrays = {key: state.get(key) for key in ("empty", "st", "history", "ring", "recent", "local", "level",
                                              "last_period")}
    need(all(type(a) is np.ndarray and a.dtype == np.float64 and np.isfinite(a).all() for a in arrays.values()),
         f"the {name}' arrays must be finite float64 arrays")
    shapes = {"history": (HISTORY if n < HISTORY else 0, F), "ring": (period or 0, CYCLES, F),
              "recent": (CYCLES, F), "local": (F,), "level": (F,), "last_period": (period or 0, F)}
    need(all(arrays[key].shape == shape for key, shape in shapes.items()) and (arrays["local"] >= 0).all(),
         f"the {name}' arrays do not match its period and features")
    for key in ("empty", "st"):
        st = arrays[key]
        k = st[S.S_WINDOW] if st.ndim == 1 and st.shape[0] > S.S_WINDOW else 0
        need(st.ndim == 1 and k >= 1 and k == int(k) and st.shape[0] == S.state_size(int(k), F)
             and 0 <= st[S.S_POS] < k and st[S.S_POS] == int(st[S.S_POS]),
             f"the {name}' score statistics do not match their window and features")
        _check_score_ranges(name, st, int(k), F)
