"""NumPy's own float64 exponential, called from compiled code.

NumPy's ``exp`` of float64 arrays is its own SIMD loop, which differs from
the C library's ``exp`` (and so from ``math.exp`` and Numba's ``np.exp``)
in the last bit on a few percent of arguments. A kernel whose results must
equal NumPy's bit for bit calls NumPy's loop itself: :func:`exp_loop` finds
its address in the ufunc (the public ``PyUFuncObject`` layout of
``numpy/ufuncobject.h``), :func:`exp_into` calls it on a contiguous float64
array in place, as ``np.exp(a, out=a)`` does, and :func:`loop_holds` checks
the result on arguments that tell the two apart; a caller uses the loop
only where it holds.

Floating-point warnings: NumPy reads the processor's flags after its own
calls; this call leaves them unread (an exponential of arguments at most 0,
as in a softmax, raises none but underflow, which NumPy ignores by default).
"""

import ctypes
import functools

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .. import config

_JIT = dict(cache=config.CACHE, nogil=True, error_model="numpy")


class _UFunc(ctypes.Structure):
    """The head of ``PyUFuncObject`` (``numpy/ufuncobject.h``)."""

    _fields_ = [("ob_refcnt", ctypes.c_ssize_t), ("ob_type", ctypes.c_void_p), ("nin", ctypes.c_int),
                ("nout", ctypes.c_int), ("nargs", ctypes.c_int), ("identity", ctypes.c_int),
                ("functions", ctypes.POINTER(ctypes.c_void_p)), ("data", ctypes.POINTER(ctypes.c_void_p)),
                ("ntypes", ctypes.c_int), ("reserved1", ctypes.c_int), ("name", ctypes.c_char_p)]


def exp_loop() -> tuple[int, int]:
    """The addresses of ``np.exp``'s float64 loop and of its data, (0, 0)
    where the ufunc does not have the layout of its header."""
    if ctypes.sizeof(ctypes.c_void_p) != 8 or object.__basicsize__ != 16:
        return 0, 0
    head = _UFunc.from_address(id(np.exp))
    loops = np.exp.types
    if (head.nin, head.nout, head.nargs, head.ntypes, head.name) != (1, 1, 2, len(loops), b"exp") \
            or "d->d" not in loops:
        return 0, 0
    i = loops.index("d->d")
    return int(head.functions[i] or 0), int(head.data[i] or 0)


@intrinsic
def _call_loop(typingctx, loop, data, array, n):
    """Call the unary ufunc loop at address ``loop`` (with ``data``) on the
    first ``n`` values of the contiguous ``array``, in place."""
    if not (isinstance(array, types.Array) and array.dtype == types.float64 and array.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        loop_value, data_value, array_value, n_value = args
        i8p, i64 = ir.IntType(8).as_pointer(), ir.IntType(64)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.as_pointer(), i64.as_pointer(), i64.as_pointer(), i8p])
        values = builder.bitcast(context.make_array(signature.args[2])(context, builder, value=array_value).data, i8p)
        pointers = cgutils.alloca_once(builder, i8p, size=2)
        builder.store(values, pointers)
        builder.store(values, builder.gep(pointers, [ir.Constant(i64, 1)]))
        dims = cgutils.alloca_once(builder, i64)
        builder.store(builder.sext(n_value, i64) if n_value.type.width < 64 else n_value, dims)
        steps = cgutils.alloca_once(builder, i64, size=2)
        builder.store(ir.Constant(i64, 8), steps)
        builder.store(ir.Constant(i64, 8), builder.gep(steps, [ir.Constant(i64, 1)]))
        fn = builder.inttoptr(loop_value, fnty.as_pointer())
        builder.call(fn, [pointers, dims, steps, builder.inttoptr(data_value, i8p)])
        return context.get_dummy_value()

    return types.void(loop, data, array, n), codegen


@njit(**_JIT)
def exp_into(loop, data, a, n):
    """``np.exp(a[:n], out=a[:n])`` by NumPy's loop at ``loop``, ``data``
    (from :func:`exp_loop`)."""
    _call_loop(loop, data, a, n)


def loop_holds(loop: int, data: int) -> bool:
    """Whether :func:`exp_into` with this loop gives ``np.exp``'s bits, on
    arguments where NumPy's exponential and the C library's differ, on
    special values and on every length up to 17 (the loop's vector tails)."""
    if loop == 0:
        return False
    rng = np.random.default_rng(0)
    args = [rng.uniform(-40.0, 0.0, 4096), -np.logspace(-12, 3, 512),
            np.array([0.0, -0.0, -np.inf, np.nan, -745.2, -708.4, -1e-300, 1e-300, 5e-324, 709.0])]
    args += [rng.uniform(-20.0, 0.0, n) for n in range(1, 18)]
    for x in args:
        got = x.copy()
        exp_into(loop, data, got, len(got))
        with np.errstate(all="ignore"):
            if got.tobytes() != np.exp(x).tobytes():
                return False
    return True


@functools.cache
def exp_loop_checked() -> tuple[int, int]:
    """:func:`exp_loop` where :func:`loop_holds` (checked once), else (0, 0)."""
    loop, data = exp_loop()
    return (loop, data) if loop_holds(loop, data) else (0, 0)
