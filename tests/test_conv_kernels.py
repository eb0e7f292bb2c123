"""The convolution and pooling kernels (kernels/patches.py, kernels/pool.py, kernels/conv.py) give the
bits of their NumPy forms (or of im2col then matmul), compiled or with NUMBA_DISABLE_JIT=1, and
conv2d / max_pool2d agree with formulas written out by hand."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import functional as F
from minitorch_compress.gradcheck import gradcheck
from minitorch_compress.kernels import channels as CH, conv as CV, patches as I, pool as P
from jit_twins import run_jit_off_and_on


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


# (N, C, Hp, Wp, kh, kw, stride, dilation): overlapping, strided, dilated, non-square
GEOMETRIES = [(2, 1, 12, 12, 5, 5, (1, 1), (1, 1)), (2, 3, 9, 11, 3, 3, (2, 2), (1, 1)), (1, 2, 13, 7, 3, 2, (2, 1), (1, 2)),
              (3, 4, 8, 8, 1, 1, (2, 2), (1, 1)), (2, 2, 10, 10, 3, 3, (1, 1), (2, 2)), (1, 3, 7, 9, 4, 3, (3, 2), (1, 1))]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_and_col2im_match_numpy(geometry, dtype):
    n, c, h, w, kh, kw, stride, dilation = geometry
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    for layout in (x, np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)):   # NCHW and NHWC memory
        cols = I.im2col(layout, kh, kw, stride, dilation)
        assert same_bits(cols, I.im2col_numpy(layout, kh, kw, stride, dilation))
    # the patches by hand
    ho, wo = I.out_size(h, kh, stride[0], dilation[0]), I.out_size(w, kw, stride[1], dilation[1])
    b, i, j, ch, u, v = n - 1, ho - 1, wo // 2, c - 1, kh - 1, kw // 2
    assert cols[(b * ho + i) * wo + j, (ch * kh + u) * kw + v] == x[b, ch, i * stride[0] + u * dilation[0], j * stride[1] + v * dilation[1]]
    # col2im: values of very different sizes, so that the order of a pixel's additions shows in its bits
    dcols_t = (rng.standard_normal((c * kh * kw, n * ho * wo)) * 10.0 ** rng.integers(-6, 6, (c * kh * kw, n * ho * wo))).astype(dtype)
    ours, theirs = np.zeros_like(x), np.zeros_like(x)
    I.col2im(dcols_t, ours, kh, kw, stride, dilation, ho, wo)
    I.col2im_numpy(dcols_t, theirs, kh, kw, stride, dilation, ho, wo)
    assert same_bits(ours, theirs)
    # adjoint of im2col: <im2col(x), D> == <x, col2im(D^T)>
    np.testing.assert_allclose((cols.astype(np.float64) * dcols_t.T).sum(), (x.astype(np.float64) * ours).sum(), rtol=1e-6)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("out_channels", [1, 6, 40])
def test_tiled_products_give_the_bits_of_im2col_then_matmul(geometry, out_channels):
    n, c, h, w, kh, kw, stride, dilation = geometry
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3 * n, c, h, w)).astype(np.float32)     # several blocks of pixels and tasks
    x[0, 0, 0, :3] = [np.inf, -0.0, 0.0]
    w2 = rng.standard_normal((out_channels, c * kh * kw)).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32)
    for b in (bias, None):
        out = CV.conv_forward(x, w2, b, kh, kw, stride, dilation)
        assert same_bits(out, CV.conv_forward_reference(x, w2, b, kh, kw, stride, dilation))
    g2 = (rng.standard_normal(out.shape) * 10.0 ** rng.integers(-4, 4, out.shape)).astype(np.float32)
    x[0, 0, 0, 0] = 1.0
    for layout in (x, np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)):
        ours = CV.conv_weight_grad(layout, g2, kh, kw, stride, dilation)
        assert same_bits(ours, CV.conv_weight_grad_reference(layout, g2, kh, kw, stride, dilation))
    # the input gradient: col2im of (g2 W)^T, and g2 with a negative zero
    g2z = g2.copy()
    g2z[0, 0] = -0.0
    dxp = CV.conv_input_grad(g2z, w2, x.shape, kh, kw, stride, dilation)
    assert same_bits(dxp, CV.conv_input_grad_reference(g2z, w2, x.shape, kh, kw, stride, dilation))
    # and what the products compute, in float64
    cols = I.im2col_numpy(x.astype(np.float64), kh, kw, stride, dilation)
    dcols = g2z.astype(np.float64) @ w2
    expected_dx = np.zeros(x.shape)
    ho, wo = I.windows(x, kh, kw, *stride, *dilation).shape[2:4]
    I.col2im_numpy(np.ascontiguousarray(dcols.T), expected_dx, kh, kw, stride, dilation, ho, wo)
    np.testing.assert_allclose(dxp, expected_dx, rtol=1e-4, atol=1e-5 * np.abs(expected_dx).max())
    expected = g2.T.astype(np.float64) @ cols
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_allclose(CV.conv_forward(x, w2, None, kh, kw, stride, dilation), cols @ w2.T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(64, 16, 14, 14), (3, 13, 5, 6), (1, 3, 2, 2), (2, 40, 3, 1)])
def test_channel_sums_give_the_bits_of_numpys_reductions(shape):
    """BatchNorm's statistics of a channels-last (N, C, H, W) view: NumPy's mean, centred values and
    variance, bit for bit, compiled and in the NumPy twins; a channel of negative zeros sums to +0;
    the element-wise passes round as NumPy's expressions."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-4, 4, shape)).astype(np.float32)
    x[:, 0] = -0.0
    view = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    rows = view.transpose(0, 2, 3, 1).reshape(-1, shape[1])
    sums = view.sum(axis=(0, 2, 3), dtype=np.float32)
    mean = view.mean(axis=(0, 2, 3), dtype=np.float32)
    centred = view - mean.reshape(1, -1, 1, 1)
    squares = (centred * centred).sum(axis=(0, 2, 3), dtype=np.float32)
    for channel_sums, centred_square_sums in ((CH.channel_sums, CH.centred_square_sums),
                                              (CH.channel_sums_numpy, CH.centred_square_sums_numpy)):
        assert same_bits(channel_sums(rows), sums)
        ours_centred, ours_squares = centred_square_sums(rows, mean)
        assert same_bits(ours_centred, centred.transpose(0, 2, 3, 1).reshape(rows.shape)) and same_bits(ours_squares, squares)
    np.testing.assert_allclose(sums, x.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-4 * np.abs(x).max())
    assert not np.signbit(CH.channel_sums(rows)[0])
    # the element-wise passes, against NumPy's expressions
    w, b, inv_std, m1, m2 = rng.standard_normal((5, shape[1])).astype(np.float32)
    compiled, numpys = CH.scale_shift_rows(rows, inv_std, w, b), CH.scale_shift_rows_numpy(rows, inv_std, w, b)
    assert all(same_bits(ours, theirs) for ours, theirs in zip(compiled, numpys))
    assert same_bits(compiled[1], rows * inv_std * w + b)
    gx = CH.batch_norm_grad_rows(rows, rows[::-1].copy(), m1, m2, inv_std)
    assert same_bits(gx, CH.batch_norm_grad_rows_numpy(rows, rows[::-1].copy(), m1, m2, inv_std))
    assert same_bits(gx, inv_std * ((rows - m1) - rows[::-1] * m2))
    # the backward's fused passes: NumPy's sums over the channels-last views, and its gradient formula
    g = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 3, shape)).astype(np.float32)
    g_view = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    g_rows, normed = g_view.transpose(0, 2, 3, 1).reshape(rows.shape), rows[::-1].copy()
    normed_view = normed.reshape(shape[0], shape[2], shape[3], shape[1]).transpose(0, 3, 1, 2)
    gn_view = g_view * w.reshape(1, -1, 1, 1)
    expected = [a.sum(axis=(0, 2, 3), dtype=np.float32) for a in (g_view, gn_view, gn_view * normed_view, g_view * normed_view)]
    for grad_sums in (CH.batch_norm_grad_sums, CH.batch_norm_grad_sums_numpy):
        assert all(same_bits(ours, theirs) for ours, theirs in zip(grad_sums(g_rows, normed, w), expected))
    for grad_rows in (CH.batch_norm_grad_scaled_rows, CH.batch_norm_grad_scaled_rows_numpy):
        assert same_bits(grad_rows(g_rows, w, normed, m1, m2, inv_std), inv_std * ((g_rows * w - m1) - normed * m2))


