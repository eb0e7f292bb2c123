"""The convolutional track's layers: grouped and dilated convolutions, average pooling, BatchNorm.

Forward passes against plain loops written from the definitions, gradients against finite
differences (float64), running statistics against PyTorch's documented update rules.
"""
import numpy as np
import pytest

import minitorch_compress as mc
import minitorch_compress.functional as F
from minitorch_compress import nn
from minitorch_compress.gradcheck import gradcheck


def t64(*shape, seed=0):
    return mc.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True, dtype=np.float64)


def conv_by_loops(x, w, b, stride, pad, dil, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1, (wd + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for oc in range(o):
        g = oc // (o // groups)
        for i in range(ho):
            for j in range(wo):
                for cc in range(cg):
                    for u in range(kh):
                        for v in range(kw):
                            out[:, oc, i, j] += xp[:, g * cg + cc, i * stride + u * dil, j * stride + v * dil] * w[oc, cc, u, v]
        out[:, oc] += b[oc]
    return out


@pytest.mark.parametrize("c, o, groups, k, stride, pad, dil", [
    (4, 6, 2, 3, 1, 1, 1),     # two groups
    (3, 6, 3, 3, 2, 1, 1),     # depthwise with depth multiplier 2
    (4, 4, 4, 3, 1, 1, 1),     # depthwise
    (2, 3, 1, 2, 1, 0, 3),     # dilated
    (4, 4, 2, 3, 2, 2, 2),     # grouped, strided, dilated
])
def test_grouped_and_dilated_conv2d(c, o, groups, k, stride, pad, dil):
    x, w, b = t64(2, c, 7, 8), t64(o, c // groups, k, k, seed=1), t64(o, seed=2)
    out = F.conv2d(x, w, b, stride, pad, dil, groups)
    np.testing.assert_allclose(out.data, conv_by_loops(x.data, w.data, b.data, stride, pad, dil, groups), atol=1e-12)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, pad, dil, groups), [x, w, b])


def test_grouped_conv_is_separate_convolutions_of_the_groups():
    x, w = t64(2, 4, 6, 6), t64(6, 2, 3, 3, seed=1)
    whole = F.conv2d(x, w, groups=2).data
    halves = [F.conv2d(mc.tensor(x.data[:, 2 * g:2 * g + 2], dtype=np.float64),
                       mc.tensor(w.data[3 * g:3 * g + 3], dtype=np.float64)).data for g in range(2)]
    np.testing.assert_allclose(whole, np.concatenate(halves, axis=1), atol=1e-12)


def test_conv2d_module_shapes_and_errors():
    depthwise = nn.Conv2d(8, 16, 3, padding=1, groups=8)
    assert depthwise.weight.shape == (16, 1, 3, 3)
    assert depthwise(mc.randn(2, 8, 5, 5)).shape == (2, 16, 5, 5)
    assert "groups=8" in repr(depthwise) and "dilation" not in repr(depthwise)
    with pytest.raises(ValueError, match="divisible by groups=4"):
        nn.Conv2d(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="groups must be a positive int"):
        nn.Conv2d(4, 4, 3, groups=0)
    with pytest.raises(ValueError, match="divisible by groups"):
        F.conv2d(mc.randn(1, 6, 5, 5), mc.randn(4, 3, 3, 3), groups=4)
    with pytest.raises(ValueError, match="input channels"):
        F.conv2d(mc.randn(1, 4, 5, 5), mc.randn(4, 4, 3, 3), groups=2)   # weight should have 2 input channels


def test_avg_pool2d():
    x = t64(2, 3, 6, 7)
    out = F.avg_pool2d(x, 2).data
    expected = x.data[:, :, :6, :6].reshape(2, 3, 3, 2, 3, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(out, expected, atol=1e-12)
    padded = F.avg_pool2d(x, 3, stride=2, padding=1).data   # zeros counted, as count_include_pad=True
    xp = np.pad(x.data, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert np.isclose(padded[1, 2, 0, 0], xp[1, 2, 0:3, 0:3].sum() / 9) and np.isclose(padded[0, 1, 1, 2], xp[0, 1, 2:5, 4:7].mean())
    assert gradcheck(lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), [x])
    assert nn.AvgPool2d(2)(x).shape == (2, 3, 3, 3)
    with pytest.raises(ValueError, match="padding"):
        F.avg_pool2d(x, 2, padding=2)


def test_adaptive_avg_pool2d_bins_as_pytorch():
    x = t64(2, 3, 5, 7)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, 1).data[..., 0, 0], x.data.mean(axis=(2, 3)), atol=1e-12)
    out = F.adaptive_avg_pool2d(x, (3, 2)).data
    # PyTorch's bins for 5 -> 3 rows: [0, 2), [1, 4), [3, 5); for 7 -> 2 columns: [0, 4), [3, 7)
    rows, cols = [(0, 2), (1, 4), (3, 5)], [(0, 4), (3, 7)]
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            np.testing.assert_allclose(out[:, :, i, j], x.data[:, :, r0:r1, c0:c1].mean(axis=(2, 3)), atol=1e-12)
    assert gradcheck(lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [x])
    assert nn.AdaptiveAvgPool2d(1)(x).shape == (2, 3, 1, 1)


