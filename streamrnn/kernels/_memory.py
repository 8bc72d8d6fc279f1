"""What the CPU kernels need and Numba does not offer: an atomic
fetch-and-add on an int64 array element (threads claiming chunks of work
from one counter), a prefetch hint (a model's weights fetched while the
model before it computes), views that take no references and a copy
that compiles as one ``memcpy``."""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _element_pointer(context, builder, array_type, array, index):
    a = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, a, [index], wraparound=False)


@intrinsic
def fetch_add(typingctx, array, index, value):
    """``array[index] += value`` as one atomic (sequentially consistent)
    operation; returns the value before the addition. ``array`` is int64."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        return None
    sig = types.int64(array, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, value, "seq_cst")

    return sig, codegen


@intrinsic
def prefetch(typingctx, array, index):
    """Hint that the cache line holding ``array[index]`` (an index inside
    the array) will be read soon: fetched into the outer cache levels (L2),
    not L1, where it would evict the lines in use. Changes nothing."""
    if not isinstance(array, types.Array):
        return None
    sig = types.void(array, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def unowned(typingctx, array):
    """``array`` as a view without an owner: the views taken from it (each
    slice of a model's buffer) then count no references. Numba counts them
    with an atomic addition and subtraction on the owner's counter, a few
    dozen per forward step; in a bank both threads' views of the store share
    one owner, whose counter's cache line then moves between the cores at
    every one of them. Only for arrays that the caller keeps alive and that
    the kernel neither returns nor stores."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        view = context.make_array(signature.args[0])(context, builder, args[0])
        view.meminfo = cgutils.get_null_value(view.meminfo.type)
        view.parent = cgutils.get_null_value(view.parent.type)
        return view._getvalue()

    return array(array), codegen


@intrinsic
def copy_into(typingctx, dst, src):
    """``dst[:] = src[:len(dst)]`` for 1-D C-contiguous arrays of one dtype
    that do not overlap, as one ``llvm.memcpy``. The same values as a loop
    of assignments; where a loop over two views of one buffer has LLVM emit
    an overlap check, a vectorised body and its remainders at every call
    site (the copies were 13 % of the network kernels' compile time), this
    compiles to a call or a few moves. Numba's slice assignment checks for
    overlap at run time first (~40 ns for 128 floats). With bounds checking
    on, a source shorter than ``dst`` raises ``IndexError``."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.dtype == src.dtype
            and dst.ndim == 1 and src.ndim == 1 and dst.layout == "C" and src.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        to = context.make_array(signature.args[0])(context, builder, args[0])
        fro = context.make_array(signature.args[1])(context, builder, args[1])
        n = cgutils.unpack_tuple(builder, to.shape)[0]
        if context.enable_boundscheck:  # (NUMBA_BOUNDSCHECK=1: a loop's reads would be checked)
            short = builder.icmp_signed("<", cgutils.unpack_tuple(builder, fro.shape)[0], n)
            with builder.if_then(short, likely=False):
                context.call_conv.return_user_exc(builder, IndexError, ("copy_into: the source is shorter",))
        size = context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype))
        cgutils.raw_memcpy(builder, to.data, fro.data, n, size)
        return context.get_dummy_value()

    return types.void(dst, src), codegen
