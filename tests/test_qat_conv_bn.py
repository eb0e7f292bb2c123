"""QAT with Conv+BatchNorm as PyTorch: fuse_modules_qat keeps the BatchNorm (intrinsic.ConvBn2d),
prepare_qat trains it in qat.ConvBn2d (weight fake-quantized as it will be folded), convert folds it."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn, quant


def conv_bn(relu=True):
    mc.manual_seed(0)
    layers = [quant.QuantStub(), nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)] + ([nn.ReLU()] if relu else [])
    return nn.Sequential(*layers, quant.DeQuantStub())


def test_fuse_modules_qat_keeps_the_batch_norm():
    model = conv_bn()
    fused = quant.fuse_modules_qat(model, ["1", "2", "3"])
    assert type(fused[1]) is quant.intrinsic.ConvBnReLU2d and type(fused[2]) is nn.Identity
    assert type(quant.fuse_modules_qat(conv_bn(False), ["1", "2"])[1]) is quant.intrinsic.ConvBn2d
    x = mc.randn(8, 2, 5, 5)
    np.testing.assert_array_equal(fused(x).data, model(x).data)     # training mode: batch statistics, same ops
    with pytest.raises(ValueError, match="Linear and BatchNorm1d"):
        quant.fuse_modules_qat(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), ["0", "1"])
    with pytest.raises(ValueError, match="affine"):
        quant.fuse_modules_qat(nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, affine=False)), ["0", "1"])


def _prepared(relu=True):
    model = conv_bn(relu)
    names = ["1", "2", "3"] if relu else ["1", "2"]
    model = quant.fuse_modules_qat(model, names)
    model.qconfig = quant.get_default_qat_qconfig()
    return quant.prepare_qat(model)


@pytest.mark.parametrize("training", [True, False])
def test_without_fake_quant_qat_conv_bn_is_conv_then_bn(training):
    prepared = _prepared(relu=False)
    reference = conv_bn(relu=False)                       # the same initial weights
    layer = prepared[1]
    assert type(layer) is quant.qat.ConvBn2d and layer.weight is not reference[1].weight
    rng = np.random.default_rng(0)
    for bn in (layer.bn, reference[2]):                   # running statistics and affine away from 1 and 0
        bn.running_mean.data[...] = [0.1, -0.2, 0.3, 0.0]
        bn.running_var.data[...] = [0.5, 2.0, 1.5, 0.8]
        bn.weight.data[...] = [1.5, -0.7, 0.4, 2.0]
        bn.bias.data[...] = [0.1, 0.2, -0.3, 0.0]
    prepared.apply(quant.disable_fake_quant)
    prepared.train(training)
    reference.train(training)
    x = mc.tensor(rng.standard_normal((8, 2, 5, 5)).astype(np.float32))
    np.testing.assert_allclose(prepared(x).data, reference(x).data, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.bn.running_mean.data, reference[2].running_mean.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bn.running_var.data, reference[2].running_var.data, rtol=1e-5)


def test_qat_conv_bn_weight_is_fake_quantized_after_scaling():
    prepared = _prepared(relu=False).eval()
    layer = prepared[1]
    layer.bn.running_var.data[...] = [0.5, 2.0, 1.5, 0.8]
    layer.bn.weight.data[...] = [1.5, -0.7, 0.4, 2.0]
    x = mc.randn(3, 2, 5, 5)
    prepared(x)                                           # the weight observer sees s W once, then stays
    prepared.apply(quant.disable_observer)
    y = layer.forward(x).data                             # without the output's fake quantizer (a hook)
    # PyTorch's formula in eval mode: the folded convolution with fq(s W), s = gamma / sqrt(var + eps)
    s = layer.bn.weight.data / np.sqrt(layer.bn.running_var.data + layer.bn.eps)
    folded = layer.to_float()
    np.testing.assert_allclose(folded.weight.data, layer.weight.data * s.reshape(-1, 1, 1, 1), rtol=1e-6)
    bn = layer.bn                                         # s W in float32, as the forward computes it
    s32 = bn.weight.data / np.sqrt(bn.running_var.data + np.float32(bn.eps))
    fq_w = layer.weight_fake_quant(mc.tensor(layer.weight.data * s32.reshape(-1, 1, 1, 1))).data
    expected = mc.functional.conv2d(x, fq_w, folded.bias, 1, 1).data
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_qat_then_convert_matches_the_folded_fake_quantized_model_within_a_step():
    prepared = _prepared(relu=True)
    opt = mc.optim.SGD(prepared.parameters(), lr=0.05)
    rng = np.random.default_rng(1)
    x = mc.tensor(rng.standard_normal((16, 2, 5, 5)).astype(np.float32))
    for _ in range(5):                                    # a few QAT steps move weights and statistics
        loss = (prepared(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    prepared.apply(quant.disable_observer)
    prepared.eval()
    simulated = prepared(x).data
    int8 = quant.convert(prepared)
    assert type(int8[1]) is quant.nn.ConvReLU2d
    out = int8(x).data
    step = int8[1].scale
    assert np.abs(out - simulated).max() <= step * 1.001   # at most one output code apart
    assert np.mean(out == simulated) > 0.95


def test_int8_conv_bn_relu_after_qat_uses_the_whole_output_range():
    prepared = _prepared(relu=True)
    x = mc.tensor(np.random.default_rng(2).standard_normal((16, 2, 5, 5)).astype(np.float32))
    prepared.eval()                                       # running statistics, as after convert
    prepared(x)                                           # the first batch sets the observed range
    prepared.apply(quant.disable_observer)
    int8 = quant.convert(prepared)
    layer = int8[1]
    codes = layer(int8[0](x)).int_repr().data
    # observed after the fused ReLU, the output's zero point is 0 and the codes reach the top of the range
    observer = prepared[1].activation_post_process
    assert layer.zero_point == 0 and codes.min() == 0
    assert codes.max() >= observer.quant_max - 1, (codes.max(), observer.quant_max)
