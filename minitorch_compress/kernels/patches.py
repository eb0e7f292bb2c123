"""im2col and col2im: the copies that turn a convolution into one matrix product, and back.

``im2col(x, kh, kw, stride, dilation)`` writes every (kh, kw) patch of an already padded NCHW
array as a row: row ``(n, i, j)`` (output pixel), column ``(c, u, v)`` (input channel, kernel
tap), ``cols[(n*Ho + i)*Wo + j, (c*kh + u)*kw + v] = x[n, c, i*sh + u*dh, j*sw + v*dw]``.

``col2im(dcols_t, dxp, kh, kw, stride, dilation, ho, wo)`` is its adjoint: given the transpose
of such a matrix (a row per (c, u, v), contiguous along the pixels, so that the additions run along
image rows), it adds every value back onto the pixel it was copied from, ``dxp`` holding zeros on entry. A pixel
covered by several taps receives their values one tap at a time, in the order of (u, v), exactly
as the NumPy form (one strided add per tap) does, so both give the same bits.

Both are copies and additions in a fixed order: the same bits on every CPU and thread count
(threads split the images, or (image, channel) pairs, never a pixel's sum). ``*_numpy`` are the
NumPy forms the tests compare with; they run instead with ``NUMBA_DISABLE_JIT=1``.
"""
import numpy as np
from numba import config, njit, prange
from numpy.lib.stride_tricks import sliding_window_view

from . import threads

NS_PER_ELEMENT = 0.5   # one thread, per element of cols written or read (estimate)


def windows(x, kh, kw, sh, sw, dh=1, dw=1):
    """All (kh, kw) patches of an NCHW array taken every (sh, sw), their taps (dh, dw) apart:
    shape (N, C, Ho, Wo, kh, kw), a view."""
    span = sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return span[:, :, ::sh, ::sw, ::dh, ::dw]


def out_size(size, k, s, d):
    """Output length of a valid (already padded) convolution along one axis."""
    return (size - (k - 1) * d - 1) // s + 1


@njit(cache=True, parallel=True)
def _im2col(x, kh, kw, sh, sw, dh, dw, cols):
    n, c = x.shape[0], x.shape[1]
    ho, wo = (x.shape[2] - (kh - 1) * dh - 1) // sh + 1, (x.shape[3] - (kw - 1) * dw - 1) // sw + 1
    for t in prange(n * ho):
        b, i = t // ho, t % ho
        for j in range(wo):
            r = t * wo + j
            for ch in range(c):
                for u in range(kh):
                    y, base = i * sh + u * dh, (ch * kh + u) * kw
                    for v in range(kw):
                        cols[r, base + v] = x[b, ch, y, j * sw + v * dw]


def im2col(x, kh, kw, stride, dilation):
    """The (N*Ho*Wo, C*kh*kw) float matrix of ``x``'s patches (see the module docstring)."""
    (sh, sw), (dh, dw) = stride, dilation
    n, c, h, w = x.shape
    m = n * out_size(h, kh, sh, dh) * out_size(w, kw, sw, dw)
    cols = np.empty((m, c * kh * kw), x.dtype)
    threads.run(_im2col, cols.size * NS_PER_ELEMENT, x, kh, kw, sh, sw, dh, dw, cols)
    return cols


def im2col_numpy(x, kh, kw, stride, dilation):
    """``im2col`` with NumPy: a strided view of the patches, copied."""
    (sh, sw), (dh, dw) = stride, dilation
    patches = windows(x, kh, kw, sh, sw, dh, dw)
    n, c, ho, wo = patches.shape[:4]
    m = n * ho * wo
    cols = np.empty((m, c * kh * kw), x.dtype)      # a new array, never a view of x
    cols[:] = patches.transpose(0, 2, 3, 1, 4, 5).reshape(m, c * kh * kw)
    return cols


@njit(cache=True, parallel=True)
def _col2im(dcols_t, dxp, kh, kw, sh, sw, dh, dw, ho, wo):
    n, c = dxp.shape[0], dxp.shape[1]
    for t in prange(n * c):
        b, ch = t // c, t % c
        for u in range(kh):
            for v in range(kw):
                k = (ch * kh + u) * kw + v
                for i in range(ho):
                    y, row = i * sh + u * dh, (b * ho + i) * wo
                    for j in range(wo):
                        dxp[b, ch, y, j * sw + v * dw] += dcols_t[k, row + j]


def col2im(dcols_t, dxp, kh, kw, stride, dilation, ho, wo):
    """Add the columns of ``dcols_t`` (C*kh*kw, N*Ho*Wo), the transpose of what ``im2col`` makes,
    onto ``dxp`` (N, C, Hp, Wp), in place (see the module docstring)."""
    (sh, sw), (dh, dw) = stride, dilation
    n, c = dxp.shape[:2]
    threads.run(_col2im, n * ho * wo * c * kh * kw * NS_PER_ELEMENT, dcols_t, dxp, kh, kw, sh, sw, dh, dw, ho, wo)


def col2im_numpy(dcols_t, dxp, kh, kw, stride, dilation, ho, wo):
    """``col2im`` with NumPy: one strided add per kernel tap, never per pixel."""
    (sh, sw), (dh, dw) = stride, dilation
    n, c = dxp.shape[:2]
    d = dcols_t.reshape(c, kh, kw, n, ho, wo)
    for u in range(kh):
        for v in range(kw):
            dxp[:, :, u * dh:u * dh + sh * ho:sh, v * dw:v * dw + sw * wo:sw] += d[:, u, v].transpose(1, 0, 2, 3)


if config.DISABLE_JIT:   # Python loops over every element would crawl: the NumPy forms instead
    im2col, col2im = im2col_numpy, col2im_numpy
