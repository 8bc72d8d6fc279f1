"""Saving and loading models in a safe, versioned file format.

:func:`save` writes any streamrnn estimator (and River pipelines or other
River objects that contain them) to a file; :func:`load` rebuilds it. A model
saved mid-stream resumes exactly where it was: its predictions and its
learning after :func:`load` are bit-identical to those of the model that was
never saved.

The format
----------
A file is a zip archive (an ``.npz``): one ``.npy`` entry per numpy array of
the model's state (``a0.npy``, ``a1.npy``, ...), and ``__meta__.json``, a
UTF-8 JSON document::

    {"format": "streamrnn", "format_version": 3, "streamrnn_version": "0.1.0",
     "numpy_version": "...", "python_version": "...",
     "class": "streamrnn.forecasting:LSTMForecaster",
     "metadata": {...},            # the caller's JSON metadata, if any
     "arrays": ["a0", "a1", ...],  # the array entries
     "root": <the object, encoded>}

An object of a declared class is ``{"$obj": "module:QualName", "$id": n,
"state": {"$dict": [[name, value], ...]}}``: its attributes, those pickle
sees (its ``__getstate__``: an :class:`~streamrnn.OnlineRNN` without its
scratch buffer, a :class:`~streamrnn.ModelBank` with only the slots in use
and its capacity). Each value is a JSON ``null``, boolean, integer, finite
float or string, or an object with one tag: ``{"$array": "a3"}`` (an array
entry), another declared object, ``{"$type": ...}`` (a declared class or a
builtin type: a defaultdict's factory), ``{"$list": [...]}``, ``{"$tuple":
[...]}``, ``{"$dict": [[key, value], ...]}`` (keys of any type: class
labels may be integers or booleans), ``{"$deque": [...], "maxlen": ...}``,
``$odict``, ``$counter``, ``$defaultdict``, ``$set``, ``$frozenset``,
``{"$float": "nan"}``, ``$complex``, ``$bytes``, ``$npscalar`` (the scalar's
bytes, in hex, and its dtype), ``$dtype``, ``$nptype``, ``$objarray``,
``$date``, ``$datetime``, ``$time``, ``$timedelta``, ``$timestamp``
(pandas), with time zones ``$timezone`` and ``$zoneinfo``. Mutable
containers and objects carry an ``"$id"``; a later ``{"$ref": n}`` is the
same object again (River pipelines share their steps between several
attributes). A loaded model saved again gives the same bytes: entries carry
fixed times. Format 1 is the same encoding; its files may name any class of
streamrnn's and River's modules, and are loaded under the rules of format 2.

Safety
------
:func:`load` takes files from anywhere: it never unpickles and never runs
code from the file, and whatever the file holds, it returns a model whose
kernels and methods see only values they accept, or raises
:class:`FormatError`.

* **Declared classes only.** :mod:`streamrnn.persist_schema` lists each
  class the format builds, exactly (a subclass is another class; there is no
  declaration by package), with the attribute names its state may hold:
  streamrnn's estimators, forecasters and their combination, smoothing and
  seasonal parts, detectors, keyed wrappers, banks, networks, feature spaces
  and scalers; from River, ``preprocessing.StandardScaler`` and
  ``MinMaxScaler``, ``compose.Pipeline`` and ``TransformerUnion``,
  ``anomaly.QuantileFilter`` and ``ThresholdFilter``, and the statistics
  they hold (``stats.Min``, ``Max``, ``Quantile`` and its fixed-size Rust
  state). A class name in a file is looked up there, never imported; any
  other raises :class:`ForbiddenClassError`, and :func:`save` refuses to
  write one (``TypeError``: use pickle for files you trust). Objects are
  built by ``cls.__new__`` and their checked state (the class's
  ``__setstate__`` or its ``__dict__``).
* **Checked state.** Before an object is built its state passes the check
  of its class (:mod:`streamrnn.persist_checks`), against what the code
  derives from validated arguments, never against what the file says about
  itself: a network's sizes are positive integers within
  :data:`~streamrnn.persist_checks.SIZE_CAPS`, its cell, loss, optimizer and
  dtype known ones; its layout and buffer sizes are those derived from them;
  its hyperparameters those its constructor stores for its saved arguments
  (which the constructor checks: a finite positive ``lr``, betas in [0, 1),
  ...); its weights, optimizer moments and hidden state finite, its second
  moments >= 0; its counters within the ranges the kernels index by. A
  bank's configuration, seed and idle limit pass its constructor, each row
  the checks of a network, its keys match its slots. An estimator's
  arguments equal its network's and pass its constructor; its features,
  scalers, classes and network agree in size; every attribute a fresh
  instance has is present (or has a class-level default). Arrays that a
  kernel indexes belong to one object only.
* **Bounded allocation.** Sizes come from the archive's central directory
  (entries, declared uncompressed sizes) and each array's ``.npy`` header
  (its shape times its item size must be the size its entry declares), and
  are checked before anything is read or decompressed: together at most
  ``max_bytes`` (:data:`DEFAULT_MAX_BYTES`, 4 GiB, by default), as is any
  buffer derived from a checked shape; no entry is decompressed beyond its
  declared size (:mod:`streamrnn.persist_archive`). The JSON document is at
  most 64 MiB, and its values (counted before parsing, 64 bytes each) at
  most half of ``max_bytes``.

A damaged file (a flipped byte, a truncated or empty file: zip CRC-32 checks
cover every entry read), a file that is not a streamrnn model, and a file
written by a newer format version all raise :class:`FormatError` (a
``ValueError``) naming the path and the problem; nothing half-built is
returned. ``tests/test_persistence_fuzz.py`` mutates valid files (every
JSON value, array shapes, dtypes and values, bytes) and checks this.

:func:`save` writes a temporary file beside the target (named after the
target and the writing process) and moves it over the target, so an
interrupted save never leaves a partial file under the target's name; the
next save to the same path removes the temporaries whose writer is gone.

Files written in every earlier format version keep loading (the files in
``tests/fixtures`` check it): a change of the format raises
:data:`FORMAT_VERSION`, and a change of an estimator's state must keep its
earlier state loading (a class-level default for a new attribute, or a
``__setstate__`` that upgrades the old state) and update its declaration.

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
import io
import json
import math
import os
import platform
import sys
import zipfile
import zoneinfo

import numpy as np
import pandas as pd

from . import persist_archive as archive
from .persist_checks import Invalid, Limits, need
from .persist_schema import class_path, registry
from .persist_upgrade import upgrade_state

__all__ = ["DEFAULT_MAX_BYTES", "FORMAT_VERSION", "FormatError", "ForbiddenClassError", "UnsupportedVersionError",
           "info", "load", "save"]

#: Version of the file format written by :func:`save`; :func:`load` reads
#: this one and every earlier one.
FORMAT_VERSION = 3

#: What :func:`load` may allocate by default (see its ``max_bytes``): 4 GiB.
DEFAULT_MAX_BYTES = 4 << 30

META = "__meta__.json"
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry times: equal models give equal files

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
    """A file naming a class the format does not declare (see :mod:`streamrnn.persist_schema`)."""


_Invalid = Invalid
_need = need

_TRUSTED_ONLY = "use pickle for files you trust"


# ------------------------------------------------------------------ classes


def _resolve(path, types: bool = False) -> type:
    """The declared class named ``"module:QualName"`` (with ``types``, also
    the builtin types a defaultdict may take as its factory); raises
    ``_Invalid``. The name is looked up, never imported."""
    if not isinstance(path, str):
        raise _Invalid(f"a class name must be a string, got {str(path)[:80]!r}", ForbiddenClassError)
    if types and path in _BUILTIN_TYPES:
        return _BUILTIN_TYPES[path]
    schema = registry().get(path)
    if schema is None:
        raise _Invalid(
            f"class {path[:200]!r} is not one the streamrnn format declares (streamrnn's estimators and the River "
            f"objects listed in streamrnn.persistence); {_TRUSTED_ONLY}",
            ForbiddenClassError,
        )
    return schema.cls


def _class_path(cls: type, where: str, types: bool = False) -> str:
    """``"module:QualName"`` of a declared class; raises ``TypeError``."""
    if types:
        for path, t in _BUILTIN_TYPES.items():
            if cls is t:
                return path
    path = class_path(cls)
    schema = registry().get(path)
    if schema is not None and schema.cls is cls:
        return path
    raise TypeError(
        f"cannot save {where}: {cls.__module__}.{cls.__qualname__} is not a class the streamrnn format declares "
        f"(streamrnn's estimators, River's StandardScaler, MinMaxScaler, Pipeline, TransformerUnion, "
        f"QuantileFilter, ThresholdFilter and the statistics they hold); {_TRUSTED_ONLY}"
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
            return {"$type": _class_path(v, where, types=True)}
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
        schema = registry()[path]
        if schema.state == "dict":
            unknown = sorted(set(state) - schema.attrs) if type(state) is dict else ["<not a dict>"]
            if unknown or listitems is not None or dictitems is not None:
                raise TypeError(f"cannot save {where}: {path} holds {unknown[:1] or 'items'}, which its declaration "
                                f"in the streamrnn format does not list; {_TRUSTED_ONLY}")
        elif type(state) is not bytes:
            raise TypeError(f"cannot save {where}: the state of {path} is not bytes")
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


def _short(v) -> str:
    """The start of a JSON value, for messages (a reprlib view: never the
    whole of a large value)."""
    import reprlib

    return reprlib.repr(v)[:80]


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
    def __init__(self, arrays, limits: Limits, version: int | None = None):
        self._arrays = arrays  # name -> array, read lazily
        self._memo: list = []
        self.limits = limits
        self.version = FORMAT_VERSION if version is None else version  # the file's format version

    def _register(self, node: dict, obj) -> None:
        if node.get("$id") != len(self._memo):
            raise _Invalid(f"object ids out of sequence at {_short(node)}")
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
        if t is not dict:
            raise _Invalid(f"unexpected JSON value {_short(v)}")
        tags = [k for k in v if k in _TAG_KEYS]
        if len(tags) != 1:
            raise _Invalid(f"expected one type tag in {_short(v)}")
        tag = tags[0]
        if not set(v) - {tag} <= _TAG_KEYS[tag]:
            raise _Invalid(f"unexpected keys in {_short(v)}")
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
            raw = v.get("items")
            _need(type(raw) is list and len(shape) <= 32 and all(n >= 0 for n in shape)
                  and math.prod(shape) == len(raw), "an object array's items do not match its shape")
            items = self._items(raw)
            a = np.empty(shape, dtype=object)
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
            return _resolve(x, types=True)
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
        schema = registry()[v["$obj"]]
        _need("list" not in v and "dict" not in v, f"{v['$obj']} takes no list or dictionary items")
        obj = cls.__new__(cls)
        self._register(v, obj)
        # decode everything first (in the order it was written), check, then build as pickle does
        state = self._state(v["state"]) if "state" in v else None
        state = upgrade_state(v["$obj"], state, self.version)  # model buffers of earlier formats
        if schema.state == "bytes":
            _need(type(state) is bytes, f"the state of {v['$obj']} must be bytes")
        else:
            _need(type(state) is dict and all(type(k) is str for k in state),
                  f"the state of {v['$obj']} must map attribute names")
            unknown = sorted(set(state) - schema.attrs)
            if unknown:
                raise _Invalid(f"{v['$obj']} has no attribute {unknown[0][:80]!r} in the format's declaration")
            missing = sorted(schema.attrs - set(state)) if schema.complete else ()
            if missing:
                raise _Invalid(f"the state of {v['$obj']} lacks {missing[0]!r}")
        if schema.check is not None:
            schema.check(cls, state, self.limits)
        _set_state(obj, state)
        return obj

    def _state(self, node):
        """An object's state: its ``__dict__`` is written as a plain ``$dict``
        (no ``$id``: a fresh dict that nothing else refers to)."""
        if type(node) is dict and set(node) == {"$dict"}:
            return dict(self._pairs(node["$dict"]))
        return self.decode(node)


def _set_state(obj, state) -> None:
    """Pickle's BUILD: the class's ``__setstate__``, or an update of the
    instance ``__dict__`` (the state is checked already)."""
    setstate = getattr(type(obj), "__setstate__", None)
    if setstate is not None:
        setstate(obj, state)
        return
    obj.__dict__.update({sys.intern(k): value for k, value in state.items()})


def _check_state(cls: type, state, limits: Limits | None = None) -> None:
    """The check of a declared class's state (see :mod:`streamrnn.persist_checks`)."""
    schema = registry()[class_path(cls)]
    if schema.check is not None:
        schema.check(cls, state, limits or Limits(DEFAULT_MAX_BYTES))


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
        an object of a class the format does not declare, ...), naming
        where.
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
    archive.clean_stale_temporaries(*os.path.split(os.path.abspath(path)))
    archive.write_whole(path, lambda f: _write(f, model, metadata, compress))


