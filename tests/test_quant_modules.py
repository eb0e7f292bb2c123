"""quant.nn: the int8 layers against float references computed from their own integers."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import kernels, nn, quant
from minitorch_compress.quant.modules import choose_qparams

F32 = np.float32


def calibrated_layer(per_channel=False, seed=0):
    """A converted QuantStub -> Linear(16, 8) -> DeQuantStub, its float model and its calibration data."""
    mc.manual_seed(seed)
    model = nn.Sequential(quant.QuantStub(), nn.Linear(16, 8), quant.DeQuantStub())
    model.qconfig = quant.default_per_channel_qconfig if per_channel else quant.default_qconfig
    prepared = quant.prepare(model)
    data = mc.randn(96, 16)
    for i in range(0, 96, 32):
        prepared(data[i:i + 32])
    return quant.convert(prepared), model, data


def reference_requantized(qlinear, x_q):
    """Dequantize input and weight, compute in float64 with the int32-quantized bias, quantize the output."""
    x = x_q.dequantize().data.astype(np.float64)
    w = qlinear.weight().dequantize().data.astype(np.float64)
    bias_scale = x_q.q_scale() * np.asarray(qlinear._w_scale, np.float64)
    q_bias = np.rint(qlinear.bias().data / bias_scale)
    y = x @ w.T + q_bias * bias_scale
    q = np.rint(y / qlinear.scale) + qlinear.zero_point
    return np.clip(q, qlinear.quant_min, qlinear.quant_max)


@pytest.mark.parametrize("per_channel", [False, True])
def test_quantized_linear_equals_dequantize_float_requantize(per_channel):
    qmodel, _, _ = calibrated_layer(per_channel)
    quantize, qlinear = qmodel[0], qmodel[1]
    assert type(qlinear) is quant.nn.Linear
    assert qlinear.weight().qscheme() == ("per_channel_affine" if per_channel else "per_tensor_affine")
    x_q = quantize(mc.randn(200, 16))
    out = qlinear(x_q)
    assert isinstance(out, quant.QTensor) and out.dtype == "quint8" and out.shape == (200, 8)
    diff = np.abs(out.int_repr().data.astype(int) - reference_requantized(qlinear, x_q))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # only float rounding at exact .5 ties may differ


def test_quantized_linear_accumulates_exactly_on_the_int8_kernel():
    qmodel, _, _ = calibrated_layer()
    qlinear = qmodel[1]
    x_q = qmodel[0](mc.randn(5, 16)).int_repr().data
    codes = qlinear.weight().int_repr().data
    exact = x_q.astype(np.int64) @ codes.astype(np.int64).T
    np.testing.assert_array_equal(kernels.int8_linear(x_q, qlinear._packed), exact)


def test_converted_model_error_is_within_the_rounding_bound():
    # x and W are each off by at most half a step: |x^W^T - xW^T| <= s_x/2 sum|W| + s_w/2 sum|x| + K s_x s_w/4;
    # the int32 bias is off by at most s_x s_w / 2 and the output rounding by s_y / 2.
    qmodel, model, data = calibrated_layer()
    with mc.no_grad():
        expected = model(data).data.astype(np.float64)
    s_x, s_w, s_y = qmodel[0].scale, qmodel[1].weight().q_scale(), qmodel[1].scale
    bound = (s_x / 2 * np.abs(model[1].weight.data).sum(axis=1) + s_w / 2 * np.abs(data.data).sum(axis=1, keepdims=True)
             + 16 * s_x * s_w / 4 + s_x * s_w / 2 + s_y / 2)
    error = np.abs(qmodel(data).data - expected)
    assert (error <= bound * (1 + 1e-5)).all()
    assert error.max() > s_y / 4  # the bound is not vacuous: quantization does change the outputs


def test_int8_model_matches_its_fake_quant_twin_to_one_step():
    mc.manual_seed(0)
    model = nn.Sequential(quant.QuantStub(), nn.Linear(16, 8), quant.DeQuantStub())
    model.qconfig = quant.default_qat_qconfig
    twin = quant.prepare_qat(model)
    for _ in range(3):
        twin(mc.randn(32, 16))
    twin.apply(quant.disable_observer)
    qmodel = quant.convert(twin)
    # the twin clamps codes to its fake quantizers' 0..127; the int8 model to quint8's 0..255, as
    # PyTorch's Quantize and quantized layers do. So: inputs inside the input's 0..127, and outputs
    # clamped alike
    s_x, z_x = qmodel[0].scale, qmodel[0].zero_point
    x = mc.tensor(np.clip(mc.randn(300, 16).data, -z_x * s_x, (127 - z_x) * s_x))
    with mc.no_grad():
        fake = twin(x).data
    step, zero_point = qmodel[1].scale, qmodel[1].zero_point
    assert (qmodel[1](qmodel[0](x)).int_repr().data > 127).any()
    int8_in_twin_range = np.clip(qmodel(x).data, -zero_point * step, (127 - zero_point) * step)
    assert np.abs(int8_in_twin_range - fake).max() <= step * (1 + 1e-5)


def test_quantized_relu_keeps_scale_and_clamps_at_the_zero_point():
    q = quant.quantize_per_tensor(mc.tensor([-1.0, -0.1, 0.0, 0.4]), 0.1, 3, "quint8")
    out = quant.nn.ReLU()(q)
    np.testing.assert_array_equal(out.int_repr().data, [3, 3, 3, 7])
    assert (out.q_scale(), out.q_zero_point()) == (0.1, 3)
    np.testing.assert_array_equal(quant.nn.ReLU()(mc.tensor([-1.0, 2.0])).data, [0.0, 2.0])


def test_choose_qparams_by_hand():
    # scale = 4/255; zero point from min = 0 + 63.75 (smaller error than from max) -> 64
    scale, zero_point = choose_qparams(-1.0, 3.0)
    assert scale == pytest.approx(4 / 255, rel=1e-15) and zero_point == 64
    assert choose_qparams(-1.0, 3.0, reduce_range=True) == (pytest.approx(4 / 127, rel=1e-15), 32)
    assert choose_qparams(0.0, 0.0) == (0.1, 0)                      # an all-zero batch
    assert choose_qparams(2.0, 5.0) == (pytest.approx(5 / 255), 0)  # widened to include 0
    scale, zero_point = choose_qparams(0.0, 1e-6)                   # tiny: raised to float16's smallest normal
    assert scale == pytest.approx(6.1e-5, rel=1e-6) and zero_point == 0


def test_dynamic_linear_matches_its_integer_reference():
    mc.manual_seed(0)
    layer = nn.Linear(16, 4)
    dynamic = quant.nn.DynamicLinear.from_float(layer)
    x = mc.randn(10, 16)
    scale, zero_point = choose_qparams(x.data.min(), x.data.max(), reduce_range=True)
    x_q = np.clip(np.rint(x.data * (F32(1) / F32(scale))) + zero_point, 0, 127)
    w = dynamic.weight()
    assert w.qscheme() == "per_tensor_affine" and w.q_zero_point() == 0
    assert w.q_scale() == pytest.approx(np.abs(layer.weight.data).max() / 127.5, rel=1e-6)
    acc = (x_q - zero_point) @ w.int_repr().data.astype(np.float64).T
    expected = acc * F32(scale) * F32(w.q_scale()) + layer.bias.data
    np.testing.assert_allclose(dynamic(x).data, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dynamic(x).data, layer(x).data, atol=0.05)


def test_layer_input_errors():
    qmodel, _, _ = calibrated_layer()
    with pytest.raises(TypeError, match="QuantStub"):
        qmodel[1](mc.randn(2, 16))
    with pytest.raises(ValueError, match="in_features=16"):
        qmodel[1](qmodel[0](mc.randn(2, 15)))
    with pytest.raises(TypeError, match="QTensor"):
        qmodel[2](mc.randn(2, 8))
    with pytest.raises(TypeError, match="float Tensor"):
        quant.nn.DynamicLinear(4, 2)(qmodel[0](mc.randn(2, 4)))
    codes = quant.quantize_per_tensor(mc.randn(3, 4), 0.1, 0, "qint8")
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        quant.nn.Linear(4, 2).set_weight_bias(codes, None)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        quant.nn.Linear(4, 3).set_weight_bias(codes, np.zeros(2))
    with pytest.raises(TypeError, match="qint8"):
        quant.nn.Linear(4, 3).set_weight_bias(mc.randn(3, 4), None)


@pytest.mark.parametrize("per_channel", [False, True])
def test_quantized_conv2d_equals_dequantize_float_requantize(per_channel):
    mc.manual_seed(0)
    model = nn.Sequential(quant.QuantStub(), nn.Conv2d(3, 4, 3, stride=2, padding=1), quant.DeQuantStub())
    model.qconfig = quant.default_per_channel_qconfig if per_channel else quant.default_qconfig
    prepared = quant.prepare(model)
    images = mc.randn(6, 3, 9, 9)
    prepared(images)
    qmodel = quant.convert(prepared)
    qconv = qmodel[1]
    assert type(qconv) is quant.nn.Conv2d and qconv.weight().shape == (4, 3, 3, 3)
    x_q = qmodel[0](images)
    out = qconv(x_q)
    assert out.shape == (6, 4, 5, 5) and out.dtype == "quint8"
    # reference: float64 convolution of the dequantized input and weight, int32-quantized bias, requantized
    bias_scale = x_q.q_scale() * np.asarray(qconv._w_scale, np.float64)
    q_bias = np.rint(qconv.bias().data / bias_scale)
    y = mc.functional.conv2d(mc.tensor(x_q.dequantize().data, dtype=np.float64),
                             mc.tensor(qconv.weight().dequantize().data, dtype=np.float64),
                             mc.tensor(q_bias * bias_scale, dtype=np.float64), 2, 1).data
    expected = np.clip(np.rint(y / qconv.scale) + qconv.zero_point, qconv.quant_min, qconv.quant_max)
    diff = np.abs(out.int_repr().data.astype(int) - expected)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_pooling_and_flatten_work_on_the_codes():
    q = quant.quantize_per_tensor(mc.tensor(np.arange(16.0).reshape(1, 1, 4, 4) - 4), 0.5, 8, "quint8")
    pooled = quant.nn.MaxPool2d(2)(q)
    np.testing.assert_array_equal(pooled.dequantize().data, [[[[1.0, 3.0], [9.0, 11.0]]]])
    assert (pooled.q_scale(), pooled.q_zero_point()) == (0.5, 8)
    flat = quant.nn.Flatten()(pooled)
    assert flat.shape == (1, 4) and flat.q_scale() == 0.5
    np.testing.assert_array_equal(quant.nn.MaxPool2d(2)(q.dequantize()).data, pooled.dequantize().data)


def calibrated_cnn(per_channel, seed):
    """A converted QuantStub -> Conv2d -> ReLU -> Flatten -> Linear -> DeQuantStub, calibrated on data drawn with ``seed``."""
    mc.manual_seed(seed)
    model = nn.Sequential(quant.QuantStub(), nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(27, 4), quant.DeQuantStub())
    model.qconfig = quant.default_per_channel_qconfig if per_channel else quant.default_qconfig
    prepared = quant.prepare(model)
    prepared(mc.randn(16, 2, 5, 5))
    return quant.convert(prepared)


def assert_round_trip(model, fresh, x, path):
    """``fresh`` computes something else than ``model`` until it loads ``model``'s saved state, then the same bits."""
    mc.save(model.state_dict(), path)
    assert not np.array_equal(fresh(x).data, model(x).data)
    fresh.load_state_dict(mc.load(path))
    np.testing.assert_array_equal(fresh(x).data, model(x).data)


