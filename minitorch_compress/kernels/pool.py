"""Max pooling: each window's maximum and where it is, and the gradient sent back there.

``max_pool(x, kh, kw, sh, sw)`` returns ``out`` (N, C, Ho, Wo), C-contiguous, and ``arg``, the
index ``u*kw + v`` of the maximum inside each window. Like ``np.argmax`` it is the first maximum in
row-major order, and the first NaN if the window holds one (PyTorch also propagates NaN).
``max_pool_backward(g, arg, dx, kh, kw, sh, sw)`` adds ``g[n, c, i, j]`` to ``dx`` at the maximum
of window (i, j), windows taken in row-major order, as ``np.add.at`` does: where windows overlap
and share a maximum, the sums are rounded in the same order.

Copies, comparisons and ordered additions: the same bits on every CPU and thread count (threads
split (image, channel) planes, which no window crosses; for channels-last ``x``, the forward's
threads split output rows and the backward's images, channels innermost, reading memory in order). ``*_numpy`` are the NumPy forms the
tests compare with; they run instead with ``NUMBA_DISABLE_JIT=1``.
"""
import numpy as np
from numba import config, njit, prange

from . import threads
from .patches import windows

NS_PER_ELEMENT = 1.0   # one thread, per input element (estimate)


@njit(cache=True, parallel=True)
def _max_pool(x, kh, kw, sh, sw, out, arg):
    n, c, ho, wo = out.shape
    for t in prange(n * c):
        b, ch = t // c, t % c
        plane = x[b, ch]
        for i in range(ho):
            for j in range(wo):
                best, at = plane[i * sh, j * sw], 0
                for p in range(1, kh * kw):
                    if best != best:      # NaN: np.argmax stops at the first one
                        break
                    value = plane[i * sh + p // kw, j * sw + p % kw]
                    if not value <= best:  # larger, or NaN
                        best, at = value, p
                out[b, ch, i, j] = best
                arg[b, ch, i, j] = at


@njit(cache=True, parallel=True)
def _max_pool_channels_last(x, kh, kw, sh, sw, out, arg):
    n, c, ho, wo = out.shape
    for t in prange(n * ho):   # one output row of an image, all channels: x's memory in order
        b, i = t // ho, t % ho
        for j in range(wo):
            for ch in range(c):
                best, at = x[b, ch, i * sh, j * sw], 0
                for p in range(1, kh * kw):
                    if best != best:
                        break
                    value = x[b, ch, i * sh + p // kw, j * sw + p % kw]
                    if not value <= best:
                        best, at = value, p
                out[b, ch, i, j] = best
                arg[b, ch, i, j] = at


def _channels_last(x):
    """Whether the channels of an NCHW array are its smallest stride (a convolution's output)."""
    return x.shape[1] > 1 and abs(x.strides[1]) <= min(abs(s) for s in x.strides[2:])


def max_pool(x, kh, kw, sh, sw):
    """(out, arg) of a max pooling of the NCHW array ``x`` (see the module docstring)."""
    n, c, h, w = x.shape
    shape = (n, c, (h - kh) // sh + 1, (w - kw) // sw + 1)
    out, arg = np.empty(shape, x.dtype), np.empty(shape, np.int32)
    kernel = _max_pool_channels_last if _channels_last(x) else _max_pool   # each window compared in the same order
    threads.run(kernel, x.size * NS_PER_ELEMENT, x, kh, kw, sh, sw, out, arg)
    return out, arg


def max_pool_numpy(x, kh, kw, sh, sw):
    """``max_pool`` with NumPy: ``argmax`` over a copy of the windows."""
    patches = windows(x, kh, kw, sh, sw)
    flat = patches.reshape(patches.shape[:4] + (kh * kw,))
    arg = flat.argmax(axis=-1).astype(np.int32)
    return np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0], arg


@njit(cache=True, parallel=True)
def _max_pool_backward(g, arg, dx, kw, sh, sw):
    n, c, ho, wo = g.shape
    for t in prange(n * c):
        b, ch = t // c, t % c
        for i in range(ho):
            for j in range(wo):
                p = arg[b, ch, i, j]
                dx[b, ch, i * sh + p // kw, j * sw + p % kw] += g[b, ch, i, j]


@njit(cache=True, parallel=True)
def _max_pool_backward_channels_last(g, arg, dx, kw, sh, sw):
    n, c, ho, wo = g.shape
    for b in prange(n):        # each plane's windows still in row-major order
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    p = arg[b, ch, i, j]
                    dx[b, ch, i * sh + p // kw, j * sw + p % kw] += g[b, ch, i, j]


def max_pool_backward(g, arg, dx, kh, kw, sh, sw):
    """Add each ``g[n, c, i, j]`` to ``dx`` (N, C, H, W) at window (i, j)'s maximum, in place."""
    kernel = _max_pool_backward_channels_last if _channels_last(dx) else _max_pool_backward
    threads.run(kernel, dx.size * NS_PER_ELEMENT, g, arg, dx, kw, sh, sw)


def max_pool_backward_numpy(g, arg, dx, kh, kw, sh, sw):
    """``max_pool_backward`` with NumPy's ``add.at`` (unbuffered: repeated indices all count)."""
    n, c, ho, wo = g.shape
    rows = np.arange(ho)[:, None] * sh + arg // kw
    cols = np.arange(wo)[None, :] * sw + arg % kw
    np.add.at(dx, (np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols), g)


if config.DISABLE_JIT:   # Python loops over every element would crawl: the NumPy forms instead
    max_pool, max_pool_backward = max_pool_numpy, max_pool_backward_numpy
