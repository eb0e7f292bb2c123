"""A float32 convolution's forward product and weight gradient, with im2col done tile by tile.

``conv2d`` (groups 1) is ``cols @ W^T`` and its weight gradient ``g2^T @ cols``, where ``cols``
(``patches.py``) holds every patch of the input as a row: 25 times the input for a 5x5 kernel, 5 MB
for LeNet's first layer at batch 64, written and read again by each product. Here the rows of
``cols`` a micro-kernel tile needs are gathered from the padded input into a small buffer that
stays in cache, just before the tile runs (``microkernel.tile``):

- ``conv_forward``: a task takes ``MC`` output pixels, gathers their patches (MC x K) and runs
  one tile per ``MR`` pixels and ``NR`` output channels against the packed weight (zero past
  ``O``, so no tile is cut at the edge); ``out[m, o] = chain + bias[o]`` as ``(cols @ W^T) + b``.
- ``conv_weight_grad``: a task owns up to ``NR`` columns of ``dW`` (O x K) and walks the pixels in
  blocks of ``KB``: it copies the block of ``g2^T`` and gathers the matching columns of ``cols``,
  then continues the chains of its tiles over them.

Each output is the same chain as in ``kernels.matmul``: ``0 + a_0 b_0 + a_1 b_1 + ...`` in the
order of k, one fused multiply-add at a time, so these give the bits of ``matmul(cols, W.T)`` and
``matmul(g2.T, cols)`` on every CPU and at any thread count (one task computes each element).
``*_reference`` (im2col, then ``matmul``) is what the tests compare with. With
``NUMBA_DISABLE_JIT=1`` the loops below run as Python around ``microkernel.tile_python``.
"""
import numba
import numpy as np
from numba import njit, prange

from . import threads
from .dense import NS_PER_MAC, matmul
from .patches import im2col, out_size
from .microkernel import MC, MR, NR, tile

KB = 256   # pixels per block of the weight gradient: MR x KB of g2^T and KB x NR of cols in L1


@njit(cache=True)
def _offsets(c, hp, wp, kh, kw, dh, dw):
    """offset[(ch*kh + u)*kw + v]: where tap (ch, u, v) of a patch lies from its corner."""
    off = np.empty(c * kh * kw, np.int64)
    for ch in range(c):
        for u in range(kh):
            for v in range(kw):
                off[(ch * kh + u) * kw + v] = (ch * hp + u * dh) * wp + v * dw
    return off