def _open(path, max_bytes: int):
    """The zip archive, its entries (checked against the caps) and the
    file's name for errors."""
    where = _describe(path)
    if hasattr(path, "read") and not isinstance(path, str | bytes | os.PathLike):
        data = path.read()
        if not isinstance(data, bytes):
            raise TypeError("a file object given to load must be open in binary mode")
        source = io.BytesIO(data)
        head = data[:4]
    else:
        source = os.fspath(path)
        with open(source, "rb") as f:  # a missing or unreadable file raises OSError as usual
            head = f.read(4)
    if not head:
        raise FormatError(where, "the file is empty")
    if head not in (_ZIP_MAGIC, _EMPTY_ZIP_MAGIC):
        raise FormatError(where, "not a streamrnn model file (not a zip archive)")
    try:
        zf = zipfile.ZipFile(source)
    except Exception as e:
        raise FormatError(where, f"not a readable streamrnn model file, damaged or truncated ({_cause(e)})") from e
    try:
        names = archive.entries(zf, max_bytes)
    except Invalid as e:
        zf.close()
        raise FormatError(where, str(e)) from None
    return zf, names, where


def _cause(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _read_meta(zf, names, where, max_bytes: int) -> dict:
    if META not in names:
        raise FormatError(where, f"not a streamrnn model file (no {META})")
    try:
        text = archive.read_bytes(zf, names[META], min(max_bytes, archive.MAX_META_BYTES))
        archive.check_json_size(text, max_bytes)
    except Invalid as e:
        raise FormatError(where, str(e)) from None
    except Exception as e:
        raise FormatError(where, f"the file is damaged or truncated ({_cause(e)})") from e
    try:
        meta = json.loads(text.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
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
    if set(names) != expected or len(arrays) + 1 != len(expected):
        extra, missing = sorted(set(names) - expected), sorted(expected - set(names))
        raise FormatError(where, f"entries do not match the metadata: missing {missing}, unexpected {extra}")
    # format 1 -> 2: the same encoding; version 2 files hold only declared classes and
    # banks without their unused capacity, which version 1 files are checked for on load.
    # 2 -> 3: the same encoding; model buffers with a compact TBPTT window and one
    # moment region for SGD and RMSprop, upgraded on load (streamrnn.persist_upgrade)
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


def info(path, *, max_bytes: int | None = None) -> dict:
    """The header of a saved model without loading it: ``format_version``,
    ``streamrnn_version``, ``class`` (``"module:QualName"``), ``metadata``
    (as given to :func:`save`) and the versions of numpy and Python that
    wrote it.

    Raises
    ------
    FormatError
        If the file is damaged or not a streamrnn model.
    """
    max_bytes = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    zf, names, where = _open(path, max_bytes)
    with zf:
        meta = _read_meta(zf, names, where, max_bytes)
    return {k: v for k, v in meta.items() if k not in ("root", "arrays", "format")}


def load(path, *, max_bytes: int | None = None):
    """Load a model saved by :func:`save`, in any format version up to
    :data:`FORMAT_VERSION`.

    Parameters
    ----------
    path
        A ``str`` or ``pathlib.Path``, or a binary file object.
    max_bytes
        The most bytes the file's entries may declare uncompressed, together,
        and the most any buffer derived from them may take (default
        :data:`DEFAULT_MAX_BYTES`, 4 GiB); checked before anything is read
        or decompressed.

    Raises
    ------
    FormatError
        If the file is damaged, truncated, empty, not a streamrnn model,
        beyond ``max_bytes``, or holds values its classes do not accept;
        :class:`UnsupportedVersionError` if it was written in a newer format
        version; :class:`ForbiddenClassError` if it names a class the format
        does not declare. Nothing is returned half-built.
    """
    max_bytes = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    zf, names, where = _open(path, max_bytes)
    with zf:
        meta = _read_meta(zf, names, where, max_bytes)
        arrays = _LazyArrays(zf, names, meta["arrays"])
        decoder = _Decoder(arrays, Limits(max_bytes), meta["format_version"])
        try:
            _need("root" in meta, "the file holds no model")
            model = decoder.decode(meta["root"])
            # the header names the class of what the file holds (info reports it)
            declared = type(model) is not type and registry().get(class_path(type(model)))
            _need(meta.get("class") == (class_path(type(model)) if declared else None),
                  "the class in the header does not match the model")
        except _Invalid as e:
            raise (e.kind or FormatError)(where, str(e)) from None
        except RecursionError:
            raise FormatError(where, "the model is nested too deeply") from None
        except Exception as e:
            raise FormatError(where, f"the model cannot be rebuilt ({_cause(e)})") from e
    return model


class _LazyArrays:
    """The array entries by name, each read (checked, without pickles) once."""

    def __init__(self, zf, entries, names):
        self._zf = zf
        self._entries = entries
        self._names = set(names)
        self._read: dict = {}

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self._names

    def __getitem__(self, name) -> np.ndarray:
        a = self._read.get(name)
        if a is None:
            a = self._read[name] = archive.read_array(self._zf, self._entries[f"{name}.npy"])
        return a
