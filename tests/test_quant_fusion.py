"""quant.fuse_modules and the fused modules (torch.ao.quantization.fuse_modules, torch.ao.nn.intrinsic)."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn, quant


def mlp():
    mc.manual_seed(0)
    return nn.Sequential(quant.QuantStub(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3), quant.DeQuantStub())


def cnn():
    mc.manual_seed(0)
    return nn.Sequential(quant.QuantStub(), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 3), quant.DeQuantStub())


def test_fuse_replaces_the_first_module_and_identities_the_rest():
    model = mlp()
    fused = quant.fuse_modules(model, [["1", "2"]])
    assert type(fused[1]) is quant.intrinsic.LinearReLU and type(fused[2]) is nn.Identity
    assert fused[1][0] is not model[1] and type(model[1]) is nn.Linear and type(model[2]) is nn.ReLU  # a copy
    assert [name for name, _ in fused.named_parameters()] == ["1.0.weight", "1.0.bias", "3.weight", "3.bias"]
    single = quant.fuse_modules(model, ["1", "2"])  # one group may be given as a flat list, as in PyTorch
    assert type(single[1]) is quant.intrinsic.LinearReLU
    same = quant.fuse_modules(model, [["1", "2"]], inplace=True)
    assert same is model and type(model[1]) is quant.intrinsic.LinearReLU


@pytest.mark.parametrize("make, group", [(mlp, ["1", "2"]), (cnn, ["1", "2"])])
def test_fused_float_model_computes_the_same_outputs(make, group):
    model = make()
    x = mc.rand(7, 6) if make is mlp else mc.rand(7, 1, 5, 5)
    fused = quant.fuse_modules(model, [group])
    np.testing.assert_array_equal(fused(x).data, model(x).data)  # the same operations in the same order


def test_fuse_nested_names_and_training_mode():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), nn.Linear(4, 2))
    model.eval()
    fused = quant.fuse_modules(model, [["0.0", "0.1"]])
    assert type(fused[0][0]) is quant.intrinsic.LinearReLU and type(fused[0][1]) is nn.Identity
    assert not fused[0][1].training  # the identities take the first module's mode


def test_hooks_move_to_the_fused_module():
    model = mlp()
    seen = []
    model[1].register_forward_pre_hook(lambda m, args: seen.append("pre"))
    model[2].register_forward_hook(lambda m, args, out: seen.append("post"))
    fused = quant.fuse_modules(model, [["1", "2"]])
    fused(mc.rand(2, 6))
    assert seen == ["pre", "post"]
    assert not fused[1][0].forward_pre_hooks() and not fused[1][1].forward_hooks()


def calibrated(model, x):
    model.qconfig = quant.default_qconfig
    prepared = quant.prepare(model)
    prepared(x)
    return prepared


def test_prepare_observes_the_fused_output_after_the_relu():
    x = mc.randn(64, 6)
    prepared = calibrated(quant.fuse_modules(mlp(), [["1", "2"]]), x)
    observer = prepared[1].activation_post_process
    assert not hasattr(prepared[1][0], "activation_post_process")  # one observer for the pair
    with mc.no_grad():
        after_relu = np.maximum(mlp()[1](x).data, 0)
    assert float(observer.min_val.data) == 0 and float(observer.max_val.data) == pytest.approx(after_relu.max())


def hidden_codes(qmodel, x):
    return qmodel[2](qmodel[1](qmodel[0](x)))


def test_quantized_fused_model_fills_the_code_range():
    x = mc.randn(256, 6)
    plain = quant.convert(calibrated(mlp(), x))
    fused = quant.convert(calibrated(quant.fuse_modules(mlp(), [["1", "2"]]), x))
    assert type(fused[1]) is quant.nn.LinearReLU
    q_plain, q_fused = hidden_codes(plain, x), hidden_codes(fused, x)
    # default_qconfig's activations use 0..127; unfused, the negative pre-ReLU values take part of it
    assert q_plain.q_zero_point() > 0 and q_plain.int_repr().data.max() <= 127
    assert q_fused.q_zero_point() == 0 and q_fused.int_repr().data.min() == 0 and q_fused.int_repr().data.max() == 127
    # the fused step is finer: it covers [0, max] instead of [min, max]
    assert q_fused.q_scale() < q_plain.q_scale()
    with mc.no_grad():
        exact = np.maximum(mlp()[1](x).data, 0)
    # the weights and inputs are rounded too, so compare the RMS errors against the float layer
    err_plain = np.sqrt(((q_plain.dequantize().data - exact) ** 2).mean())
    err_fused = np.sqrt(((q_fused.dequantize().data - exact) ** 2).mean())
    assert err_fused < err_plain


def test_quantized_linear_relu_matches_dequantize_relu_requantize():
    # the ReLU as a lower clamp of the codes equals quantizing relu(y) with the same scale and zero point
    x = mc.randn(128, 6)
    prepared = calibrated(quant.fuse_modules(mlp(), [["1", "2"]]), x)
    prepared[1].activation_post_process.min_val.data = np.array(-1.0, np.float32)  # force a zero point above 0 so the clamp matters
    qmodel = quant.convert(prepared)
    layer = qmodel[1]
    assert layer.zero_point > 0
    xq = qmodel[0](x)
    codes = layer(xq).int_repr().data
    assert codes.min() >= layer.zero_point
    unfused = quant.nn.Linear(6, 8)
    unfused.set_weight_bias(layer.weight(), layer.bias().data)
    unfused.scale, unfused.zero_point = layer.scale, layer.zero_point
    np.testing.assert_array_equal(codes, np.maximum(unfused(xq).int_repr().data, layer.zero_point))


def test_conv_relu_fused_quantizes_and_fills_the_range():
    x = mc.randn(16, 1, 5, 5)
    qmodel = quant.convert(calibrated(quant.fuse_modules(cnn(), [["1", "2"]]), x))
    assert type(qmodel[1]) is quant.nn.ConvReLU2d
    codes = qmodel[1](qmodel[0](x)).int_repr().data
    # the calibrated maximum is code 127; the rounded int8 product may land one step above, and the
    # codes are clamped to quint8's 0..255 as in PyTorch, not to the observer's 0..127
    assert qmodel[1].zero_point == 0 and codes.min() == 0 and 126 <= codes.max() <= 128


def test_qat_and_dynamic_on_a_fused_model():
    fused = quant.fuse_modules(mlp(), [["1", "2"]])
    fused.qconfig = quant.default_qat_qconfig
    prepared = quant.prepare_qat(fused)
    assert type(prepared[1][0]) is quant.qat.Linear and hasattr(prepared[1], "activation_post_process")
    prepared(mc.randn(32, 6))
    qmodel = quant.convert(prepared.eval())
    assert type(qmodel[1]) is quant.nn.LinearReLU and qmodel[1].zero_point == 0
    dynamic = quant.quantize_dynamic(quant.fuse_modules(mlp(), [["1", "2"]]))
    x = mc.randn(4, 6)
    assert (dynamic[1](x).data >= 0).all()


@pytest.mark.parametrize("groups, error, match", [
    ([["1", "3"]], ValueError, "cannot fuse modules \\(Linear, Linear\\)"),
    ([["2", "1"]], ValueError, "cannot fuse modules \\(ReLU, Linear\\)"),
    ([["1"]], ValueError, "cannot fuse modules \\(Linear\\)"),
    ([["1", "9"]], ValueError, "no submodule named '9'"),
    ([["1.weight", "2"]], ValueError, "no submodule named '1.weight'"),
    ([], ValueError, "non-empty"),
    ("12", TypeError, "list of submodule names"),
    ([["1", 2]], TypeError, "list of submodule names"),
])
def test_bad_input_is_reported(groups, error, match):
    with pytest.raises(error, match=match):
        quant.fuse_modules(mlp(), groups)


def test_fused_module_checks_its_parts():
    with pytest.raises(TypeError, match="LinearReLU fuses Linear, ReLU; got Conv2d, ReLU"):
        quant.intrinsic.LinearReLU(nn.Conv2d(1, 1, 1), nn.ReLU())
    with pytest.raises(TypeError, match="expected an nn.Module"):
        quant.fuse_modules("model", [["1", "2"]])


def _trained_bn(bn, channels, seed):
    # running statistics and affine parameters away from their defaults
    rng = np.random.default_rng(seed)
    bn.running_mean.data[...] = rng.standard_normal(channels)
    bn.running_var.data[...] = rng.random(channels) + 0.5
    bn.weight.data[...] = rng.standard_normal(channels)
    bn.bias.data[...] = rng.standard_normal(channels)
    return bn


def test_conv_bn_relu_folds_into_the_convolution():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _trained_bn(nn.BatchNorm2d(4), 4, 0), nn.ReLU(),
                          nn.Conv2d(4, 2, 1, bias=False), _trained_bn(nn.BatchNorm2d(2), 2, 1)).eval()
    fused = quant.fuse_modules(model, [["0", "1", "2"], ["3", "4"]])
    assert isinstance(fused[0], quant.intrinsic.ConvReLU2d) and isinstance(fused[3], nn.Conv2d)
    assert isinstance(fused[1], nn.Identity) and isinstance(fused[4], nn.Identity)
    x = mc.randn(2, 3, 5, 5)
    np.testing.assert_allclose(fused(x).data, model(x).data, rtol=1e-5, atol=1e-5)
    # the folding formula, by hand for one output channel
    conv, bn = model[0], model[1]
    s = bn.weight.data[2] / np.sqrt(bn.running_var.data[2] + bn.eps)
    np.testing.assert_allclose(fused[0][0].weight.data[2], conv.weight.data[2] * s, rtol=1e-6)
    np.testing.assert_allclose(fused[0][0].bias.data[2], (conv.bias.data[2] - bn.running_mean.data[2]) * s + bn.bias.data[2],
                               rtol=1e-5)
    linear = nn.Sequential(nn.Linear(5, 3), _trained_bn(nn.BatchNorm1d(3), 3, 2)).eval()
    folded = quant.fuse_modules(linear, ["0", "1"])
    v = mc.randn(4, 5)
    np.testing.assert_allclose(folded(v).data, linear(v).data, rtol=1e-5, atol=1e-5)


def test_bn_fusion_needs_eval_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="eval mode"):
        quant.fuse_modules(model, ["0", "1"])
    with pytest.raises(ValueError, match="cannot fuse modules"):
        quant.fuse_modules(nn.Sequential(nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1)).eval(), ["0", "1"])


def test_static_int8_after_conv_bn_relu_fusion_uses_the_whole_range():
    mc.manual_seed(3)
    model = nn.Sequential(quant.QuantStub(), nn.Conv2d(1, 4, 3, padding=1), _trained_bn(nn.BatchNorm2d(4), 4, 3),
                          nn.ReLU(), quant.DeQuantStub()).eval()
    fused = quant.fuse_modules(model, ["1", "2", "3"])
    fused.qconfig = quant.get_default_qconfig()
    prepared = quant.prepare(fused)
    x = mc.rand(16, 1, 6, 6)
    prepared(x)
    int8 = quant.convert(prepared)
    np.testing.assert_allclose(int8(x).data, model(x).data, atol=0.05 * float(np.abs(model(x).data).max()))
    codes = int8[1](int8[0](x)).int_repr().data
    # observed after the ReLU, the output codes use the whole range (0..127 with the x86 default reduce_range)
    assert codes.min() == 0 and codes.max() >= 120
