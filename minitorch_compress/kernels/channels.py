"""BatchNorm's statistics of channels-last activations, in the order NumPy's reduction takes there.

A convolution's output is an (N, C, H, W) view of channels-last memory, ``rows`` (N*H*W, C).
BatchNorm reduces it over (N, H, W): ``x.mean(axis=(0, 2, 3))``. NumPy's iterator then runs its
inner loop over the C channels of one pixel (the smallest stride) and its outer loops over the
pixels in memory order, so each channel's sum is ``((0 + x_0) + x_1) + ...`` over the rows in
order, one float32 addition at a time; with 16 or 32 channels the inner loop is so short that
NumPy spends most of its time between loops. Here:

- ``channel_sums(rows)``: those sums, in exactly that order;
- ``centred_square_sums(rows, mean)``: ``centred = rows - mean`` (float32) and the sums of
  ``centred * centred`` (each product rounded to float32, then added row after row), the variance's
  two NumPy passes in one;
- ``batch_norm_grad_sums``: the four sums of BatchNorm's backward (of g, g * weight,
  g * weight * normed and g * normed) in one pass, each in ``channel_sums``' order;
- ``scale_shift_rows``, ``batch_norm_grad_rows`` and ``batch_norm_grad_scaled_rows``: BatchNorm's
  element-wise formulas (below) in one pass each, every operation rounded to float32 in the order NumPy evaluates the expression;
  NumPy broadcasting a per-channel vector over such rows also runs a 16-element inner loop.

Threads split the channels, never a channel's sum, so the bits are NumPy's on every CPU and
thread count. ``*_numpy`` are the NumPy forms the tests compare with; they run with
``NUMBA_DISABLE_JIT=1``.
"""
import numpy as np
from numba import config, njit, prange

from . import threads

NS_PER_ELEMENT = 0.3   # one thread (estimate)
CB = 8                 # channels per task: eight independent chains of additions in registers


