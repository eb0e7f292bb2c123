"""quant.fake_quant: quantize-dequantize values by hand, and the straight-through gradient elementwise."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import quant

F32 = np.float32
X = np.array([-1.2, -0.3, 0.0, 0.26, 1.0, 2.4], F32)
# scale 0.1, zero point 10, range [0, 20]: q = round(10 x) + 10 = [-2, 7, 10, 13, 20, 34]
CLAMPED = [0, 7, 10, 13, 20, 20]
INSIDE = [0, 1, 1, 1, 1, 0]


def test_per_tensor_values_by_hand():
    out = quant.fake_quantize_per_tensor_affine(mc.tensor(X), 0.1, 10, 0, 20)
    np.testing.assert_array_equal(out.data, (np.array(CLAMPED, F32) - 10) * F32(0.1))
    assert out.dtype == np.float32


def test_straight_through_gradient_elementwise():
    upstream = np.arange(1, 7, dtype=F32)
    x = mc.tensor(X, requires_grad=True)
    (quant.fake_quantize_per_tensor_affine(x, 0.1, 10, 0, 20) * mc.tensor(upstream)).sum().backward()
    np.testing.assert_array_equal(x.grad, upstream * np.array(INSIDE, F32))


def test_gradient_decided_after_rounding():
    # q = round(x / 0.5) with range [-2, 2]: 1.2 -> 2 (kept, gradient 1), 1.3 -> 3 (clamped, 0),
    # -1.2 -> -2 (kept), -1.3 -> -3 (clamped)
    x = mc.tensor(np.array([1.2, 1.3, -1.2, -1.3]), requires_grad=True, dtype=np.float64)
    out = quant.fake_quantize_per_tensor_affine(x, 0.5, 0, -2, 2)
    out.sum().backward()
    np.testing.assert_array_equal(out.data, [1.0, 1.0, -1.0, -1.0])
    np.testing.assert_array_equal(x.grad, [1, 0, 1, 0])
    assert out.dtype == np.float64


def test_per_channel_values_and_gradient():
    x = mc.tensor(np.array([[0.26, 3.0], [0.26, 3.0]], F32), requires_grad=True)
    out = quant.fake_quantize_per_channel_affine(x, [0.1, 1.0], [0, 0], 0, -8, 7)
    # row 0: round(2.6) = 3, round(30) = 30 -> 7; row 1: round(0.26) = 0, 3
    np.testing.assert_allclose(out.data, [[0.3, 0.7], [0.0, 3.0]], rtol=1e-6)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1, 0], [1, 1]])
    along_columns = quant.fake_quantize_per_channel_affine(x, [0.1, 1.0], [0, 0], 1, -8, 7)
    np.testing.assert_allclose(along_columns.data, [[0.3, 3.0], [0.3, 3.0]], rtol=1e-6)


def test_fake_quant_errors():
    x = mc.tensor(X)
    with pytest.raises(ValueError, match="zero_point=30"):
        quant.fake_quantize_per_tensor_affine(x, 0.1, 30, 0, 20)
    with pytest.raises(ValueError, match="scale"):
        quant.fake_quantize_per_tensor_affine(x, float("nan"), 0, 0, 20)
    with pytest.raises(ValueError, match="quant_min=5"):
        quant.fake_quantize_per_tensor_affine(x, 0.1, 0, 5, 4)
    with pytest.raises(TypeError, match="Tensor"):
        quant.fake_quantize_per_tensor_affine(X, 0.1, 0, 0, 20)
    with pytest.raises(ValueError, match=r"\(6,\)"):
        quant.fake_quantize_per_channel_affine(x, [0.1, 0.2], [0, 0], 0, 0, 20)


def test_fake_quantize_module_observes_then_fake_quantizes():
    fq = quant.FakeQuantize(observer=quant.MinMaxObserver, quant_min=0, quant_max=255)
    x = mc.tensor(np.array([-1.0, 0.5, 3.0], F32))
    out = fq(x)
    assert fq.scale.data.tolist() == [F32(4) / F32(255)] and fq.zero_point.data.tolist() == [64]
    np.testing.assert_array_equal(out.data, quant.fake_quantize_per_tensor_affine(x, fq.scale, 64, 0, 255).data)
    fq.disable_observer()
    fq(mc.tensor([10.0]))
    assert fq.scale.data.tolist() == [F32(4) / F32(255)]  # frozen
    fq.disable_fake_quant()
    assert fq(x) is x
    fq.enable_observer()
    fq(mc.tensor([10.0]))
    assert fq.scale.data.tolist() == [F32(11) / F32(255)]


def test_switches_reach_every_fake_quantizer_through_apply():
    model = mc.nn.Sequential(quant.FakeQuantize(), mc.nn.ReLU(), quant.FakeQuantize())
    model.apply(quant.disable_observer)
    model.apply(quant.disable_fake_quant)
    assert [int(m.observer_enabled.data[0]) + int(m.fake_quant_enabled.data[0])
            for m in model.modules() if isinstance(m, quant.FakeQuantize)] == [0, 0]
    model.apply(quant.enable_fake_quant)
    assert all(m.fake_quant_enabled.data[0] == 1 for m in model.modules() if isinstance(m, quant.FakeQuantize))


def test_default_fake_quant_ranges_are_pytorchs():
    act, weight = quant.default_fake_quant(), quant.default_weight_fake_quant()
    assert (act.quant_min, act.quant_max, act.dtype) == (0, 127, "quint8")  # reduce_range halves 0..255
    assert (weight.quant_min, weight.quant_max, weight.qscheme) == (-128, 127, "per_tensor_symmetric")
    per_channel = quant.default_per_channel_weight_fake_quant()
    assert per_channel.is_per_channel and per_channel.ch_axis == 0
    with pytest.raises(ValueError, match="fit"):
        quant.FakeQuantize(quant_min=-1, quant_max=255)
