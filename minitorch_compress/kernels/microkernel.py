"""Register-tiled micro-kernels written directly in LLVM IR through Numba's ``@intrinsic``.

A micro-kernel computes one ``MR x (NV*16)`` tile of a matrix product over ``kc`` steps,
keeping the whole tile in ``MR*NV`` vector registers of 16 lanes::

    for k in range(kc):
        for v in range(NV):   bv = B[b_off + k*NV*16 + v*16 : ... + 16]      # packed B row
        for i in range(MR):   a = splat(A[a_off + i*a_rs + k*a_ks])          # one scalar, broadcast
                              acc[i][v] = combine(acc[i][v], a, bv)
    C[i*NV*16 + v*16 : ... + 16] = acc[i][v]                                 # tile stored, not added

Numba cannot hold a vector in a register across a loop from Python code (LLVM's loop and
SLP vectorisers give at most 4x4 scalar tiles), so the loop is emitted as IR here. Two combines:

- ``"fma"``: float32, ``acc += a * bv`` with ``llvm.fma`` (portable: LLVM lowers it for any CPU);
- ``"vpdpbusd"``: int32 lanes, each lane of ``a`` and ``bv`` holding 4 bytes (uint8 in ``a``,
  int8 in ``bv``) and ``acc += sum of the 4 byte products`` — one AVX512-VNNI instruction,
  ``llvm.x86.avx512.vpdpbusd.512``. It only runs on CPUs with ``avx512_vnni`` (see ``vnni.py``).
"""
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16


def _combine(builder, kind, acc, a, b):
    module = builder.module
    vec = acc.type
    if kind == "fma":
        fn = cgutils.get_or_insert_function(module, ir.FunctionType(vec, [vec] * 3), "llvm.fma.v16f32")
        return builder.call(fn, [a, b, acc])
    fn = cgutils.get_or_insert_function(module, ir.FunctionType(vec, [vec] * 3), "llvm.x86.avx512.vpdpbusd.512")
    return builder.call(fn, [acc, a, b])


def make_tile_kernel(kind, mr, nv):
    """Return an intrinsic ``tile(a, a_off, a_rs, a_ks, b, b_off, c, kc)`` (see the module docstring).

    Offsets and strides count elements of the lane type (float32 for ``"fma"``, 4-byte groups
    for ``"vpdpbusd"``); the arrays may be of any dtype of that lane size and are reinterpreted.
    """
    scalar = ir.FloatType() if kind == "fma" else ir.IntType(32)
    vec = ir.VectorType(scalar, LANES)
    width = nv * LANES

    @intrinsic
    def tile(typingctx, a, a_off, a_rs, a_ks, b, b_off, c, kc):
        for arr in (a, b, c):
            if not isinstance(arr, types.Array):
                return None
        sig = types.void(a, types.intp, types.intp, types.intp, b, types.intp, c, types.intp)

        def codegen(context, builder, signature, args):
            a_arr, a_off, a_rs, a_ks, b_arr, b_off, c_arr, kc = args
            ptr = ir.PointerType(scalar)
            a_ptr = builder.bitcast(context.make_array(signature.args[0])(context, builder, a_arr).data, ptr)
            b_ptr = builder.bitcast(context.make_array(signature.args[4])(context, builder, b_arr).data, ptr)
            c_ptr = builder.bitcast(context.make_array(signature.args[6])(context, builder, c_arr).data, ptr)
            vptr = ir.PointerType(vec)
            zero = ir.Constant(vec, None)
            # Accumulators live in allocas; LLVM's mem2reg turns them into registers.
            accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(nv)] for _ in range(mr)]
            intp = a_off.type
            splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), None)
            with cgutils.for_range(builder, kc) as loop:
                k = loop.index
                b_row = builder.add(b_off, builder.mul(k, ir.Constant(intp, width)))
                bvs = []
                for v in range(nv):
                    p = builder.gep(b_ptr, [builder.add(b_row, ir.Constant(intp, v * LANES))])
                    bvs.append(builder.load(builder.bitcast(p, vptr), align=4))
                a_k = builder.add(a_off, builder.mul(k, a_ks))
                for i in range(mr):
                    idx = builder.add(a_k, builder.mul(ir.Constant(intp, i), a_rs))
                    s = builder.load(builder.gep(a_ptr, [idx]), align=4)
                    one = builder.insert_element(ir.Constant(vec, ir.Undefined), s, ir.Constant(ir.IntType(32), 0))
                    av = builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined), splat_mask)
                    for v in range(nv):
                        builder.store(_combine(builder, kind, builder.load(accs[i][v]), av, bvs[v]), accs[i][v])
            for i in range(mr):
                for v in range(nv):
                    p = builder.gep(c_ptr, [ir.Constant(intp, i * width + v * LANES)])
                    builder.store(builder.load(accs[i][v]), builder.bitcast(p, vptr), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


@njit(cache=True, inline="always")
def store_tile(c, tile, r0, c0, nr, first, corr):
    """Write a micro-kernel tile (rows of ``nr``) into ``c`` at (r0, c0), clipped at the edges.

    The first k-block stores ``tile - corr[col]``; later ones add ``tile``.
    """
    m, n = c.shape
    rows, cols = min(tile.size // nr, m - r0), min(nr, n - c0)
    for i in range(rows):
        row = c[r0 + i]
        if first:
            for j in range(cols):
                row[c0 + j] = tile[i * nr + j] - corr[c0 + j]
        else:
            for j in range(cols):
                row[c0 + j] += tile[i * nr + j]
