"""Saving and loading models in a safe, versioned file format.

:func:`save` writes any streamrnn estimator (and River pipelines or other
River objects that contain them) to a file; :func:`load` rebuilds it. A model
saved mid-stream resumes exactly where it was: its predictions and its
learning after :func:`load` are bit-identical to those of the model that was
never saved.

The format
----------
A file is a zip archive readable by ``numpy.load(path, allow_pickle=False)``
(an ``.npz``): one ``.npy`` entry per numpy array of the model's state
(``a0.npy``, ``a1.npy``, ...), and ``__meta__.json``, a UTF-8 JSON document::

    {"format": "streamrnn", "format_version": 1, "streamrnn_version": "0.1.0",
     "numpy_version": "...", "python_version": "...",
     "class": "streamrnn.forecasting:LSTMForecaster",
     "metadata": {...},            # the caller's JSON metadata, if any
     "arrays": ["a0", "a1", ...],  # the array entries
     "root": <the object, encoded>}

The object is encoded recursively, as pickle would see it (its
``__reduce_ex__``: the state from ``__getstate__``, so an
:class:`~streamrnn.OnlineRNN` is saved without its scratch buffer, exactly as
it pickles). Each value is a JSON ``null``, boolean, integer, finite float
or string, or an object with one tag: ``{"$array": "a3"}`` (an array entry),
``{"$obj": "module:QualName", "state": ...}`` (an instance of an allowed
class), ``{"$type": ...}``, ``{"$list": [...]}``, ``{"$tuple": [...]}``,
``{"$dict": [[key, value], ...]}`` (keys of any type: class labels may be
integers or booleans), ``{"$deque": [...], "maxlen": ...}``, ``$odict``,
``$counter``, ``$defaultdict``, ``$set``, ``$frozenset``, ``{"$float":
"nan"}``, ``$complex``, ``$bytes``, ``$npscalar`` (the scalar's bytes, in
hex, and its dtype), ``$dtype``, ``$nptype``, ``$objarray``, ``$date``,
``$datetime``, ``$time``, ``$timedelta``, ``$timestamp`` (pandas), with time
zones ``$timezone`` and ``$zoneinfo``. Mutable containers and objects carry
an ``"$id"``; a later ``{"$ref": n}`` is the same object again (River
pipelines share their steps between several attributes). A loaded model
saved again gives the same bytes: entries carry fixed times.

Safety
------
Loading never runs code from the file and never unpickles: arrays are read
with ``allow_pickle=False``, and objects are rebuilt only for an allow-list
of classes, by ``cls.__new__(cls)`` and then the class's own
``__setstate__`` or an update of its ``__dict__`` (what pickle does, minus
its arbitrary callables). The allow-list: classes defined in ``streamrnn``'s
modules and in ``river``'s (except ``river.datasets``, ``river.stream``,
``river.api`` and ``river.checks``, which do input and output), the builtin
containers above, and ``float``, ``int``, ``str``, ``bool``, ``list``,
``dict``, ``set``, ``tuple`` and ``frozenset`` as types (``defaultdict``
factories). Functions, ``functools.partial`` and classes that customise
their pickling (``__reduce__``, ``__getnewargs__``; among River's, those
backed by Rust, such as ``stats.EWMean`` and the weights of its linear
models) cannot be saved: :func:`save` raises ``TypeError`` naming where
such a value sits. A file naming anything else is refused with
:class:`ForbiddenClassError`. The buffers handed to the Numba kernels
(those of every :class:`~streamrnn.OnlineRNN` and
:class:`~streamrnn.ModelBank`) are checked against the layout their shape
implies; other values are taken as written (a file edited on purpose can
hold odd numbers, never code).

A damaged file (a flipped byte, a truncated or empty file: zip CRC-32 checks
cover every entry), a file that is not a streamrnn model, and a file written
by a newer format version all raise :class:`FormatError` (a ``ValueError``)
naming the path and the problem; nothing half-built is returned.

Files written in every earlier format version keep loading (the files in
``tests/fixtures`` check it): a change of the format raises
:data:`FORMAT_VERSION`, and a change of an estimator's state must keep its
earlier state loading (a class-level default for a new attribute, or a
``__setstate__`` that upgrades the old state).

Examples
--------
>>> import os, tempfile
>>> from streamrnn import LSTMRegressor
>>> from streamrnn.persistence import load, save
>>> model = LSTMRegressor(hidden_size=8, seed=0)
>>> for t in range(50):
...     model.learn_one({"t": t % 7}, float(t % 7) ** 0.5)
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = os.path.join(tmp, "model.npz")
...     save(model, path)
...     copy = load(path)
>>> copy.predict_one({"t": 3}) == model.predict_one({"t": 3})
True
>>> copy.learn_one({"t": 1}, 1.0); model.learn_one({"t": 1}, 1.0)
>>> copy.predict_one({"t": 2}) == model.predict_one({"t": 2})
True
"""

from __future__ import annotations