def test_batch_norm_of_a_convolution_keeps_numpys_bits():
    """batch_norm on a convolution's output (channels-last memory) goes through the channel sums and
    gives the bits and layouts of BatchNorm's formulas evaluated by NumPy on the same arrays."""
    rng = np.random.default_rng(6)
    x = np.ascontiguousarray(rng.standard_normal((8, 5, 6, 7)).astype(np.float32).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    g = np.ascontiguousarray(rng.standard_normal(x.shape).astype(np.float32).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    w, b = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    xt = mc.tensor(x, requires_grad=True)
    bn = mc.nn.BatchNorm2d(5)
    bn.weight.data[:], bn.bias.data[:] = w, b
    out = bn(xt)
    out.backward(mc.tensor(g))
    axes, shape = (0, 2, 3), (1, 5, 1, 1)
    mean = x.mean(axis=axes, dtype=np.float32)
    centred = x - mean.reshape(shape)
    var = (centred * centred).mean(axis=axes, dtype=np.float32)
    inv_std = (1 / np.sqrt(var + 1e-5)).astype(np.float32).reshape(shape)
    normed = centred * inv_std
    expected = normed * w.reshape(shape)
    expected += b.reshape(shape)
    gn = g * w.reshape(shape)
    dx = inv_std * (gn - gn.mean(axis=axes, keepdims=True) - normed * (gn * normed).mean(axis=axes, keepdims=True))
    assert same_bits(out.data, expected) and out.data.strides == expected.strides
    assert same_bits(xt.grad, dx) and same_bits(bn.weight.grad, (g * normed).sum(axis=axes)) and same_bits(bn.bias.grad, g.sum(axis=axes))
    assert same_bits(bn.running_mean.data, (0.1 * mean).astype(np.float32))
    assert same_bits(bn.running_var.data, (0.9 + 0.1 * var * (336 / 335)).astype(np.float32))


def test_an_empty_batch_goes_through():
    x = mc.tensor(np.zeros((0, 3, 8, 8), np.float32), requires_grad=True)
    conv = mc.nn.Conv2d(3, 4, 3, padding=1)
    out = F.max_pool2d(conv(x), 2)
    out.sum().backward()
    assert out.shape == (0, 4, 4, 4) and x.grad.shape == x.shape and not conv.weight.grad.any()


def pool_inputs(dtype):
    rng = np.random.default_rng(1)
    plain = rng.standard_normal((2, 3, 11, 12)).astype(dtype)
    ties = np.round(plain)
    nan = plain.copy()
    nan[nan > 1.0] = np.nan
    inf = plain.copy()
    inf[inf > 1.0], inf[inf < -1.0] = np.inf, -np.inf
    signed_zeros = np.where(plain > 0, np.zeros_like(plain), -np.zeros_like(plain))
    return {"plain": plain, "ties": ties, "nan": nan, "inf": inf, "signed zeros": signed_zeros}


@pytest.mark.parametrize("window", [(2, 2, 2, 2), (3, 3, 2, 2), (2, 3, 1, 2), (3, 3, 1, 1), (2, 2, 3, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_matches_numpy(window, dtype):
    kh, kw, sh, sw = window
    rng = np.random.default_rng(2)
    for name, x in pool_inputs(dtype).items():
        for layout in (x, np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)):
            out, arg = P.max_pool(layout, kh, kw, sh, sw)
            ref_out, ref_arg = P.max_pool_numpy(layout, kh, kw, sh, sw)
            assert same_bits(out, ref_out) and (arg == ref_arg).all(), name
            assert out.flags.c_contiguous
            g = (rng.standard_normal(out.shape) * 10.0 ** rng.integers(-6, 6, out.shape)).astype(dtype)
            ours, theirs = np.zeros_like(layout), np.zeros_like(layout)
            P.max_pool_backward(g, arg, ours, kh, kw, sh, sw)
            P.max_pool_backward_numpy(g, arg, theirs, kh, kw, sh, sw)
            assert same_bits(ours, theirs), name


def test_max_pool_by_hand():
    x = np.array([[[[1, 3, 3, 0], [2, np.nan, 5, 5], [0, 0, -1, 7], [-2, 0, 7, 4]]]], np.float32)
    out, arg = P.max_pool(x, 2, 2, 2, 2)
    assert np.isnan(out[0, 0, 0, 0]) and out[0, 0, 0, 1] == 5 and out[0, 0, 1, 0] == 0 and out[0, 0, 1, 1] == 7
    assert arg[0, 0].tolist() == [[3, 2], [0, 1]]   # the NaN, then the first of each tie
    dx = np.zeros_like(x)
    P.max_pool_backward(np.ones((1, 1, 2, 2), np.float32), arg, dx, 2, 2, 2, 2)
    assert dx[0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0]]
    x = np.array([[[[0, 9, 1], [2, 3, 4]]]], np.float32)   # overlapping windows share the 9
    out, arg = P.max_pool(x, 2, 2, 1, 1)
    dx = np.zeros_like(x)
    P.max_pool_backward(np.array([[[[0.5, 0.25]]]], np.float32), arg, dx, 2, 2, 1, 1)
    assert out[0, 0].tolist() == [[9, 9]] and dx[0, 0].tolist() == [[0, 0.75, 0], [0, 0, 0]]


@pytest.mark.parametrize("config", [dict(stride=1, padding=2), dict(stride=2, padding=1), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
                                    dict(stride=1, padding=1, groups=2)])
def test_conv2d_matches_the_formula(config):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 9, 8))
    groups = config.get("groups", 1)
    w = rng.standard_normal((6, 4 // groups, 3, 3))
    b = rng.standard_normal(6)
    xt, wt, bt = (mc.tensor(a, requires_grad=True, dtype=np.float64) for a in (x, w, b))
    out = F.conv2d(xt, wt, bt, **config)
    (sh, sw), (ph, pw) = (np.broadcast_to(config[key], 2) for key in ("stride", "padding"))
    dh, dw = np.broadcast_to(config.get("dilation", 1), 2)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    expected = np.empty(out.shape)
    for o in range(6):
        g0 = o // (6 // groups) * (4 // groups)
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                patch = xp[:, g0:g0 + 4 // groups, i * sh:i * sh + 2 * dh + 1:dh, j * sw:j * sw + 2 * dw + 1:dw]
                expected[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3)) + b[o]
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x_, w_, b_: F.conv2d(x_, w_, b_, **config), (xt, wt, bt))


NO_JIT_LAYERS = """
import sys
import numpy as np
import minitorch_compress as mc
from minitorch_compress import functional as F, nn
mc.manual_seed(0)
net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(4, 8, 3, stride=2, dilation=1, padding=2),
                    nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
x = mc.tensor(np.random.default_rng(0).standard_normal((2, 2, 13, 13)).astype(np.float32), requires_grad=True)
out = net(x)
(out * out).sum().backward()
np.savez(sys.argv[1], out=out.data, dx=x.grad, **{name: p.grad for name, p in net.named_parameters()})
"""


def test_layers_run_as_plain_python_with_the_same_bits(tmp_path):
    python, compiled = run_jit_off_and_on(NO_JIT_LAYERS, tmp_path)
    assert set(python) == set(compiled) and len(python) == 6
    for key in python:
        assert python[key].tobytes() == compiled[key].tobytes(), key
