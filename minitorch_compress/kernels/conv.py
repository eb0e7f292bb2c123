"""A float32 convolution's forward product and weight gradient, reading the patches where they lie.

``conv2d`` (groups 1) is ``cols @ W^T`` and its weight gradient ``g2^T @ cols``, where ``cols``
(``patches.py``) holds every patch of the input as a row: 25 times the input for a 5x5 kernel, 5 MB
for LeNet's first layer at batch 64. Neither product here writes or gathers it: the micro-kernel
``tap_tile`` (LLVM IR, like ``microkernel.tile``) finds each operand through offset tables, so a
patch's value is read from the padded input itself at ``corner + off[tap]`` (``off[(ch*kh + u)*kw
+ v] = (ch*Hp + u*dh)*Wp + v*dw``; ``corner`` where a pixel's patch starts):

- ``conv_forward``: a tile's rows are MR output pixels (broadcast from the input at their
  corners), its lanes 16 or NR output channels (a row of the packed ``W^T``), its steps the taps in
  order; the bias is added after the chain and masked stores write exactly O columns of ``out``.
- ``conv_weight_grad``: a tile's rows are MR taps (read at ``off[tap]`` from each pixel's corner),
  its lanes output channels (a row of ``g2``), its steps the pixels, image after image; a task
  owns its tile of ``dW^T`` for the whole batch.

Each output is the same chain as in ``kernels.matmul``: ``0 + a_0 b_0 + a_1 b_1 + ...`` in the
order of k (taps, or pixels), one fused multiply-add at a time, so these give the bits of
``matmul(cols, W.T) + b`` and ``matmul(g2.T, cols)`` on every CPU and at any thread count (one task
computes each element). ``*_reference`` (im2col, then ``matmul``) is what the tests compare with.
With ``NUMBA_DISABLE_JIT=1`` the loops below run as Python around ``_tap_tile_python``.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import config, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import idioms, threads
from .dense import NS_PER_MAC, matmul
from .fma import fma32
from .patches import col2im, im2col, out_size
from .microkernel import LANES, MR, NR, NV, as_lanes


def _tap_tile_kernel(nv):
    """An intrinsic ``tap_tile(a, a_off, a_rows, a_steps, b, b_off, b_steps, kc, c, c_off, c_rs, rows, cols,
    from_c, d, d_off, d_rs, add)``: an MR x (nv*16) tile whose operands are found through offset
    tables, so that it reads patches where they lie in the input instead of from a gathered copy::

        acc[i] = c[c_off + i*c_rs : ... + nv*16] if from_c else 0
        for s in range(kc):
            bv = b[b_off + b_steps[s] : ... + nv*16]                   # a vector of lanes
            for i in range(MR): acc[i] = fma(a[a_off + a_rows[i] + a_steps[s]], bv, acc[i])   # broadcast
        for i in range(rows):                       # lanes < cols only (masked loads and stores)
            c[c_off + i*c_rs : ...] = d[d_off + i*d_rs : ...] + acc[i] if add else acc[i]

    Each lane of each row is one chain ``0 + a_0 b_0 + a_1 b_1 + ...`` over s in order, one fused
    multiply-add at a time, then at most one addition (a bias, or the value already in c: ``d = c``).
    Float32 arrays; offsets count elements."""
    vec = ir.VectorType(ir.FloatType(), LANES)

    @intrinsic
    def tap_tile(typingctx, a, a_off, a_rows, a_steps, b, b_off, b_steps, kc, c, c_off, c_rs, rows, cols, from_c,
                 d, d_off, d_rs, add):
        if not all(isinstance(arr, types.Array) for arr in (a, a_rows, a_steps, b, b_steps, c, d)):
            return None
        intp = types.intp
        sig = types.void(a, intp, a_rows, a_steps, b, intp, b_steps, intp, c, intp, intp, intp, intp, intp,
                         d, intp, intp, intp)

        def codegen(context, builder, signature, args):
            (a_arr, a_off, rows_arr, asteps_arr, b_arr, b_off, bsteps_arr, kc, c_arr, c_off, c_rs, rows, cols, from_c,
             d_arr, d_off, d_rs, add) = args
            scalar = ir.FloatType()
            a_ptr, b_ptr, c_ptr, d_ptr = (idioms.data_pointer(context, builder, signature.args[k], args[k], scalar)
                                          for k in (0, 4, 8, 14))
            index_ptrs = [context.make_array(signature.args[k])(context, builder, args[k]).data for k in (2, 3, 6)]
            rows_ptr, asteps_ptr, bsteps_ptr = (builder.bitcast(p, ir.PointerType(a_off.type)) for p in index_ptrs)
            ivec = ir.VectorType(a_off.type, LANES)
            lane = ir.Constant(ivec, list(range(LANES)))
            i32 = ir.IntType(32)

            def const(value):
                return ir.Constant(a_off.type, value)

            def row_at(off, rs, i, v):
                return builder.add(builder.add(off, builder.mul(const(i), rs)), const(v * LANES))

            masks = [builder.icmp_signed("<", lane, idioms.splat(builder, builder.sub(cols, const(v * LANES)), ivec))
                     for v in range(nv)]
            mtype = masks[0].type
            masked_load = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [ir.PointerType(vec), i32, mtype, vec]),
                "llvm.masked.load.v16f32.p0")
            masked_store = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [vec, ir.PointerType(vec), i32, mtype]),
                "llvm.masked.store.v16f32.p0")
            a_base = [builder.add(a_off, builder.load(builder.gep(rows_ptr, [const(i)]))) for i in range(MR)]
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(nv)] for _ in range(MR)]
            with builder.if_then(builder.icmp_signed("!=", from_c, const(0))):
                for i in range(MR):
                    for v in range(nv):
                        builder.store(idioms.load(builder, c_ptr, row_at(c_off, c_rs, i, v), vec), accs[i][v])
            with cgutils.for_range(builder, kc) as loop:
                s = loop.index
                b_at = builder.add(b_off, builder.load(builder.gep(bsteps_ptr, [s])))
                bvs = [idioms.load(builder, b_ptr, builder.add(b_at, const(v * LANES)), vec) for v in range(nv)]
                a_step = builder.load(builder.gep(asteps_ptr, [s]))
                for i in range(MR):
                    at = builder.gep(a_ptr, [builder.add(a_base[i], a_step)])
                    av = idioms.splat(builder, builder.load(at, align=4), vec)
                    for v in range(nv):
                        builder.store(idioms.fma(builder, av, bvs[v], builder.load(accs[i][v])), accs[i][v])
            adding = builder.icmp_signed("!=", add, const(0))
            for i in range(MR):
                with builder.if_then(builder.icmp_signed("<", const(i), rows)):
                    for v in range(nv):
                        value = builder.load(accs[i][v])
                        with builder.if_then(adding):
                            d_at = idioms.vector_at(builder, d_ptr, row_at(d_off, d_rs, i, v), vec)
                            old = builder.call(masked_load, [d_at, ir.Constant(i32, 4), masks[v], ir.Constant(vec, None)])
                            builder.store(builder.fadd(old, value), accs[i][v])
                        c_at = idioms.vector_at(builder, c_ptr, row_at(c_off, c_rs, i, v), vec)
                        builder.call(masked_store, [builder.load(accs[i][v]), c_at, ir.Constant(i32, 4), masks[v]])
            return context.get_dummy_value()

        return sig, codegen

    return tap_tile


def _tap_tile_python(nv):
    """``tap_tile`` in NumPy, bit for bit (``fma32`` rounds as ``llvm.fma`` does): what runs with
    ``NUMBA_DISABLE_JIT=1``."""
    w = nv * LANES

    def tap_tile(a, a_off, a_rows, a_steps, b, b_off, b_steps, kc, c, c_off, c_rs, rows, cols, from_c,
                 d, d_off, d_rs, add):
        a, b, c, d = as_lanes(a), as_lanes(b), as_lanes(c), as_lanes(d)
        width = min(w, cols)
        for i in range(rows):
            at = c_off + i * c_rs
            acc = c[at:at + w].copy() if from_c else np.zeros(w, np.float32)
            for s in range(kc):
                acc = fma32(a[a_off + a_rows[i] + a_steps[s]], b[b_off + b_steps[s]:b_off + b_steps[s] + w], acc)
            acc = acc[:width]
            c[at:at + width] = d[d_off + i * d_rs:d_off + i * d_rs + width] + acc if add else acc

    return tap_tile


_tap_tile = _tap_tile_python if config.DISABLE_JIT else _tap_tile_kernel
tap_tile = _tap_tile(NV)       # NV vectors of pixels (the forward product, the input gradient)
tap_tile_1 = _tap_tile(1)      # one vector of output channels (the weight gradient of up to 16)


@njit(cache=True)
def _offsets(c, hp, wp, kh, kw, dh, dw):
    """offset[(ch*kh + u)*kw + v]: where tap (ch, u, v) of a patch lies from its corner."""
    off = np.empty(c * kh * kw, np.int64)
    for ch in range(c):
        for u in range(kh):
            for v in range(kw):
                off[(ch * kh + u) * kw + v] = (ch * hp + u * dh) * wp + v * dw
    return off


@njit(cache=True, parallel=True)
def _forward(xf, chw, corners, off, wpk, bias, has_bias, out, mr, lanes):
    """A tile's rows are MR output pixels (their patch corners from ``corners``), its lanes
    ``lanes`` output channels of the packed weight; the taps are its steps (``off``)."""
    m, o = out.shape
    width = wpk.shape[1]
    hw = corners.size - mr                       # ``corners`` has MR spare entries past Ho*Wo
    n = m // hw if hw else 0
    k = off.size
    strips = width // lanes
    b_steps = np.arange(k) * width
    for t in prange(n * ((hw + mr - 1) // mr)):
        b, p0 = t // ((hw + mr - 1) // mr), t % ((hw + mr - 1) // mr) * mr
        rows = min(mr, hw - p0)
        for s in range(strips):
            c_off = (b * hw + p0) * o + s * lanes
            cols = min(lanes, o - s * lanes)
            if lanes == LANES:
                tap_tile_1(xf, b * chw, corners[p0:p0 + mr], off, wpk, s * lanes, b_steps, k, out, c_off, o, rows, cols, 0,
                           bias, s * lanes, 0, has_bias)
            else:
                tap_tile(xf, b * chw, corners[p0:p0 + mr], off, wpk, s * lanes, b_steps, k, out, c_off, o, rows, cols, 0,
                         bias, s * lanes, 0, has_bias)


def _geometry(xp, kh, kw, stride, dilation):
    (sh, sw), (dh, dw) = stride, dilation
    n, c, hp, wp = xp.shape
    ho, wo = out_size(hp, kh, sh, dh), out_size(wp, kw, sw, dw)
    return n, ho, wo, _offsets(c, hp, wp, kh, kw, dh, dw)


def _corners(ho, wo, stride, wp):
    """Where each output pixel's patch starts in its padded image, then MR spare entries (the last
    pixel again) for a tile's unused rows."""
    pixels = np.arange(ho * wo)
    corners = pixels // wo * stride[0] * wp + pixels % wo * stride[1]
    return np.concatenate([corners, np.full(MR, corners[-1])])