import collections
import copyreg
import datetime as dt
import importlib
import io
import json
import math
import os
import platform
import secrets
import sys
import zipfile
import zoneinfo

import numpy as np
import pandas as pd

__all__ = ["FORMAT_VERSION", "FormatError", "ForbiddenClassError", "UnsupportedVersionError", "info", "load", "save"]

#: Version of the file format written by :func:`save`; :func:`load` reads
#: this one and every earlier one.
FORMAT_VERSION = 1

META = "__meta__.json"
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry times: equal models give equal files

_ALLOWED_PACKAGES = ("streamrnn", "river")
_DENIED_MODULES = ("river.datasets", "river.stream", "river.api", "river.checks")
_BUILTIN_TYPES = {f"builtins:{t.__name__}": t for t in (float, int, str, bool, list, dict, set, tuple, frozenset)}
_NUMERIC_KINDS = "biufcmMSU"


class FormatError(ValueError):
    """A file that cannot be loaded: damaged, truncated, not a streamrnn
    model, or holding something the format does not allow.

    Attributes
    ----------
    path
        The file (or a description of the file object).
    problem
        What is wrong.
    """

    def __init__(self, path, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class UnsupportedVersionError(FormatError):
    """A file written in a newer format version than this streamrnn reads."""


class ForbiddenClassError(FormatError):
    """A file naming a class outside the allow-list."""


class _Invalid(Exception):
    """A problem found while decoding; becomes a :class:`FormatError`."""

    def __init__(self, problem: str, kind: type[FormatError] = FormatError):
        super().__init__(problem)
        self.kind = kind


# ------------------------------------------------------------------ classes


def _module_allowed(module: str) -> bool:
    if not any(module == p or module.startswith(p + ".") for p in _ALLOWED_PACKAGES):
        return False
    return not any(module == d or module.startswith(d + ".") for d in _DENIED_MODULES)


def _resolve(path) -> type:
    """The allowed class named ``"module:QualName"``; raises ``_Invalid``."""
    if not isinstance(path, str):
        raise _Invalid(f"a class name must be a string, got {path!r}")
    if path in _BUILTIN_TYPES:
        return _BUILTIN_TYPES[path]
    module, sep, qualname = path.partition(":")
    parts = module.split(".") + qualname.split(".")
    if not sep or not all(p.isidentifier() for p in parts) or not _module_allowed(module):
        raise _Invalid(
            f"class {path!r} is not in the allow-list (classes of streamrnn and river, and builtin containers)",
            ForbiddenClassError,
        )
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise _Invalid(f"class {path!r} does not exist in this installation ({e})", ForbiddenClassError) from None
    if not isinstance(obj, type) or obj.__module__ != module or obj.__qualname__ != qualname:
        raise _Invalid(f"{path!r} is not a class defined in {module}", ForbiddenClassError)
    return obj


def _class_path(cls: type, where: str) -> str:
    """``"module:QualName"`` of an allowed class; raises ``TypeError``."""
    for path, t in _BUILTIN_TYPES.items():
        if cls is t:
            return path
    path = f"{cls.__module__}:{cls.__qualname__}"
    try:
        if _resolve(path) is cls:
            return path
    except _Invalid:
        pass
    raise TypeError(
        f"cannot save {where}: {cls.__module__}.{cls.__qualname__} is not in the allow-list of the streamrnn "
        "format (classes defined in streamrnn's and river's modules, numpy arrays and scalars, builtin "
        "containers, dates and times)"
    )


# ----------------------------------------------------------------- encoding


class _Encoder:
    """The JSON tree and the arrays of an object (see the module's description)."""

    def __init__(self):
        self.arrays: list[np.ndarray] = []
        self._array_names: dict[int, str] = {}
        self._memo: dict[int, int] = {}
        self._alive: list = []  # keeps temporaries alive so their ids stay unique
        self._tuples: set[int] = set()  # tuples being encoded (a cycle through one cannot be rebuilt)

    def _register(self, v) -> int | None:
        """Memo id of ``v``, or None if seen before (then emit a ``$ref``)."""
        if id(v) in self._memo:
            return None
        n = self._memo[id(v)] = len(self._memo)
        self._alive.append(v)
        return n

    def _items(self, pairs, where, attributes: bool = False):
        return [
            [self.encode(k, f"{where} key"), self.encode(v, f"{where}.{k}" if attributes else f"{where}[{k!r}]")]
            for k, v in pairs
        ]

    def encode(self, v, where: str):
        t = type(v)
        if v is None or t is bool or t is int or t is str:
            return v
        if t is float:
            return v if math.isfinite(v) else {"$float": repr(v)}
        if t is np.ndarray:
            return self._array(v, where)
        if isinstance(v, np.generic):
            return self._scalar(v, where)
        if isinstance(v, np.dtype):
            if v.kind not in _NUMERIC_KINDS or v.fields is not None:
                raise TypeError(f"cannot save {where}: dtype {v} (only plain numeric, date and string dtypes)")
            return {"$dtype": v.str}
        if t is complex:
            return {"$complex": [self.encode(v.real, where), self.encode(v.imag, where)]}
        if t is bytes:
            return {"$bytes": v.hex()}
        if t is tuple or t is frozenset:
            if id(v) in self._tuples:
                raise TypeError(f"cannot save {where}: a reference cycle through a {t.__name__}")
            self._tuples.add(id(v))
            try:
                items = _ordered(v) if t is frozenset else v
                return {f"${t.__name__}": [self.encode(x, f"{where}[{i}]") for i, x in enumerate(items)]}
            finally:
                self._tuples.discard(id(v))
        if isinstance(v, type):
            if issubclass(v, np.generic) and v.__module__ == "numpy":
                return {"$nptype": np.dtype(v).str}
            return {"$type": _class_path(v, where)}
        if t is pd.Timestamp:
            return {"$timestamp": int(v.value), "unit": v.unit, "tz": _encode_tz(v.tzinfo, where)}
        if t is dt.datetime:
            fields = [v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond]
            return {"$datetime": fields, "fold": v.fold, "tz": _encode_tz(v.tzinfo, where)}
        if t is dt.date:
            return {"$date": [v.year, v.month, v.day]}
        if t is dt.time:
            fields = [v.hour, v.minute, v.second, v.microsecond]
            return {"$time": fields, "fold": v.fold, "tz": _encode_tz(v.tzinfo, where)}
        if t is dt.timedelta:
            return {"$timedelta": [v.days, v.seconds, v.microseconds]}

        # mutable: the same object twice is one object after loading
        n = self._register(v)
        if n is None:
            return {"$ref": self._memo[id(v)]}
        if t is list:
            return {"$list": [self.encode(x, f"{where}[{i}]") for i, x in enumerate(v)], "$id": n}
        if t is dict:
            return {"$dict": self._items(v.items(), where), "$id": n}
        if t is collections.OrderedDict:
            return {"$odict": self._items(v.items(), where), "$id": n}
        if t is collections.Counter:
            return {"$counter": self._items(v.items(), where), "$id": n}
        if t is collections.defaultdict:
            factory = None if v.default_factory is None else self.encode(v.default_factory, f"{where}.default_factory")
            if factory is not None and not isinstance(v.default_factory, type):
                raise TypeError(f"cannot save {where}: its default_factory must be a class")
            return {"$defaultdict": self._items(v.items(), where), "factory": factory, "$id": n}
        if t is collections.deque:
            return {"$deque": [self.encode(x, f"{where}[{i}]") for i, x in enumerate(v)], "maxlen": v.maxlen, "$id": n}
        if t is set:
            return {"$set": [self.encode(x, f"{where} item") for x in _ordered(v)], "$id": n}
        return self._object(v, n, where)

    def _array(self, a: np.ndarray, where: str):
        if a.dtype.kind == "O":
            items = [self.encode(x, f"{where}[{i}]") for i, x in enumerate(a.ravel(order="C"))]
            return {"$objarray": list(a.shape), "items": items}
        if a.dtype.kind not in _NUMERIC_KINDS + "V" or a.dtype.hasobject:
            raise TypeError(f"cannot save {where}: arrays of dtype {a.dtype}")
        name = self._array_names.get(id(a))
        if name is None:
            name = self._array_names[id(a)] = f"a{len(self.arrays)}"
            self.arrays.append(a)
            self._alive.append(a)
        return {"$array": name}

    def _scalar(self, s: np.generic, where: str):
        if s.dtype.kind not in _NUMERIC_KINDS or s.dtype.fields is not None:
            raise TypeError(f"cannot save {where}: numpy scalar of dtype {s.dtype}")
        return {"$npscalar": s.dtype.str, "hex": np.array(s).tobytes().hex()}

    def _object(self, v, n: int, where: str):
        cls = type(v)
        path = _class_path(cls, where)
        reduced = v.__reduce_ex__(4)
        if not (
            isinstance(reduced, tuple)
            and 2 <= len(reduced) <= 5
            and reduced[0] is copyreg.__newobj__
            and reduced[1] == (cls,)
        ):
            raise TypeError(
                f"cannot save {where}: {path} customises its pickling (__reduce__ or __getnewargs__), "
                "which the streamrnn format does not support"
            )
        state, listitems, dictitems = (tuple(reduced[2:]) + (None, None, None))[:3]
        out = {"$obj": path, "$id": n}
        if state is not None:
            if type(state) is dict:  # the usual __dict__: a fresh dict, never shared
                out["state"] = {"$dict": self._items(state.items(), where, attributes=True)}
            else:
                out["state"] = self.encode(state, f"{where} state")
        if listitems is not None:
            out["list"] = [self.encode(x, f"{where}[{i}]") for i, x in enumerate(listitems)]
        if dictitems is not None:
            out["dict"] = self._items(dictitems, where)
        return out


def _ordered(items) -> list:
    """A set's items in a repeatable order where they sort."""
    try:
        return sorted(items)
    except TypeError:
        return list(items)


def _encode_tz(tz, where: str):
    if tz is None:
        return None
    if type(tz) is dt.timezone:
        off = tz.utcoffset(None)
        name = tz.tzname(None)
        return {"$timezone": [off.days, off.seconds, off.microseconds], "name": name}
    if type(tz) is zoneinfo.ZoneInfo and tz.key is not None:
        return {"$zoneinfo": tz.key}
    raise TypeError(
        f"cannot save {where}: time zone {tz!r} of type {type(tz).__name__} "
        "(only datetime.timezone and zoneinfo.ZoneInfo)"
    )


# ----------------------------------------------------------------- decoding

_TAG_KEYS = {
    "$float": set(),
    "$complex": set(),
    "$bytes": set(),
    "$tuple": set(),
    "$frozenset": set(),
    "$array": set(),
    "$objarray": {"items"},
    "$npscalar": {"hex"},
    "$dtype": set(),
    "$nptype": set(),
    "$type": set(),
    "$timestamp": {"unit", "tz"},
    "$datetime": {"fold", "tz"},
    "$date": set(),
    "$time": {"fold", "tz"},
    "$timedelta": set(),
    "$timezone": {"name"},
    "$zoneinfo": set(),
    "$ref": set(),
    "$list": {"$id"},
    "$dict": {"$id"},
    "$odict": {"$id"},
    "$counter": {"$id"},
    "$defaultdict": {"factory", "$id"},
    "$deque": {"maxlen", "$id"},
    "$set": {"$id"},
    "$obj": {"$id", "state", "list", "dict"},
}


def _need(cond: bool, problem: str) -> None:
    if not cond:
        raise _Invalid(problem)


def _int_list(v, n: int | None, what: str) -> list:
    _need(
        type(v) is list and (n is None or len(v) == n) and all(type(x) is int for x in v),
        f"{what} must be a list of {n or 'some'} integers, got {v!r}",
    )
    return v


def _dtype(s) -> np.dtype:
    _need(isinstance(s, str) and len(s) < 32, f"invalid dtype {s!r}")
    d = np.dtype(s)
    _need(d.kind in _NUMERIC_KINDS and d.fields is None, f"dtype {s!r} is not allowed")
    return d


class _Decoder:
    def __init__(self, arrays):
        self._arrays = arrays  # name -> array, read lazily
        self._memo: list = []

    def _register(self, node: dict, obj) -> None:
        _need(node.get("$id") == len(self._memo), f"object ids out of sequence at {str(node)[:80]}")
        self._memo.append(obj)

    def _pairs(self, pairs):
        _need(type(pairs) is list, "dictionary items must be a list")
        for pair in pairs:
            _need(type(pair) is list and len(pair) == 2, "dictionary items must be [key, value] pairs")
            yield self.decode(pair[0]), self.decode(pair[1])

    def _items(self, items) -> list:
        _need(type(items) is list, "items must be a list")
        return [self.decode(x) for x in items]

    def decode(self, v):
        t = type(v)
        if v is None or t is bool or t is int or t is str or t is float:
            return v
        _need(t is dict, f"unexpected JSON value {str(v)[:80]}")
        tags = [k for k in v if k in _TAG_KEYS]
        _need(len(tags) == 1, f"expected one type tag in {str(v)[:80]}")
        tag = tags[0]
        _need(set(v) - {tag} <= _TAG_KEYS[tag], f"unexpected keys in {str(v)[:80]}")
        x = v[tag]

        if tag == "$float":
            _need(x in ("nan", "inf", "-inf"), f"invalid float {x!r}")
            return float(x)
        if tag == "$complex":
            _need(type(x) is list and len(x) == 2, "a complex number must be [real, imag]")
            re, im = (self.decode(p) for p in x)
            _need(type(re) is float and type(im) is float, "a complex number must be two floats")
            return complex(re, im)
        if tag == "$bytes":
            _need(type(x) is str, "bytes must be a hex string")
            return bytes.fromhex(x)
        if tag == "$tuple":
            return tuple(self._items(x))
        if tag == "$frozenset":
            return frozenset(self._items(x))
        if tag == "$array":
            _need(x in self._arrays, f"array entry {x!r} is missing")
            return self._arrays[x]
        if tag == "$objarray":
            shape = tuple(_int_list(x, None, "an object array's shape"))
            items = self._items(v.get("items"))
            a = np.empty(shape, dtype=object)
            _need(a.size == len(items), "an object array's items do not match its shape")
            flat = a.reshape(-1)
            for i, item in enumerate(items):
                flat[i] = item
            return a
        if tag == "$npscalar":
            d = _dtype(x)
            raw = bytes.fromhex(v.get("hex", ""))
            _need(len(raw) == d.itemsize, f"a numpy scalar of dtype {x} must have {d.itemsize} bytes")
            return np.frombuffer(raw, dtype=d)[0]
        if tag == "$dtype":
            return _dtype(x)
        if tag == "$nptype":
            return _dtype(x).type
        if tag == "$type":
            return _resolve(x)
        if tag == "$timestamp":
            _need(type(x) is int and v.get("unit") in ("s", "ms", "us", "ns"), "invalid pandas timestamp")
            tz = self._tz(v.get("tz"))
            return pd.Timestamp(x, unit="ns", tz=tz).as_unit(v["unit"])
        if tag == "$datetime":
            return dt.datetime(*_int_list(x, 7, "a datetime"), tzinfo=self._tz(v.get("tz")), fold=v.get("fold", 0))
        if tag == "$date":
            return dt.date(*_int_list(x, 3, "a date"))
        if tag == "$time":
            return dt.time(*_int_list(x, 4, "a time"), tzinfo=self._tz(v.get("tz")), fold=v.get("fold", 0))
        if tag == "$timedelta":
            days, seconds, microseconds = _int_list(x, 3, "a timedelta")
            return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)
        if tag in ("$timezone", "$zoneinfo"):
            return self._tz(v)
        if tag == "$ref":
            _need(type(x) is int and 0 <= x < len(self._memo), f"reference to an unknown object {x!r}")
            return self._memo[x]

        # mutable: registered before their contents, which may refer back to them
        if tag == "$list":
            out = []
            self._register(v, out)
            out.extend(self._items(x))
            return out
        if tag in ("$dict", "$odict", "$counter", "$defaultdict"):
            if tag == "$defaultdict":
                factory = self.decode(v.get("factory"))
                _need(factory is None or isinstance(factory, type), "a defaultdict's factory must be a class")
                out = collections.defaultdict(factory)
            else:
                out = {"$dict": dict, "$odict": collections.OrderedDict, "$counter": collections.Counter}[tag]()
            self._register(v, out)
            for key, value in self._pairs(x):
                out[key] = value
            return out
        if tag == "$deque":
            maxlen = v.get("maxlen")
            _need(maxlen is None or (type(maxlen) is int and maxlen >= 0), f"invalid deque maxlen {maxlen!r}")
            out = collections.deque(maxlen=maxlen)
            self._register(v, out)
            out.extend(self._items(x))
            return out
        if tag == "$set":
            out = set()
            self._register(v, out)
            out.update(self._items(x))
            return out
        return self._object(v)

    def _tz(self, v):
        if v is None:
            return None
        _need(type(v) is dict, f"invalid time zone {v!r}")
        if "$zoneinfo" in v:
            _need(set(v) == {"$zoneinfo"} and type(v["$zoneinfo"]) is str, f"invalid time zone {v!r}")
            return zoneinfo.ZoneInfo(v["$zoneinfo"])
        _need(set(v) <= {"$timezone", "name"} and "$timezone" in v, f"invalid time zone {v!r}")
        days, seconds, microseconds = _int_list(v["$timezone"], 3, "a time zone offset")
        offset = dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)
        name = v.get("name")
        _need(name is None or type(name) is str, f"invalid time zone name {name!r}")
        return dt.timezone(offset) if name is None else dt.timezone(offset, name)

    def _object(self, v: dict):
        cls = _resolve(v["$obj"])
        _need(cls not in _BUILTIN_TYPES.values(), f"{v['$obj']} cannot be an object of the format")
        obj = cls.__new__(cls)
        self._register(v, obj)
        # decode everything first (in the order it was written), then build as pickle does
        state = self._state(v["state"]) if "state" in v else None
        items = self._items(v["list"]) if "list" in v else None
        pairs = list(self._pairs(v["dict"])) if "dict" in v else None
        if items is not None:
            _need(isinstance(obj, list), f"{v['$obj']} takes no list items")
            obj.extend(items)
        if pairs is not None:
            _need(isinstance(obj, dict), f"{v['$obj']} takes no dictionary items")
            for key, value in pairs:
                obj[key] = value
        _check_state(cls, state)
        if state is not None:
            _set_state(obj, state)
        return obj

    def _state(self, node):
        """An object's state: its ``__dict__`` is written as a plain ``$dict``
        (no ``$id``: a fresh dict that nothing else refers to)."""
        if type(node) is dict and set(node) == {"$dict"}:
            return dict(self._pairs(node["$dict"]))
        return self.decode(node)


