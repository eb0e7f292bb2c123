"""quant.qtensor: PyTorch's quantize/dequantize arithmetic on hand-checked values, and its errors."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import quant

F32 = np.float32


def test_quantize_per_tensor_by_hand():
    scale = float(F32(4) / F32(255))  # the affine scale for the range [-1, 3]
    x = mc.tensor([-1.0, 0.0, 0.5, 3.0, 10.0, -5.0])
    q = quant.quantize_per_tensor(x, scale, 64, "quint8")
    # 0.5 * 63.75 = 31.875 -> 32; 3 * 63.75 = 191.25 -> 191 (+64 = 255); 10 and -5 clamp
    np.testing.assert_array_equal(q.int_repr().data, [0, 64, 96, 255, 255, 0])
    assert q.int_repr().dtype == np.uint8
    assert q.q_scale() == scale and q.q_zero_point() == 64 and q.qscheme() == "per_tensor_affine"
    np.testing.assert_array_equal(q.dequantize().data, (np.array([-64, 0, 32, 191, 191, -64]) * F32(scale)).astype(F32))
    assert q.dequantize().dtype == np.float32


def test_rounding_is_half_to_even_and_qint8_clamps():
    q = quant.quantize_per_tensor(mc.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 300.0, -300.0]), 1.0, 0, "qint8")
    np.testing.assert_array_equal(q.int_repr().data, [0, 2, 2, 0, -2, 127, -128])
    assert q.int_repr().dtype == np.int8


def test_multiplies_by_the_float32_reciprocal_like_fbgemm():
    # FBGEMM's documented example: x * (1/scale) is exactly 127.5 (-> 128), while x / scale is 127.499992
    scale, x = 0.00214854861, 0.273939937
    assert np.rint(F32(x) / F32(scale)) == 127
    assert quant.quantize_per_tensor(mc.tensor([x]), scale, 0, "quint8").int_repr().data[0] == 128


def test_quantize_per_channel_by_hand():
    x = mc.tensor([[0.26, -0.3, 1.0], [2.0, -3.0, 100.0]])
    q = quant.quantize_per_channel(x, [0.1, 1.0], [0, 10], axis=0, dtype="quint8")
    # row 0: round(2.6, -3, 10) + 0 -> 3, clamp(-3) = 0, 10; row 1: 2 + 10, -3 + 10, 110
    np.testing.assert_array_equal(q.int_repr().data, [[3, 0, 10], [12, 7, 110]])
    np.testing.assert_array_equal(q.q_per_channel_scales().data, [0.1, 1.0])
    np.testing.assert_array_equal(q.q_per_channel_zero_points().data, [0, 10])
    assert q.q_per_channel_axis() == 0 and q.qscheme() == "per_channel_affine"
    np.testing.assert_allclose(q.dequantize().data, [[0.3, 0.0, 1.0], [2.0, -3.0, 100.0]], rtol=1e-6)
    along_columns = quant.quantize_per_channel(x, [1.0, 1.0, 0.5], [0, 0, 0], axis=-1, dtype="qint8")
    np.testing.assert_array_equal(along_columns.int_repr().data, [[0, 0, 2], [2, -3, 127]])


def test_ranges_and_reduce_range():
    assert quant.dtype_range("qint8") == (-128, 127) and quant.dtype_range("quint8") == (0, 255)
    assert quant.dtype_range("qint8", reduce_range=True) == (-64, 63)
    assert quant.dtype_range(mc.quint8, reduce_range=True) == (0, 127)


@pytest.mark.parametrize("scale", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_scale_is_an_error(scale):
    with pytest.raises(ValueError, match="scale"):
        quant.quantize_per_tensor(mc.tensor([1.0]), scale, 0, "qint8")
    with pytest.raises(ValueError, match="scale"):
        quant.quantize_per_channel(mc.tensor([[1.0], [2.0]]), [1.0, scale], [0, 0], 0, "qint8")


def test_other_bad_arguments():
    x = mc.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="300"):
        quant.quantize_per_tensor(x, 0.1, 300, "quint8")
    with pytest.raises(ValueError, match="-1"):
        quant.quantize_per_tensor(x, 0.1, -1, "quint8")
    with pytest.raises(ValueError, match="1.5"):
        quant.quantize_per_tensor(x, 0.1, 1.5, "qint8")
    with pytest.raises(ValueError, match="'int8'"):
        quant.quantize_per_tensor(x, 0.1, 0, "int8")
    with pytest.raises(TypeError, match="dtype"):
        quant.quantize_per_tensor(x, 0.1, 0, np.int8)
    with pytest.raises(TypeError, match="float"):
        quant.quantize_per_tensor(mc.tensor([1, 2]), 0.1, 0, "qint8")
    with pytest.raises(ValueError, match=r"\(3,\)"):
        quant.quantize_per_channel(mc.tensor(np.ones((3, 2))), [1.0, 1.0], [0, 0], 0, "qint8")
    with pytest.raises(ValueError, match="axis=2"):
        quant.quantize_per_channel(mc.tensor(np.ones((3, 2))), [1.0] * 3, [0] * 3, 2, "qint8")


def test_per_tensor_and_per_channel_accessors_do_not_mix():
    per_tensor = quant.quantize_per_tensor(mc.tensor([1.0]), 0.5, 0, "qint8")
    per_channel = quant.quantize_per_channel(mc.tensor([[1.0]]), [0.5], [0], 0, "qint8")
    with pytest.raises(ValueError, match="per channel"):
        per_channel.q_scale()
    with pytest.raises(ValueError, match="per tensor"):
        per_tensor.q_per_channel_scales()
