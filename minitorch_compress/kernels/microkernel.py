"""Register-tiled micro-kernels written directly in LLVM IR through Numba's ``@intrinsic``.

A micro-kernel computes one ``MR x (NV*16)`` tile of a matrix product over ``kc`` steps,
keeping the whole tile in ``MR*NV`` vector registers of 16 lanes::

    acc[i][v] = C[c_off + i*c_rs + v*16 : ... + 16] if accumulate else init[init_off + v*16 : ... + 16]
    for k in range(kc):
        for v in range(NV):   bv = B[b_off + k*NV*16 + v*16 : ... + 16]      # packed B row
        for i in range(MR):   a = splat(A[a_off + i*a_rs + k*a_ks])          # one scalar, broadcast
                              acc[i][v] = combine(acc[i][v], a, bv)
    C[c_off + i*c_rs + v*16 : ... + 16] = acc[i][v]

``C`` is the product itself for whole tiles, so the tile goes from registers straight to memory
(an 8 x 32 tile passed through a scratch tile and copied out cost a third of the int8 kernel's
time); tiles at the edges go to a scratch tile, then ``store_tile`` copies the part inside.
``init`` is a per-column start value: zeros for a plain product, the int8 kernel's zero-point
correction.

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
    """Return an intrinsic ``tile(a, a_off, a_rs, a_ks, b, b_off, kc, c, c_off, c_rs, init, init_off,
    accumulate)`` (see the module docstring; ``accumulate`` is an integer, nonzero to add to C).

    Offsets and strides count elements of the lane type (float32 for ``"fma"``, 4-byte groups
    for ``"vpdpbusd"``); the arrays may be of any dtype of that lane size and are reinterpreted.
    """
    scalar = ir.FloatType() if kind == "fma" else ir.IntType(32)
    vec = ir.VectorType(scalar, LANES)
    width = nv * LANES

    @intrinsic
    def tile(typingctx, a, a_off, a_rs, a_ks, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate):
        for arr in (a, b, c, init):
            if not isinstance(arr, types.Array):
                return None
        intp = types.intp
        sig = types.void(a, intp, intp, intp, b, intp, intp, c, intp, intp, init, intp, intp)

        def codegen(context, builder, signature, args):
            a_arr, a_off, a_rs, a_ks, b_arr, b_off, kc, c_arr, c_off, c_rs, i_arr, init_off, accumulate = args
            ptr, vptr = ir.PointerType(scalar), ir.PointerType(vec)

            def data(k, arr):
                return builder.bitcast(context.make_array(signature.args[k])(context, builder, arr).data, ptr)

            def vector_at(base, offset):
                return builder.bitcast(builder.gep(base, [offset]), vptr)

            def const(value):
                return ir.Constant(a_off.type, value)

            a_ptr, b_ptr, c_ptr, i_ptr = data(0, a_arr), data(4, b_arr), data(7, c_arr), data(10, i_arr)
            c_rows = [builder.add(c_off, builder.mul(const(i), c_rs)) for i in range(mr)]
            c_at = [[builder.add(c_rows[i], const(v * LANES)) for v in range(nv)] for i in range(mr)]
            # Accumulators live in allocas; LLVM's mem2reg turns them into registers.
            accs = [[cgutils.alloca_once(builder, vec) for _ in range(nv)] for _ in range(mr)]
            with builder.if_else(builder.icmp_signed("!=", accumulate, const(0))) as (from_c, from_init):
                with from_c:
                    for i in range(mr):
                        for v in range(nv):
                            builder.store(builder.load(vector_at(c_ptr, c_at[i][v]), align=4), accs[i][v])
                with from_init:
                    for v in range(nv):
                        start = builder.load(vector_at(i_ptr, builder.add(init_off, const(v * LANES))), align=4)
                        for i in range(mr):
                            builder.store(start, accs[i][v])
            splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), None)
            with cgutils.for_range(builder, kc) as loop:
                k = loop.index
                b_row = builder.add(b_off, builder.mul(k, const(width)))
                bvs = [builder.load(vector_at(b_ptr, builder.add(b_row, const(v * LANES))), align=4) for v in range(nv)]
                a_k = builder.add(a_off, builder.mul(k, a_ks))
                for i in range(mr):
                    s = builder.load(builder.gep(a_ptr, [builder.add(a_k, builder.mul(const(i), a_rs))]), align=4)
                    one = builder.insert_element(ir.Constant(vec, ir.Undefined), s, ir.Constant(ir.IntType(32), 0))
                    av = builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined), splat_mask)
                    for v in range(nv):
                        builder.store(_combine(builder, kind, builder.load(accs[i][v]), av, bvs[v]), accs[i][v])
            for i in range(mr):
                for v in range(nv):
                    builder.store(builder.load(accs[i][v]), vector_at(c_ptr, c_at[i][v]), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


@njit(cache=True, inline="always")
def store_tile(c, tile, r0, c0, nr, first, init):
    """Copy the part of an edge tile (rows of ``nr``) that lies inside ``c``, at (r0, c0).

    The first k-block stores ``tile + init[col]``; later ones add ``tile``.
    """
    m, n = c.shape
    rows, cols = min(tile.size // nr, m - r0), min(nr, n - c0)
    for i in range(rows):
        row = c[r0 + i]
        if first:
            for j in range(cols):
                row[c0 + j] = tile[i * nr + j] + init[c0 + j]
        else:
            for j in range(cols):
                row[c0 + j] += tile[i * nr + j]