def _set_state(obj, state) -> None:
    """Pickle's BUILD: the class's ``__setstate__``, or the instance
    ``__dict__`` and declared slots."""
    setstate = getattr(type(obj), "__setstate__", None)
    if setstate is not None:
        setstate(obj, state)
        return
    slots = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    if state:
        _need(isinstance(state, dict) and all(type(k) is str for k in state), "an object's state must map names")
        _need(hasattr(obj, "__dict__"), f"{type(obj).__qualname__} has no instance dictionary")
        obj.__dict__.update({sys.intern(k): value for k, value in state.items()})
    if slots:
        _need(isinstance(slots, dict), "an object's slot state must map names")
        declared = {s for c in type(obj).__mro__ for s in getattr(c, "__slots__", ())}
        for k, value in slots.items():
            _need(k in declared, f"{type(obj).__qualname__} has no slot {k!r}")
            setattr(obj, k, value)


# ------------------------------------------------------------------- checks


def _check_state(cls: type, state) -> None:
    """Consistency of the buffers that the Numba kernels index without bounds
    checks, in the state of an :class:`~streamrnn.OnlineRNN`, a
    :class:`~streamrnn.ModelBank` or an anomaly detector before it is set: a file that passes its
    CRC checks but was edited must not make a kernel read outside an array."""
    from .anomaly import PredictiveDetector
    from .bank import ModelBank
    from .features import RunningScaler
    from .kernels import layout as L
    from .learner import OnlineRNN
    from .network import NetworkShape, build_layout, counters_problem
    from .shared_bank import SharedWeightsBank

    if issubclass(cls, PredictiveDetector):
        _check_detector_state(cls, state)
        return
    if issubclass(cls, RunningScaler):
        stats = state.get("stats") if isinstance(state, dict) else None
        _need(type(stats) is np.ndarray and stats.dtype == np.float64 and stats.ndim == 2 and stats.shape[0] == 3,
              "the RunningScaler's statistics must be a float64 array of 3 rows")
        if "glitch" in state:  # the glitch guard (states saved before it have none)
            beyond, glitch, out = state.get("beyond"), state.get("glitch"), state.get("glitch_out")
            _need(type(beyond) is np.ndarray and beyond.dtype == np.float64 and beyond.shape == (stats.shape[1],),
                  "the RunningScaler's glitch counts must be a float64 array of one value per column")
            _need(type(glitch) is float and math.isfinite(glitch) and glitch >= 0,
                  "the RunningScaler's glitch bound must be a finite float >= 0")
            _need(type(out) is float and (out == 0.0 or math.isnan(out)),
                  "the RunningScaler's glitch value must be 0.0 or NaN")
        return
    if not issubclass(cls, OnlineRNN | ModelBank):
        return
    name = cls.__qualname__
    _need(isinstance(state, dict), f"the state of the {name} must be a dictionary")

    def array(key, ndim, dtype=None):
        a = state.get(key)
        _need(type(a) is np.ndarray and a.ndim == ndim and (dtype is None or a.dtype == dtype),
              f"the {name}'s {key} is missing or malformed")
        return a

    if issubclass(cls, OnlineRNN):
        shape = state.get("_shape")
        _need(type(shape) is NetworkShape, f"the {name}'s shape is not a NetworkShape")
        lay = build_layout(shape)
        dtype = state.get("_np_dtype")
        _need(dtype in (np.float32, np.float64), f"the {name}'s dtype must be float32 or float64, got {dtype!r}")
        _need(np.array_equal(array("_lay", 1, np.int64), lay), f"the {name}'s layout does not match its shape")
        _need(array("_buf", 1, dtype).shape == (lay[L.L_PERSIST],), f"the {name}'s buffer does not match its layout")
        _need(array("_ctr", 1, np.int64).shape == (L.N_CTR,), f"the {name}'s counters do not match its layout")
        problem = counters_problem(lay, state["_ctr"])
        _need(problem is None, f"the {name}'s {problem}")
        _need(
            state.get("_in_shape") == (shape.input_size,) and state.get("_out_shape") == (shape.output_size,),
            f"the {name}'s input and output shapes do not match its layout",
        )
    else:
        config = state.get("config")
        _need(isinstance(config, dict) and all(type(k) is str for k in config), f"the {name}'s config is malformed")
        template = OnlineRNN(**config, seed=0)
        lay = template._lay
        _need(np.array_equal(array("_lay", 1, np.int64), lay), f"the {name}'s layout does not match its configuration")
        if issubclass(cls, SharedWeightsBank):
            fresh = SharedWeightsBank(capacity=1, **config)
            _need((state.get("_region"), state.get("_stride"), state.get("_origin"))
                  == (fresh._region, fresh._stride, fresh._origin), f"the {name}'s regions do not match its layout")
            _need(array("_updates", 1, np.int64).shape == (1,), f"the {name}'s update count is malformed")
            n = array("_ctr", 2, np.int64).shape[0]
            _need(array("_ctr", 2, np.int64).shape[1] == L.N_CTR, f"the {name}'s counters do not match its layout")
            buf = array("_buf", 1, template._np_dtype)
            key_of = state.get("_key_of")
            _need(isinstance(key_of, list) and buf.shape[0] == lay[L.L_PERSIST] + len(key_of) * fresh._stride,
                  f"the {name}'s buffer does not match its layout and keys")
        else:
            buf = array("_buf", 2, template._np_dtype)
            n = buf.shape[0]
            _need(buf.shape[1] == lay[L.L_PERSIST], f"the {name}'s buffers do not match its layout")
        _need(array("_ctr", 2, np.int64).shape == (n, L.N_CTR), f"the {name}'s counters do not match its buffers")
        problem = counters_problem(lay, state["_ctr"])
        _need(problem is None, f"the {name}'s {problem}")
        _need(array("_last_seen", 1, np.int64).shape == (n,), f"the {name}'s idle counts do not match its buffers")
        _need(
            (state.get("_input_size"), state.get("_output_size")) == (lay[L.L_INPUT], lay[L.L_OUTPUT])
            and state.get("_dtype") == template._np_dtype,
            f"the {name}'s sizes or dtype do not match its configuration",
        )
        slot_of, free, key_of = state.get("_slot_of"), state.get("_free"), state.get("_key_of")
        _need(isinstance(slot_of, dict) and isinstance(free, list) and isinstance(key_of, list)
              and len(key_of) <= n, f"the {name}'s keys are malformed")
        slots = [*slot_of.values(), *free]
        _need(
            all(type(s) is int and 0 <= s < len(key_of) for s in slots), f"the {name}'s slots do not match its buffers"
        )