def test_batch_norm_hand_worked():
    # one channel, values 1..4: mean 2.5, biased variance 1.25 normalises, unbiased 5/3 is tracked
    bn = nn.BatchNorm1d(1)
    out = bn(mc.tensor([[1.0], [2.0], [3.0], [4.0]]))
    np.testing.assert_allclose(out.data[:, 0], (np.arange(1, 5) - 2.5) / np.sqrt(1.25 + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(bn.running_mean.data, [0.1 * 2.5], rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.data, [0.9 + 0.1 * 5 / 3], rtol=1e-6)
    assert int(bn.num_batches_tracked.data) == 1
    bn.eval()   # running statistics now
    np.testing.assert_allclose(bn(mc.tensor([[1.0]])).data, [[(1 - 0.25) / np.sqrt(0.9 + 0.5 / 3 + 1e-5)]], rtol=1e-6)


def test_batch_norm_momentum_none_is_a_cumulative_average():
    bn = nn.BatchNorm2d(2, momentum=None)
    batches = [mc.randn(3, 2, 4, 4) * (i + 1) + i for i in range(3)]
    for x in batches:
        bn(x)
    np.testing.assert_allclose(bn.running_mean.data, np.mean([x.data.mean(axis=(0, 2, 3)) for x in batches], axis=0), rtol=1e-5)


@pytest.mark.parametrize("shape", [(6, 3), (5, 3, 4), (4, 3, 3, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients(shape, training):
    x, w, b = t64(*shape), t64(3, seed=1), t64(3, seed=2)
    mean, var = np.random.default_rng(3).standard_normal(3), np.random.default_rng(4).random(3) + 0.5
    # a copy per call: training updates the running statistics in place
    assert gradcheck(lambda x, w, b: F.batch_norm(x, mean.copy(), var.copy(), w, b, training=training), [x, w, b])


def test_batch_norm_modules():
    bn = nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    x = mc.randn(8, 4, 3, 3) * 3 + 2
    y = bn(x).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)
    free = nn.BatchNorm1d(4, affine=False, track_running_stats=False).eval()
    assert free.weight is None and free.running_mean is None
    np.testing.assert_allclose(free(x.reshape(8, 4, 9)).data.mean(axis=(0, 2)), 0, atol=1e-5)   # batch stats in eval too
    with pytest.raises(ValueError, match="4-D input"):
        bn(mc.randn(2, 4))
    with pytest.raises(ValueError, match="3 channels"):
        bn(mc.randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(4)(mc.randn(1, 4))
    double = nn.BatchNorm2d(4).double()
    assert double.running_var.dtype == np.float64 and double.num_batches_tracked.dtype == np.int64


def test_identity_ignores_constructor_arguments():
    x = mc.randn(2, 3)
    assert nn.Identity(54, unused_argument=0.1)(x) is x


def test_tools_refuse_grouped_convolutions_they_do_not_support_yet():
    from minitorch_compress import prune, quant
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.ReLU(), nn.Conv2d(4, 2, 1))
    with pytest.raises(ValueError, match="groups=1"):
        prune.thin(model)
    float_model = nn.Sequential(quant.QuantStub(), nn.Conv2d(4, 4, 3, groups=2), quant.DeQuantStub())
    float_model.qconfig = quant.get_default_qconfig()
    prepared = quant.prepare(float_model.eval())
    prepared(mc.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="groups=1"):
        quant.convert(prepared)


def test_qat_conv_keeps_groups_and_dilation():
    from minitorch_compress import quant
    conv = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2)
    conv.qconfig = quant.get_default_qat_qconfig()
    qat = quant.qat.Conv2d.from_float(conv)
    x = mc.randn(2, 4, 6, 6)
    assert qat(x).shape == conv(x).shape == (2, 4, 6, 6)
    fq = qat.weight_fake_quant(conv.weight).data
    np.testing.assert_array_equal(qat(x).data, F.conv2d(x, fq, conv.bias, 1, 2, 2, 2).data)


@pytest.mark.parametrize("c_in, c_out, stride", [(3, 3, 1), (3, 5, 2)])
def test_basic_block_is_its_formula(c_in, c_out, stride):
    from minitorch_compress.blocks import BasicBlock
    mc.manual_seed(0)
    block = BasicBlock(c_in, c_out, stride).double()
    projection = stride != 1 or c_in != c_out
    assert isinstance(block.shortcut, nn.Sequential if projection else nn.Identity)
    x = t64(2, c_in, 6, 6)

    def formula(training):   # relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), from copies of the statistics
        def bn(layer, h):
            return F.batch_norm(h, layer.running_mean.data.copy(), layer.running_var.data.copy(),
                                layer.weight, layer.bias, training)
        h = F.relu(bn(block.bn1, F.conv2d(x, block.conv1.weight, None, stride, 1)))
        h = bn(block.bn2, F.conv2d(h, block.conv2.weight, None, 1, 1))
        short = bn(block.shortcut[1], F.conv2d(x, block.shortcut[0].weight, None, stride)) if projection else x
        return F.relu(h + short).data

    for training in (True, False, True):
        expected = formula(training)
        np.testing.assert_allclose(block.train(training)(x).data, expected, atol=1e-12)
    assert block(x).shape == (2, c_out, 6 // stride, 6 // stride)
    assert gradcheck(lambda x: block.eval()(x), [x])


def test_efficient_blocks_count_what_their_docstrings_say():
    from minitorch_compress import metrics
    from minitorch_compress.blocks import DepthwiseSeparable, Fire, InvertedResidual
    x = mc.randn(2, 8, 6, 6)
    ci, co, hw = 8, 16, 36

    def bn_params(*channels):
        return 2 * sum(channels)
    ds = DepthwiseSeparable(ci, co)
    assert ds(x).shape == (2, co, 6, 6)
    assert metrics.count_parameters(ds) == 9 * ci + ci * co + bn_params(ci, co)
    assert metrics.flops(ds, x)[0] == (9 * ci + ci * co) * hw
    s, e1, e3 = 4, 6, 10
    fire = Fire(ci, s, e1, e3)
    assert fire(x).shape == (2, e1 + e3, 6, 6)
    assert metrics.count_parameters(fire) == ci * s + s * e1 + 9 * s * e3 + s + e1 + e3
    assert metrics.flops(fire, x)[0] == (ci * s + s * e1 + 9 * s * e3) * hw
    for t in (1, 6):
        block = InvertedResidual(ci, ci, 1, t)
        hidden = t * ci
        assert block.use_residual and block(x).shape == x.shape
        expected = hidden * (ci + 9 + ci) - (ci * ci if t == 1 else 0)
        assert metrics.count_parameters(block) == expected + bn_params(*([hidden] * (1 if t == 1 else 2)), ci)
        assert metrics.flops(block, x)[0] == expected * hw
    strided = InvertedResidual(ci, co, 2)
    assert not strided.use_residual and strided(x).shape == (2, co, 3, 3)


def test_inverted_residual_adds_its_input_and_relu6():
    from minitorch_compress.blocks import InvertedResidual
    np.testing.assert_array_equal(F.relu6(mc.tensor([-1.0, 3.0, 7.0])).data, [0, 3, 6])
    block = InvertedResidual(4, 4, 1, 2).eval()
    x = mc.randn(1, 4, 5, 5)
    np.testing.assert_allclose(block(x).data, (block.layers(x) + x).data)
    x64 = t64(1, 4, 4, 4)
    assert gradcheck(lambda x: block.double()(x), [x64])