@njit(cache=True, inline="always")
def _sums8(rows, c0, mean, centred, square):
    """Sums over the rows of channels c0..c0+7 (of ``rows - mean`` squared, and written to
    ``centred``, when ``square``), in eight scalars."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = np.float32(0)
    if square:
        m0, m1, m2, m3 = mean[c0], mean[c0 + 1], mean[c0 + 2], mean[c0 + 3]
        m4, m5, m6, m7 = mean[c0 + 4], mean[c0 + 5], mean[c0 + 6], mean[c0 + 7]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float32(0)
    for r in range(rows.shape[0]):
        row = rows[r]
        if square:
            v0, v1, v2, v3 = row[c0] - m0, row[c0 + 1] - m1, row[c0 + 2] - m2, row[c0 + 3] - m3
            v4, v5, v6, v7 = row[c0 + 4] - m4, row[c0 + 5] - m5, row[c0 + 6] - m6, row[c0 + 7] - m7
            out = centred[r]
            out[c0], out[c0 + 1], out[c0 + 2], out[c0 + 3] = v0, v1, v2, v3
            out[c0 + 4], out[c0 + 5], out[c0 + 6], out[c0 + 7] = v4, v5, v6, v7
            s0 += v0 * v0
            s1 += v1 * v1
            s2 += v2 * v2
            s3 += v3 * v3
            s4 += v4 * v4
            s5 += v5 * v5
            s6 += v6 * v6
            s7 += v7 * v7
        else:
            s0 += row[c0]
            s1 += row[c0 + 1]
            s2 += row[c0 + 2]
            s3 += row[c0 + 3]
            s4 += row[c0 + 4]
            s5 += row[c0 + 5]
            s6 += row[c0 + 6]
            s7 += row[c0 + 7]
    return s0, s1, s2, s3, s4, s5, s6, s7


@njit(cache=True, parallel=True)
def _sums(rows, mean, centred, square, out):
    m, c = rows.shape
    for t in prange((c + CB - 1) // CB):
        c0 = t * CB
        if c0 + CB <= c:
            out[c0:c0 + CB] = np.array(_sums8(rows, c0, mean, centred, square), np.float32)
        else:                  # the last few channels, one at a time
            for ch in range(c0, c):
                s = np.float32(0)
                for r in range(m):
                    if square:
                        v = rows[r, ch] - mean[ch]
                        centred[r, ch] = v
                        s += v * v
                    else:
                        s += rows[r, ch]
                out[ch] = s


def channel_sums(rows):
    """The column sums of a C-contiguous (M, C) float32 array, each added row after row."""
    out = np.empty(rows.shape[1], np.float32)
    threads.run(_sums, rows.size * NS_PER_ELEMENT, rows, out, rows[:0], False, out)
    return out


def centred_square_sums(rows, mean):
    """``(rows - mean, column sums of (rows - mean)**2)`` for C-contiguous (M, C) float32 rows."""
    centred = np.empty_like(rows)
    out = np.empty(rows.shape[1], np.float32)
    threads.run(_sums, rows.size * 2 * NS_PER_ELEMENT, rows, np.ascontiguousarray(mean, np.float32), centred, True, out)
    return centred, out


@njit(cache=True, parallel=True)
def _scale_shift(centred, inv_std, weight, bias, normed, out):
    m, c = centred.shape
    for r in prange(m):
        for ch in range(c):
            value = centred[r, ch] * inv_std[ch]
            normed[r, ch] = value
            out[r, ch] = value * weight[ch] + bias[ch]


def scale_shift_rows(centred, inv_std, weight, bias):
    """``normed = centred * inv_std`` and ``out = normed * weight + bias`` (per-channel vectors, each
    product and the sum rounded to float32) for C-contiguous (M, C) float32 rows."""
    normed, out = np.empty_like(centred), np.empty_like(centred)
    threads.run(_scale_shift, centred.size * 2 * NS_PER_ELEMENT, centred, inv_std, weight, bias, normed, out)
    return normed, out


@njit(cache=True, parallel=True)
def _batch_norm_grad(gn, normed, mean_gn, mean_gn_normed, inv_std, gx):
    m, c = gn.shape
    for r in prange(m):
        for ch in range(c):
            gx[r, ch] = inv_std[ch] * ((gn[r, ch] - mean_gn[ch]) - normed[r, ch] * mean_gn_normed[ch])


def batch_norm_grad_rows(gn, normed, mean_gn, mean_gn_normed, inv_std):
    """``inv_std * ((gn - mean_gn) - normed * mean_gn_normed)`` for C-contiguous (M, C) float32 rows and
    per-channel vectors: BatchNorm's input gradient, rounded as NumPy rounds that expression."""
    gx = np.empty_like(gn)
    threads.run(_batch_norm_grad, gn.size * 2 * NS_PER_ELEMENT, gn, normed, mean_gn, mean_gn_normed, inv_std, gx)
    return gx


@njit(cache=True, inline="always")
def _grad_sums4(g, normed, weight, c0, out):
    """The four backward sums of channels c0..c0+3, in sixteen scalars."""
    w0, w1, w2, w3 = weight[c0], weight[c0 + 1], weight[c0 + 2], weight[c0 + 3]
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = np.float32(0)
    d0 = d1 = d2 = d3 = e0 = e1 = e2 = e3 = np.float32(0)
    for r in range(g.shape[0]):
        row, x_hat = g[r], normed[r]
        v0, v1, v2, v3 = row[c0], row[c0 + 1], row[c0 + 2], row[c0 + 3]
        n0, n1, n2, n3 = x_hat[c0], x_hat[c0 + 1], x_hat[c0 + 2], x_hat[c0 + 3]
        s0, s1, s2, s3 = v0 * w0, v1 * w1, v2 * w2, v3 * w3
        a0 += v0
        a1 += v1
        a2 += v2
        a3 += v3
        b0 += s0
        b1 += s1
        b2 += s2
        b3 += s3
        d0 += s0 * n0
        d1 += s1 * n1
        d2 += s2 * n2
        d3 += s3 * n3
        e0 += v0 * n0
        e1 += v1 * n1
        e2 += v2 * n2
        e3 += v3 * n3
    out[0, c0], out[0, c0 + 1], out[0, c0 + 2], out[0, c0 + 3] = a0, a1, a2, a3
    out[1, c0], out[1, c0 + 1], out[1, c0 + 2], out[1, c0 + 3] = b0, b1, b2, b3
    out[2, c0], out[2, c0 + 1], out[2, c0 + 2], out[2, c0 + 3] = d0, d1, d2, d3
    out[3, c0], out[3, c0 + 1], out[3, c0 + 2], out[3, c0 + 3] = e0, e1, e2, e3