@pytest.mark.parametrize("per_channel", [False, True])
def test_static_model_round_trips_through_save_and_load(tmp_path, per_channel):
    qmodel, fresh = calibrated_cnn(per_channel, seed=0), calibrated_cnn(per_channel, seed=1)
    state = qmodel.state_dict()
    layer_keys = ["weight_int8", "weight_scale", "weight_zero_point", "bias", "scale", "zero_point"]
    assert list(state) == ["0.scale", "0.zero_point"] + [f"{i}.{k}" for i in (1, 4) for k in layer_keys]
    assert state["1.weight_int8"].dtype == np.int8 and state["1.weight_int8"].shape == (3, 2, 3, 3)
    assert state["1.weight_scale"].shape == state["1.weight_zero_point"].shape == ((3,) if per_channel else ())
    assert_round_trip(qmodel, fresh, mc.randn(7, 2, 5, 5), tmp_path / "static.npz")
    assert fresh[4].weight().qscheme() == qmodel[4].weight().qscheme()


@pytest.mark.parametrize("per_channel", [False, True])
def test_dynamic_model_round_trips_through_save_and_load(tmp_path, per_channel):
    qconfig = quant.QConfig(activation=None, weight=quant.default_per_channel_weight_observer if per_channel
                            else quant.default_weight_observer)

    def dynamic(seed):
        mc.manual_seed(seed)
        return quant.quantize_dynamic(nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4, bias=False)),
                                      {nn.Linear: qconfig})
    qmodel, fresh = dynamic(0), dynamic(1)
    assert list(qmodel.state_dict()) == ["0.weight_int8", "0.weight_scale", "0.weight_zero_point", "0.bias",
                                         "2.weight_int8", "2.weight_scale", "2.weight_zero_point"]
    assert_round_trip(qmodel, fresh, mc.randn(9, 16), tmp_path / "dynamic.npz")


