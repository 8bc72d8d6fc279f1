"""Reading a Python dict of numbers from compiled code, without the
interpreter: the address of each key and, where a value is exactly a
``float``, a NumPy float64, an ``int``, a ``bool`` or None, its value as a
float (None: NaN).

An estimator's row is a dict of feature values; turning it into floats in
Python (a look-up of its key order, a type check per value, a ``struct``
call) costs more than the network's step it feeds. Here a kernel walks the
dict with CPython's ``PyDict_Next`` and reads each float's value where the
object keeps it (an int's by ``PyLong_AsDouble``, as ``float`` does).
Kernels that call these functions must hold the GIL (no ``nogil``) and get
the dict's address (``id(x)``) from a caller that keeps the dict alive;
they read nothing but the dict's entries and never run Python code, so the
dict cannot change meanwhile.

Where a float keeps its value and its type is taken from the running
interpreter (:data:`OBJECTS`), and :func:`layout_holds` checks them on
known dicts: a caller uses these functions only where it holds.
"""

import math
import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .. import config

_JIT = dict(cache=config.CACHE, error_model="numpy")  # (no nogil: these read Python objects)

#: The address of the type ``float``: an object is exactly a float where
#: its type field holds it.
FLOAT_TYPE = id(float)
#: The byte offset of an object's type field: the last of the object header.
TYPE_AT = object.__basicsize__ - 8
#: The byte offset of a float's value: the field after the object header.
VALUE_AT = float.__basicsize__ - 8

#: ``PyDict_Next``'s state in an int64 array, from an offset: the
#: position, then the addresses of the key and the value it gave last.
D_POS, D_KEY, D_VALUE = range(3)
#: The int64s that describe this interpreter's objects to :func:`read_floats`,
#: in the order of the ``O_`` offsets: the offsets of an object's type and of
#: a float's value, the addresses of the types float, NumPy's float64 (0
#: where it does not keep its value as float does), int and bool, and of
#: True and None.
OBJECTS = (TYPE_AT, VALUE_AT, FLOAT_TYPE, id(np.float64) if np.float64.__basicsize__ == float.__basicsize__ else 0,
           id(int), id(bool), id(True), id(None))
O_TYPE_AT, O_VALUE_AT, O_FLOAT, O_FLOAT64, O_INT, O_BOOL, O_TRUE, O_NONE = range(8)