# --------------------------------------------------------------------- files


def _version() -> str:
    from . import __version__

    return __version__


def _describe(target) -> str:
    if isinstance(target, str | bytes | os.PathLike):
        return os.fsdecode(target)
    return getattr(target, "name", None) or f"<{type(target).__name__}>"


def _write(f, obj, metadata, compress: bool) -> None:
    encoder = _Encoder()
    root = encoder.encode(obj, type(obj).__qualname__)
    meta = {
        "format": "streamrnn",
        "format_version": FORMAT_VERSION,
        "streamrnn_version": _version(),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "class": root["$obj"] if isinstance(root, dict) and "$obj" in root else None,
        "metadata": metadata,
        "arrays": [f"a{i}" for i in range(len(encoder.arrays))],
        "root": root,
    }
    text = json.dumps(meta, allow_nan=False, separators=(",", ":"))
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(f, "w", allowZip64=True) as zf:
        info = zipfile.ZipInfo(META, date_time=_ZIP_DATE)
        info.compress_type = method
        zf.writestr(info, text.encode("utf-8"))
        for name, a in zip(meta["arrays"], encoder.arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = method
            with zf.open(info, "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, a, allow_pickle=False)


def save(model, path, *, metadata: dict | None = None, compress: bool = False) -> None:
    """Save a model (any streamrnn estimator, or a River object that holds
    them) to a file that :func:`load` reads back.

    The file is written to a temporary file beside ``path`` and then moved
    over it, so an interrupted save never leaves a partial file under
    ``path``.

    Parameters
    ----------
    model
        The model; saving does not change it.
    path
        A ``str`` or ``pathlib.Path`` (``.npz`` is a good suffix), or a
        binary file object open for writing (written in place).
    metadata
        JSON data stored with the model (see :func:`info`).
    compress
        Deflate the entries (smaller, slower).

    Raises
    ------
    TypeError
        If the model holds something the format cannot store (a function,
        an object of a class outside the allow-list, ...), naming where.
    """
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata must be plain JSON data (dicts, lists, strings, finite numbers): {e}") from None
    if hasattr(path, "write") and not isinstance(path, str | bytes | os.PathLike):
        data = io.BytesIO()
        _write(data, model, metadata, compress)
        path.write(data.getvalue())
        return
    path = os.fsdecode(path)
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, model, metadata, compress)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _open(path):
    """The npz, its meta and its name for errors, with the format checked."""
    where = _describe(path)
    if hasattr(path, "read") and not isinstance(path, str | bytes | os.PathLike):
        data = path.read()
        if not isinstance(data, bytes):
            raise TypeError("a file object given to load must be open in binary mode")
        source = io.BytesIO(data)
    else:
        source = os.fspath(path)
    if isinstance(source, io.BytesIO):
        head = source.getvalue()[:4]
    else:
        with open(source, "rb") as f:  # a missing or unreadable file raises OSError as usual
            head = f.read(4)
    if not head:
        raise FormatError(where, "the file is empty")
    if head not in (_ZIP_MAGIC, _EMPTY_ZIP_MAGIC):
        raise FormatError(where, "not a streamrnn model file (not a zip archive)")
    try:
        npz = np.load(source, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):  # pragma: no cover - the magic says zip
            raise FormatError(where, "not a streamrnn model file")
    except FormatError:
        raise
    except Exception as e:
        raise FormatError(where, f"not a readable streamrnn model file, damaged or truncated ({_cause(e)})") from e
    return npz, where


def _cause(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _read_meta(npz, where) -> dict:
    try:
        bad = npz.zip.testzip()  # reads every entry and checks its CRC-32
    except Exception as e:
        raise FormatError(where, f"the file is damaged or truncated ({_cause(e)})") from e
    if bad is not None:
        raise FormatError(where, f"the file is damaged: entry {bad!r} fails its CRC check")
    names = npz.zip.namelist()
    if META not in names:
        raise FormatError(where, f"not a streamrnn model file (no {META})")
    try:
        meta = json.loads(npz.zip.read(META).decode("utf-8"), object_pairs_hook=_no_duplicates,
                          parse_constant=_no_constant)
    except Exception as e:
        raise FormatError(where, f"{META} is not valid JSON ({_cause(e)})") from e
    if not isinstance(meta, dict) or meta.get("format") != "streamrnn":
        raise FormatError(where, f"not a streamrnn model file ({META} does not say format 'streamrnn')")
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise FormatError(where, f"invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise UnsupportedVersionError(
            where,
            f"written in format version {version} (streamrnn {meta.get('streamrnn_version')}); this streamrnn "
            f"({_version()}) reads format versions up to {FORMAT_VERSION}: upgrade streamrnn to load it",
        )
    arrays = meta.get("arrays")
    if type(arrays) is not list or not all(type(a) is str and a[:1] == "a" and a[1:].isdigit() for a in arrays):
        raise FormatError(where, "invalid list of arrays in the metadata")
    expected = {META, *(f"{a}.npy" for a in arrays)}
    if set(names) != expected or len(names) != len(expected):
        extra, missing = sorted(set(names) - expected), sorted(expected - set(names))
        raise FormatError(where, f"entries do not match the metadata: missing {missing}, unexpected {extra}")
    # format upgrades: none yet (version 1 is the first); an upgrade of
    # version n would turn the meta of version n into that of version n + 1 here
    return meta


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def info(path) -> dict:
    """The header of a saved model without loading it: ``format_version``,
    ``streamrnn_version``, ``class`` (``"module:QualName"``), ``metadata``
    (as given to :func:`save`) and the versions of numpy and Python that
    wrote it.

    Raises
    ------
    FormatError
        If the file is damaged or not a streamrnn model.
    """
    npz, where = _open(path)
    with npz:
        meta = _read_meta(npz, where)
    return {k: v for k, v in meta.items() if k not in ("root", "arrays", "format")}


def load(path):
    """Load a model saved by :func:`save`, in any format version up to
    :data:`FORMAT_VERSION`.

    Parameters
    ----------
    path
        A ``str`` or ``pathlib.Path``, or a binary file object.

    Raises
    ------
    FormatError
        If the file is damaged, truncated, empty, not a streamrnn model, or
        inconsistent; :class:`UnsupportedVersionError` if it was written in
        a newer format version; :class:`ForbiddenClassError` if it names a
        class outside the allow-list. Nothing is returned half-built.
    """
    npz, where = _open(path)
    with npz:
        meta = _read_meta(npz, where)
        arrays = _LazyArrays(npz, meta["arrays"])
        decoder = _Decoder(arrays)
        try:
            model = decoder.decode(meta.get("root"))
        except _Invalid as e:
            raise e.kind(where, str(e)) from None
        except Exception as e:
            raise FormatError(where, f"the model cannot be rebuilt ({_cause(e)})") from e
    return model


class _LazyArrays:
    """The array entries by name, each read (with ``allow_pickle=False``) once."""

    def __init__(self, npz, names):
        self._npz = npz
        self._names = set(names)
        self._read: dict = {}

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self._names

    def __getitem__(self, name) -> np.ndarray:
        a = self._read.get(name)
        if a is None:
            a = self._read[name] = self._npz[name]
        return a


def _check_detector_state(cls: type, state) -> None:
    """The score statistics and, for the reconstruction detector, the window
    of an anomaly detector: sized as the kernels of
    :mod:`streamrnn.kernels.scoring` expect (its network is an
    :class:`~streamrnn.OnlineRNN`, checked on its own)."""
    from .anomaly import ReconstructionDetector
    from .checks import is_integer
    from .kernels import scoring as S
    from .learner import OnlineRNN

    name = cls.__qualname__
    _need(isinstance(state, dict), f"the state of the {name} must be a dictionary")
    k, names = state.get("short_window"), getattr(state.get("_features"), "names", None)
    _need(is_integer(k) and k >= 1 and isinstance(names, list),
          f"the {name}'s window or features are malformed")
    F = len(names)
    st = state.get("_st")
    # (F fewer numbers: saved before the counts of calm values were kept)
    _need(type(st) is np.ndarray and st.dtype == np.float64 and st.ndim == 1
          and st.shape[0] in (S.state_size(k, F), S.state_size(k, F) - F),
          f"the {name}'s score statistics do not match its window and features")
    _need(st[S.S_WINDOW] == k and 0 <= st[S.S_POS] < k and st[S.S_POS] == int(st[S.S_POS]),
          f"the {name}'s score statistics are inconsistent")
    net = state.get("_net")
    _need(isinstance(net, OnlineRNN) and net._shape.input_size >= F and net._shape.output_size >= F,
          f"the {name}'s network does not match its features")
    if issubclass(cls, ReconstructionDetector):
        window, recent = state.get("window"), state.get("_recent_z")
        _need(is_integer(window) and window >= 1
              and type(recent) is np.ndarray and recent.dtype == np.float64 and recent.shape == (window, F)
              and net._shape.output_size >= window * F,
              f"the {name}'s window does not match its features and network")
        stats = getattr(state.get("_scaler"), "stats", None)
        _need(type(stats) is np.ndarray and stats.dtype == np.float64 and stats.shape == (3, F),
              f"the {name}'s scaler does not match its features")