def test_a_checkpoint_that_does_not_fit_raises_naming_the_key_and_changes_nothing():
    qmodel, _, _ = calibrated_layer(seed=0)
    fresh, _, _ = calibrated_layer(seed=1)
    x = mc.randn(4, 16)
    before = fresh(x).data.copy()
    state = qmodel.state_dict()
    state["1.weight_int8"] = mc.tensor(np.zeros((8, 15), np.int8))
    with pytest.raises(ValueError, match=r"1.weight_int8: checkpoint \(8, 15\) vs model \(8, 16\)"):
        fresh.load_state_dict(state)
    per_channel, _, _ = calibrated_layer(per_channel=True)
    with pytest.raises(ValueError, match=r"1.weight_scale: checkpoint \(8,\) vs model \(\)"):
        fresh.load_state_dict(per_channel.state_dict())
    state = qmodel.state_dict()
    state["1.weight_int8"] = mc.tensor(state["1.weight_int8"].data.astype(np.int64))
    with pytest.raises(ValueError, match="1.weight_int8: checkpoint dtype int64 vs model int8"):
        fresh.load_state_dict(state)
    state = qmodel.state_dict()
    state["0.zero_point"] = mc.tensor(np.int64(300))
    with pytest.raises(ValueError, match=r"0.zero_point=300 is outside the quantized range \[0, 255\]"):
        fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh(x).data, before)