def conv_forward(xp, w2, bias, kh, kw, stride, dilation):
    """``im2col(xp) @ w2.T (+ bias)``: (N*Ho*Wo, O) float32, for a padded float32 NCHW ``xp`` and the
    weight as (O, C*kh*kw)."""
    xp = np.ascontiguousarray(xp)
    n, ho, wo, off = _geometry(xp, kh, kw, stride, dilation)
    o, k = w2.shape
    lanes = LANES if o <= LANES else NR
    width = -(-o // lanes) * lanes
    wpk = np.zeros((k, width), np.float32)                # W^T, zero past O
    wpk[:, :o] = w2.T
    b = np.zeros(width, np.float32)
    if bias is not None:
        b[:o] = bias
    out = np.empty((n * ho * wo, o), np.float32)
    chw = xp.shape[1] * xp.shape[2] * xp.shape[3]
    corners = _corners(ho, wo, stride, xp.shape[3])
    threads.run(_forward, out.shape[0] * width * k * NS_PER_MAC, xp.reshape(-1), chw, corners, off, wpk, b, bias is not None,
                out, MR, lanes)
    return out


def conv_forward_reference(xp, w2, bias, kh, kw, stride, dilation):
    out = matmul(im2col(xp, kh, kw, stride, dilation), np.ascontiguousarray(w2.T))
    if bias is not None:
        out += bias
    return out


@njit(cache=True, parallel=True)
def _weight_grad(xf, chw, n, a_steps, off, gb, o, dw, mr, lanes):
    """A task owns MR taps (rows, found in the input through ``off``) and ``lanes`` output channels
    (a vector of ``gb``'s row) of dW^T, and walks every pixel, image after image."""
    k, hw = off.size, a_steps.size
    groups, strips = (k + mr - 1) // mr, (o + lanes - 1) // lanes
    b_steps = np.arange(hw) * o
    for t in prange(groups * strips):
        g, s = t // strips, t % strips
        rows_tab = np.empty(mr, np.int64)
        for i in range(mr):
            rows_tab[i] = off[min(g * mr + i, k - 1)]     # rows past K repeat the last tap, unused
        acc = np.zeros(mr * lanes, np.float32)
        for b in range(n):
            if lanes == LANES:
                tap_tile_1(xf, b * chw, rows_tab, a_steps, gb, b * hw * o + s * lanes, b_steps, hw, acc, 0, lanes, mr, lanes,
                           b, acc, 0, 0, 0)
            else:
                tap_tile(xf, b * chw, rows_tab, a_steps, gb, b * hw * o + s * lanes, b_steps, hw, acc, 0, lanes, mr, lanes,
                         b, acc, 0, 0, 0)
        for i in range(min(mr, k - g * mr)):
            for j in range(min(lanes, o - s * lanes)):
                dw[s * lanes + j, g * mr + i] = acc[i * lanes + j]


def conv_weight_grad(xp, g2, kh, kw, stride, dilation):
    """``g2.T @ im2col(xp)``: the weight gradient (O, C*kh*kw) float32 for the output gradient ``g2``
    as (N*Ho*Wo, O)."""
    xp = np.ascontiguousarray(xp)
    n, ho, wo, off = _geometry(xp, kh, kw, stride, dilation)
    m, o = g2.shape
    k = off.size
    lanes = LANES if o <= LANES else NR
    strips = -(-o // lanes)
    gb = np.empty(m * o + strips * lanes, np.float32)     # a row's last vector reads past it: slack
    gb[:m * o] = g2.reshape(-1)
    gb[m * o:] = 0
    (sh, sw), wp = stride, xp.shape[3]
    pixels = np.arange(ho * wo)
    a_steps = pixels // wo * sh * wp + pixels % wo * sw   # pixel p's corner in its image
    dw = np.empty((o, k), np.float32)
    threads.run(_weight_grad, m * -(-k // MR) * MR * strips * lanes * NS_PER_MAC, xp.reshape(-1),
                xp.shape[1] * xp.shape[2] * wp, n, a_steps, off, gb, o, dw, MR, lanes)
    return dw


def conv_weight_grad_reference(xp, g2, kh, kw, stride, dilation):
    return matmul(g2.T, im2col(xp, kh, kw, stride, dilation))


@njit(cache=True, parallel=True)
def _input_grad(gt, ld, w2, c, kh, kw, dh, dw, sh, ho, wo, dxf, plane, wp, mr, lanes):
    """A task owns MR channel planes of one image of ``dxf`` and adds into them tap after tap, as
    col2im does: a tile's rows are the channels, its lanes up to ``lanes`` pixels of an output row
    (a row of ``gt``, the transposed output gradient), its steps the output channels."""
    o, k = w2.shape
    strips = (c + mr - 1) // mr
    b_steps = np.arange(o) * ld
    a_steps = np.arange(o) * k
    for t in prange((dxf.size // (c * plane)) * strips):
        b, s = t // strips, t % strips
        rows = min(mr, c - s * mr)
        rows_tab = np.empty(mr, np.int64)
        for i in range(mr):
            rows_tab[i] = (s * mr + min(i, rows - 1)) * kh * kw    # rows past C repeat the last, unused
        for u in range(kh):
            for v in range(kw):
                for i in range(ho):
                    for j0 in range(0, wo, lanes):
                        p = (b * ho + i) * wo + j0
                        c_off = (b * c + s * mr) * plane + (i * sh + u * dh) * wp + j0 + v * dw
                        cols = min(lanes, wo - j0)
                        if lanes == LANES:
                            tap_tile_1(w2, u * kw + v, rows_tab, a_steps, gt, p, b_steps, o, dxf, c_off, plane, rows, cols,
                                       0, dxf, c_off, plane, 1)
                        else:
                            tap_tile(w2, u * kw + v, rows_tab, a_steps, gt, p, b_steps, o, dxf, c_off, plane, rows, cols,
                                     0, dxf, c_off, plane, 1)


def conv_input_grad(g2, w2, shape, kh, kw, stride, dilation):
    """The gradient (N, C, Hp, Wp) float32 of the padded input: ``col2im((g2 @ w2)^T)``, each patch
    value ``sum_o g2[p, o] w2[o, tap]`` one chain over o, added onto its pixel tap after tap (the
    order of ``patches.col2im``). Stride 1 along rows runs as tiles that never write the patch
    matrix; other strides as ``matmul(w2.T, g2.T)`` then ``col2im``."""
    n, c, hp, wp = shape
    ho, wo = out_size(hp, kh, stride[0], dilation[0]), out_size(wp, kw, stride[1], dilation[1])
    dxp = np.zeros(shape, np.float32)
    if stride[1] != 1:
        col2im(matmul(w2.T, g2.T), dxp, kh, kw, stride, dilation, ho, wo)
        return dxp
    m, o = g2.shape
    lanes = LANES if wo <= LANES else NR
    ld = m + lanes                                        # a row's last vector reads past its end
    gt = np.zeros((o, ld), np.float32)
    gt[:, :m] = g2.T
    w2 = np.ascontiguousarray(w2)
    threads.run(_input_grad, m * c * kh * kw * lanes * NS_PER_MAC, gt, ld, w2, c, kh, kw, dilation[0], dilation[1],
                stride[0], ho, wo, dxp.reshape(-1), hp * wp, wp, MR, lanes)
    return dxp


def conv_input_grad_reference(g2, w2, shape, kh, kw, stride, dilation):
    ho, wo = out_size(shape[2], kh, stride[0], dilation[0]), out_size(shape[3], kw, stride[1], dilation[1])
    dxp = np.zeros(shape, np.float32)
    col2im(matmul(np.ascontiguousarray(w2.T), np.ascontiguousarray(g2.T)), dxp, kh, kw, stride, dilation, ho, wo)
    return dxp