@intrinsic
def dict_next(typingctx, address, state, at):
    """``PyDict_Next`` on the dict at ``address``: the next entry's key and
    value addresses into ``state[at + D_KEY]`` and ``state[at + D_VALUE]``
    (the position in ``state[at + D_POS]``, 0 to start); whether there was one."""
    if not (isinstance(address, types.Integer) and isinstance(state, types.Array) and isinstance(at, types.Integer)
            and state.dtype == types.int64 and state.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        address_value, array_value, at_value = args
        i8p = ir.IntType(8).as_pointer()
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(ir.IntType(32), [i8p, i64.as_pointer(), i8p.as_pointer(), i8p.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "PyDict_Next")
        data = context.make_array(signature.args[1])(context, builder, value=array_value).data
        data = builder.gep(data, [context.cast(builder, at_value, signature.args[2], types.int64)])
        pos = builder.gep(data, [ir.Constant(i64, D_POS)])
        key = builder.bitcast(builder.gep(data, [ir.Constant(i64, D_KEY)]), i8p.as_pointer())
        value = builder.bitcast(builder.gep(data, [ir.Constant(i64, D_VALUE)]), i8p.as_pointer())
        found = builder.call(fn, [builder.inttoptr(address_value, i8p), pos, key, value])
        return builder.icmp_signed("!=", found, ir.Constant(ir.IntType(32), 0))

    return types.boolean(address, state, at), codegen


@intrinsic
def long_as_double(typingctx, address):
    """``PyLong_AsDouble`` of the int at ``address`` (-1.0 with an error set
    where it is beyond the floats)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.DoubleType(), [i8p]),
                                            "PyLong_AsDouble")
        return builder.call(fn, [builder.inttoptr(args[0], i8p)])

    return types.float64(address), codegen


@intrinsic
def clear_error(typingctx):
    """``PyErr_Clear``: no Python error set any more."""

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "PyErr_Clear")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def load_int64(typingctx, address):
    """The int64 at ``address``."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.load(builder.inttoptr(args[0], ir.IntType(64).as_pointer()))

    return types.int64(address), codegen


@intrinsic
def load_float64(typingctx, address):
    """The float64 at ``address``."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.load(builder.inttoptr(args[0], ir.DoubleType().as_pointer()))

    return types.float64(address), codegen


@njit(**_JIT)
def read_floats(address, plan, keys_at, n, state_at, objects_at, out, at):
    """The values of the dict at ``address`` into ``out[at:at + n]``, in its
    order, where its keys are the ``n`` objects of the addresses
    ``plan[keys_at:keys_at + n]``, in that order and none more, and each value
    is exactly a float, a NumPy float64, a bool, an int within the floats
    (other than -1) or None (NaN); whether they were (else ``out`` may hold
    some of them). ``plan[state_at:state_at + 3]`` is ``PyDict_Next``'s
    state and ``plan[objects_at:]`` holds :data:`OBJECTS`."""
    o = objects_at
    type_at, value_at = plan[o + O_TYPE_AT], plan[o + O_VALUE_AT]
    plan[state_at + D_POS] = 0
    i = 0
    while dict_next(address, plan, state_at):
        if i == n or plan[state_at + D_KEY] != plan[keys_at + i]:
            return False
        value = plan[state_at + D_VALUE]
        kind = load_int64(value + type_at)
        if kind == plan[o + O_FLOAT] or kind == plan[o + O_FLOAT64]:
            v = load_float64(value + value_at)
        elif value == plan[o + O_NONE]:
            v = math.nan
        elif kind == plan[o + O_BOOL]:
            v = 1.0 if value == plan[o + O_TRUE] else 0.0
        elif kind == plan[o + O_INT]:
            v = long_as_double(value)
            if v == -1.0:  # (or beyond the floats, an error set: the caller's path says so)
                clear_error()
                return False
        else:
            return False
        out[at + i] = v
        i += 1
    return i == n


def layout_holds() -> bool:
    """Whether :func:`read_floats` reads this interpreter's dicts and floats
    as Python does (checked on dicts of known keys and values): on a 64-bit
    CPython whose GIL is on (a free-threaded build's dicts change under
    other threads)."""
    if sys.maxsize != 2**63 - 1 or not getattr(sys, "_is_gil_enabled", lambda: True)():
        return False
    names = ("a", "b", "c")
    x = {"a": 1.5, "b": -0.0, "c": math.pi}
    plan = np.array([*(id(k) for k in names), 0, 0, 0, *OBJECTS], dtype=np.int64)
    out = np.zeros(4)

    def reads(d):
        return read_floats(id(d), plan, 0, 3, 3, 6, out, 1)

    for y in (x, {"a": np.float64(0.1), "b": True, "c": 2**60 + 1}, {"a": None, "b": False, "c": -(10**20)}):
        expected = np.array([math.nan if v is None else float(v) for v in y.values()])
        if not reads(y) or out[1:].tobytes() != expected.tobytes():
            return False
    # another type, key order or size is refused
    return not (reads({"a": 1.5, "b": np.float32(1.0), "c": 2.0}) or reads({"a": 1.5, "c": 2.0, "b": 1.0})
                or reads({"a": 1.5, "b": 2.0}) or reads({**x, "d": 0.0}) or reads({}) or reads({**x, "b": 10**400})
                or reads({**x, "b": -1}) or reads({**x, "c": "1.0"}))
