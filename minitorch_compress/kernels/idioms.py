"""The LLVM IR idioms the micro-kernels are written in, named once, and the CPU they target.

Numba's ``@intrinsic`` hands a code generator an ``ir.IRBuilder``; with these helpers the
generators in ``microkernel.py``, ``csr.py`` and ``transpose.py`` read like the pseudo-code in
their docstrings:

- ``data_pointer``: an array argument's data as a pointer to ``scalar`` (a 4-byte lane type);
- ``vector_at``: the vector of ``vec`` lanes that starts ``offset`` scalars past a pointer, which
  ``load`` reads and ``store`` writes (unaligned: rows need not start on a vector boundary);
- ``splat``: one scalar copied to every lane (a broadcast);
- ``fma``: ``a * b + acc`` on float vectors, rounded once (``llvm.fma``, lowered for any CPU);
- ``prefetch``: a hint to bring a cache line in before it is read (no effect on any result).

``target_features`` is the set of CPU features Numba compiles for (``NUMBA_CPU_FEATURES`` if set,
else the host's): the tile shape follows it.
"""
import llvmlite.binding as llvm
from llvmlite import ir
from numba import config
from numba.core import cgutils

I32 = ir.IntType(32)


def target_features():
    """The CPU features Numba compiles for: ``NUMBA_CPU_FEATURES`` if set, else the host's."""
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else llvm.get_host_cpu_features().flatten()
    return {f[1:] for f in features.split(",") if f.startswith("+")}


def data_pointer(context, builder, array_type, value, scalar):
    """The data of array argument ``value`` (of Numba type ``array_type``) as a ``scalar*``."""
    data = context.make_array(array_type)(context, builder, value).data
    return builder.bitcast(data, ir.PointerType(scalar))


def vector_at(builder, ptr, offset, vec):
    """A ``vec*`` to the ``vec.count`` scalars at ``ptr[offset]``."""
    return builder.bitcast(builder.gep(ptr, [offset]), ir.PointerType(vec))


def load(builder, ptr, offset, vec):
    return builder.load(vector_at(builder, ptr, offset, vec), align=4)


def store(builder, value, ptr, offset):
    builder.store(value, vector_at(builder, ptr, offset, value.type), align=4)


def splat(builder, scalar, vec):
    """``scalar`` in every lane of a ``vec``."""
    one = builder.insert_element(ir.Constant(vec, ir.Undefined), scalar, ir.Constant(I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined), ir.Constant(ir.VectorType(I32, vec.count), None))


def fma(builder, a, b, acc):
    """``a * b + acc`` lane by lane, one rounding (float32 vectors of any width)."""
    vec = acc.type
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fma.v{vec.count}f32")
    return builder.call(fn, [a, b, acc])


def prefetch(builder, ptr):
    """Ask for the cache line holding ``*ptr`` to be read soon (``llvm.prefetch``: a read, to be
    kept in all cache levels, of data); it never faults, even past an array's end."""
    i8_ptr = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8_ptr] + [I32] * 3),
                                        "llvm.prefetch.p0i8")
    builder.call(fn, [builder.bitcast(ptr, i8_ptr)] + [ir.Constant(I32, c) for c in (0, 3, 1)])