@njit(cache=True, parallel=True)
def _grad_sums(g, normed, weight, out):
    m, c = g.shape
    for t in prange((c + 3) // 4):
        c0 = t * 4
        if c0 + 4 <= c:
            _grad_sums4(g, normed, weight, c0, out)
        else:                  # the last few channels, one at a time
            for ch in range(c0, c):
                a = b = d = e = np.float32(0)
                for r in range(m):
                    value, x_hat = g[r, ch], normed[r, ch]
                    scaled = value * weight[ch]
                    a += value
                    b += scaled
                    d += scaled * x_hat
                    e += value * x_hat
                out[0, ch], out[1, ch], out[2, ch], out[3, ch] = a, b, d, e


def batch_norm_grad_sums(g, normed, weight):
    """BatchNorm's four backward sums over C-contiguous (M, C) float32 rows, as a (4, C) array: the
    column sums of ``g``, ``gn = g * weight``, ``gn * normed`` and ``g * normed`` (each product
    rounded to float32, then added row after row, as ``channel_sums`` adds)."""
    out = np.empty((4, g.shape[1]), np.float32)
    threads.run(_grad_sums, g.size * 4 * NS_PER_ELEMENT, g, normed, np.ascontiguousarray(weight, np.float32), out)
    return out


@njit(cache=True, parallel=True)
def _batch_norm_grad_scaled(g, weight, normed, mean_gn, mean_gn_normed, inv_std, gx):
    m, c = g.shape
    for r in prange(m):
        for ch in range(c):
            gx[r, ch] = inv_std[ch] * ((g[r, ch] * weight[ch] - mean_gn[ch]) - normed[r, ch] * mean_gn_normed[ch])


def batch_norm_grad_scaled_rows(g, weight, normed, mean_gn, mean_gn_normed, inv_std):
    """``batch_norm_grad_rows`` of ``gn = g * weight`` without writing ``gn`` out."""
    gx = np.empty_like(g)
    threads.run(_batch_norm_grad_scaled, g.size * 3 * NS_PER_ELEMENT, g, np.ascontiguousarray(weight, np.float32), normed,
                mean_gn, mean_gn_normed, inv_std, gx)
    return gx


def batch_norm_grad_sums_numpy(g, normed, weight):
    gn = g * weight
    return np.stack([channel_sums_numpy(a) for a in (g, gn, gn * normed, g * normed)])


def batch_norm_grad_scaled_rows_numpy(g, weight, normed, mean_gn, mean_gn_normed, inv_std):
    return batch_norm_grad_rows_numpy(g * weight, normed, mean_gn, mean_gn_normed, inv_std)


def scale_shift_rows_numpy(centred, inv_std, weight, bias):
    normed = centred * inv_std
    out = normed * weight
    out += bias
    return normed, out


def batch_norm_grad_rows_numpy(gn, normed, mean_gn, mean_gn_normed, inv_std):
    return inv_std * (gn - mean_gn - normed * mean_gn_normed)


def channel_sums_numpy(rows):
    """``channel_sums`` with NumPy: a reduction over axis 0 of C-contiguous rows adds row after row."""
    return rows.sum(axis=0, dtype=np.float32)


def centred_square_sums_numpy(rows, mean):
    centred = rows - mean
    return centred, (centred * centred).sum(axis=0, dtype=np.float32)


if config.DISABLE_JIT:   # Python loops over every element would crawl: the NumPy forms instead
    channel_sums, centred_square_sums = channel_sums_numpy, centred_square_sums_numpy
    scale_shift_rows, batch_norm_grad_rows = scale_shift_rows_numpy, batch_norm_grad_rows_numpy
    batch_norm_grad_sums, batch_norm_grad_scaled_rows = batch_norm_grad_sums_numpy, batch_norm_grad_scaled_rows_numpy