@njit(cache=True, inline="always")
def _corner(p, hw, wo, chw, sh, sw, wp):
    """Flat index in the padded input of output pixel p's patch corner."""
    b, rem = p // hw, p % hw
    return b * chw + (rem // wo) * sh * wp + (rem % wo) * sw


@njit(cache=True, parallel=True)
def _forward(xf, chw, wp, ho, wo, sh, sw, off, wpk, bias, has_bias, out, mc, mr, nr):
    m, o = out.shape
    k = off.size
    strips = wpk.shape[0]
    zeros = np.zeros(nr, np.float32)
    for t in prange((m + mc - 1) // mc):
        r0 = t * mc
        rows = min(mc, m - r0)
        a = np.zeros((mc, k), np.float32)
        acc = np.empty(mr * nr, np.float32)
        for r in range(rows):
            corner = _corner(r0 + r, ho * wo, wo, chw, sh, sw, wp)
            for q in range(k):
                a[r, q] = xf[corner + off[q]]
        for s in range(strips):
            cols = min(nr, o - s * nr)
            for i0 in range(0, rows, mr):
                tile(a, i0 * k, k, wpk, s * k * nr, k, acc, 0, nr, zeros, 0, 0)
                for i in range(min(mr, rows - i0)):
                    for j in range(cols):
                        value = acc[i * nr + j]
                        out[r0 + i0 + i, s * nr + j] = value + bias[s * nr + j] if has_bias else value


def _geometry(xp, kh, kw, stride, dilation):
    (sh, sw), (dh, dw) = stride, dilation
    n, c, hp, wp = xp.shape
    ho, wo = out_size(hp, kh, sh, dh), out_size(wp, kw, sw, dw)
    return n, ho, wo, _offsets(c, hp, wp, kh, kw, dh, dw)


def conv_forward(xp, w2, bias, kh, kw, stride, dilation):
    """``im2col(xp) @ w2.T (+ bias)``: (N*Ho*Wo, O) float32, for a padded float32 NCHW ``xp`` and the
    weight as (O, C*kh*kw)."""
    xp = np.ascontiguousarray(xp)
    n, ho, wo, off = _geometry(xp, kh, kw, stride, dilation)
    o, k = w2.shape
    strips = -(-o // NR)
    wpk = np.zeros((k, strips * NR), np.float32)          # W^T, zero past O, in strips of NR columns
    wpk[:, :o] = w2.T
    wpk = np.ascontiguousarray(wpk.reshape(k, strips, NR).transpose(1, 0, 2))
    has_bias = bias is not None
    b = np.zeros(strips * NR, np.float32)
    if has_bias:
        b[:o] = bias
    out = np.empty((n * ho * wo, o), np.float32)
    chw = xp.shape[1] * xp.shape[2] * xp.shape[3]
    threads.run(_forward, out.shape[0] * strips * NR * k * NS_PER_MAC, xp.reshape(-1), chw, xp.shape[3], ho, wo,
                stride[0], stride[1], off, wpk, b, has_bias, out, MC, MR, NR)
    return out


def conv_forward_reference(xp, w2, bias, kh, kw, stride, dilation):
    out = matmul(im2col(xp, kh, kw, stride, dilation), np.ascontiguousarray(w2.T))
    if bias is not None:
        out += bias
    return out


@njit(cache=True, parallel=True)
def _weight_grad(xf, chw, wp, ho, wo, sh, sw, off, g2, dw, kb, width, mr, nr):
    m, o = g2.shape
    k = off.size
    row_strips = (o + mr - 1) // mr
    zeros = np.zeros(nr, np.float32)
    for t in prange((k + width - 1) // width):
        k0 = t * width
        cols = min(width, k - k0)
        a = np.zeros((row_strips * mr, kb), np.float32)   # g2^T: every output channel, pixels of the block
        b = np.zeros(kb * nr, np.float32)                 # cols of the block, columns k0..
        acc = np.zeros(row_strips * mr * nr, np.float32)
        for p0 in range(0, m, kb):
            steps = min(kb, m - p0)
            for q in range(steps):
                for i in range(o):
                    a[i, q] = g2[p0 + q, i]
                corner = _corner(p0 + q, ho * wo, wo, chw, sh, sw, wp)
                for j in range(cols):
                    b[q * nr + j] = xf[corner + off[k0 + j]]
            for r in range(row_strips):
                tile(a, r * mr * kb, kb, b, 0, steps, acc, r * mr * nr, nr, zeros, 0, 1 if p0 > 0 else 0)
        for i in range(o):
            for j in range(cols):
                dw[i, k0 + j] = acc[i * nr + j]


def conv_weight_grad(xp, g2, kh, kw, stride, dilation):
    """``g2.T @ im2col(xp)``: the weight gradient (O, C*kh*kw) float32 for the output gradient ``g2``
    as (N*Ho*Wo, O)."""
    xp = np.ascontiguousarray(xp)
    n, ho, wo, off = _geometry(xp, kh, kw, stride, dilation)
    m, o = g2.shape
    k = off.size
    # Tasks own NR columns of dW; when that leaves a thread idle (LeNet's first layer: K = 25, one
    # task), narrower ones: each tile still runs NR wide, only its own columns are gathered and kept.
    tasks = -(-k // NR)
    tasks = -(-tasks // numba.get_num_threads()) * numba.get_num_threads()
    width = -(-k // tasks)
    dw = np.empty((o, k), np.float32)
    chw = xp.shape[1] * xp.shape[2] * xp.shape[3]
    threads.run(_weight_grad, m * -(-o // MR) * MR * tasks * NR * NS_PER_MAC, xp.reshape(-1), chw, xp.shape[3], ho, wo,
                stride[0], stride[1], off, g2, dw, KB, width, MR, NR)
    return dw


def conv_weight_grad_reference(xp, g2, kh, kw, stride, dilation):
    return matmul(g2.T, im2col(xp, kh, kw, stride, dilation))
