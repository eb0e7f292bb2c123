"""quant.observers: PyTorch's ``_calculate_qparams`` on hand-computed values; histogram search."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import quant

F32 = np.float32
EPS = np.finfo(np.float32).eps


def qparams(observer, *batches):
    for batch in batches:
        observer(mc.tensor(batch))
    scale, zero_point = observer.calculate_qparams()
    assert scale.dtype == np.float32 and zero_point.dtype == np.int64
    return scale.data.tolist(), zero_point.data.tolist()


def test_affine_quint8():
    # scale = (3 - -1) / 255; zero_point = 0 - round(-1 / scale) = round(63.75) = 64
    assert qparams(quant.MinMaxObserver(), [-1.0, 0.5, 3.0]) == ([F32(4) / F32(255)], [64])


def test_range_is_widened_to_include_zero():
    assert qparams(quant.MinMaxObserver(), [0.5, 2.0]) == ([F32(2) / F32(255)], [0])           # all positive
    assert qparams(quant.MinMaxObserver(dtype="qint8"), [-2.0, -0.5]) == ([F32(2) / F32(255)], [127])  # all negative


def test_all_zero_tensor_gets_the_eps_scale():
    assert qparams(quant.MinMaxObserver(), np.zeros(5)) == ([EPS], [0])
    assert qparams(quant.MinMaxObserver(dtype="qint8"), np.zeros(5)) == ([EPS], [-128])
    assert qparams(quant.MinMaxObserver(dtype="qint8", qscheme="per_tensor_symmetric"), np.zeros(5)) == ([EPS], [0])


def test_zero_point_rounds_half_to_even():
    # scale = 255 / 255 = 1, zero_point = 0 - round(-2.5) = 2 (not 3)
    assert qparams(quant.MinMaxObserver(), [-2.5, 252.5])[1] == [2]


def test_symmetric_zero_points():
    # scale = max(|-1|, 3) / ((127 - -128) / 2) = 3 / 127.5
    assert qparams(quant.MinMaxObserver(dtype="qint8", qscheme="per_tensor_symmetric"), [-1.0, 3.0]) == (
        [F32(3) / F32(127.5)], [0])
    assert qparams(quant.MinMaxObserver(dtype="quint8", qscheme="per_tensor_symmetric"), [-1.0, 3.0]) == (
        [F32(3) / F32(127.5)], [128])
    custom = quant.MinMaxObserver(dtype="quint8", qscheme="per_tensor_symmetric", quant_min=0, quant_max=15)
    assert qparams(custom, [-1.0, 3.0]) == ([F32(3) / F32(7.5)], [7])  # (0 + 15) // 2


def test_reduce_range():
    observer = quant.MinMaxObserver(reduce_range=True)
    assert (observer.quant_min, observer.quant_max) == (0, 127)
    assert qparams(observer, [-1.0, 3.0]) == ([F32(4) / F32(127)], [32])  # round(31.75)
    signed = quant.MinMaxObserver(dtype="qint8", reduce_range=True)
    assert (signed.quant_min, signed.quant_max) == (-64, 63)
    custom = quant.MinMaxObserver(quant_min=0, quant_max=15, reduce_range=True)
    assert (custom.quant_min, custom.quant_max) == (0, 7)


def test_min_max_runs_over_batches():
    observer = quant.MinMaxObserver()
    qparams(observer, [0.0, 1.0], [-1.0, 0.5], [2.0])
    assert (observer.min_val.data, observer.max_val.data) == (-1.0, 2.0)


def test_moving_average():
    observer = quant.MovingAverageMinMaxObserver(averaging_constant=0.5)
    qparams(observer, [0.0, 1.0], [-1.0, 3.0])
    # the first batch sets the values; then x += 0.5 * (new - x)
    assert (observer.min_val.data, observer.max_val.data) == (-0.5, 2.0)


def test_per_channel():
    x = [[-1.0, 0.0, 3.0], [0.5, 2.0, 1.0]]
    scales, zero_points = qparams(quant.PerChannelMinMaxObserver(), x)
    assert scales == [F32(4) / F32(255), F32(2) / F32(255)] and zero_points == [64, 0]
    by_column = quant.PerChannelMinMaxObserver(ch_axis=1, dtype="qint8", qscheme="per_channel_symmetric")
    scales, zero_points = qparams(by_column, x)
    assert scales == [F32(1) / F32(127.5), F32(2) / F32(127.5), F32(3) / F32(127.5)] and zero_points == [0, 0, 0]
    moving = quant.MovingAveragePerChannelMinMaxObserver(averaging_constant=0.5)
    qparams(moving, x, [[-3.0, 3.0, 3.0], [0.5, 4.0, 1.0]])
    np.testing.assert_array_equal(moving.min_val.data, [-2.0, 0.5])
    np.testing.assert_array_equal(moving.max_val.data, [3.0, 3.0])


def test_uncalibrated_observer_returns_pytorch_defaults_with_a_warning():
    with pytest.warns(UserWarning, match="no data"):
        scale, zero_point = quant.MinMaxObserver().calculate_qparams()
    assert scale.data.tolist() == [1.0] and zero_point.data.tolist() == [0]


def test_observer_errors():
    with pytest.raises(ValueError, match="contain 0"):
        quant.MinMaxObserver(quant_min=1, quant_max=15)
    with pytest.raises(ValueError, match="both"):
        quant.MinMaxObserver(quant_min=0)
    with pytest.raises(ValueError, match="does not fit"):
        quant.MinMaxObserver(dtype="qint8", quant_min=-200, quant_max=0)
    with pytest.raises(ValueError, match="reduce_range"):
        quant.MinMaxObserver(qscheme="per_tensor_symmetric", reduce_range=True)
    with pytest.raises(ValueError, match="qscheme"):
        quant.MinMaxObserver(qscheme="affine")
    with pytest.raises(ValueError, match="PerChannelMinMaxObserver"):
        quant.MinMaxObserver(qscheme="per_channel_affine")
    with pytest.raises(ValueError, match="'int4'"):
        quant.MinMaxObserver(dtype="int4")
    observer = quant.PerChannelMinMaxObserver()
    observer(mc.tensor(np.ones((2, 3))))
    with pytest.raises(ValueError, match="2 channels"):
        observer(mc.tensor(np.ones((4, 3))))


def test_with_args_builds_fresh_observers():
    make = quant.MinMaxObserver.with_args(dtype="qint8").with_args(qscheme="per_tensor_symmetric")
    a, b = make(), make()
    assert a is not b and a.dtype == "qint8" and a.qscheme == "per_tensor_symmetric"


def test_histogram_error_of_uniform_bins_is_delta_squared_over_12():
    # 256 source bins of width 1 onto 256 destination bins: each value is at most half a step
    # from its level, and uniform mass in a bin has mean squared error width^2 / 12.
    observer = quant.HistogramObserver(bins=256)
    x = np.concatenate([np.arange(256) + 0.5, [0.0, 256.0]])
    observer(mc.tensor(x))
    np.testing.assert_array_equal(observer.histogram.data[[0, 1, 254, 255]], [2, 1, 1, 2])
    assert observer._compute_quantization_error(0, 255) == pytest.approx(len(x) / 12, rel=1e-5)


def test_histogram_search_clips_an_outlier_when_that_lowers_the_l2_error():
    # A million values in [0, 1) and one at 30. Clipping 30 to ~1 costs 29^2 = 841; keeping it makes
    # every step 30/255 wide, a total error of 1e6 * (30/255)^2 / 12 = 1153. The search clips.
    mc.manual_seed(0)
    x = np.append(mc.get_rng().random(1_000_000), 30.0).astype(F32)

    def squared_error(observer):
        (scale,), (zero_point,) = qparams(observer, x)
        q = quant.quantize_per_tensor(mc.tensor(x), scale, zero_point, "quint8")
        return scale, float(((q.dequantize().data - x) ** 2).sum())

    scale, error = squared_error(quant.HistogramObserver())
    full_scale, full_error = squared_error(quant.MinMaxObserver())
    assert full_scale == pytest.approx(30 / 255, rel=1e-6) and full_error == pytest.approx(1153, rel=0.01)
    assert scale < 1.01 / 255 and error < 0.75 * full_error


def test_histogram_keeps_its_mass_when_the_range_grows():
    observer = quant.HistogramObserver(bins=64)
    observer(mc.tensor(np.linspace(0, 1, 1000)))
    observer(mc.tensor(np.linspace(-1, 2, 500)))
    assert (observer.min_val.data, observer.max_val.data) == (-1.0, 2.0)
    assert observer.histogram.data.sum() == pytest.approx(1500, rel=1e-6)
    # the first batch's mass now lies in the bins covering [0, 1] (bins 21..42 of 64 over [-1, 2])
    assert observer.histogram.data[21:43].sum() > 1000 + 500 / 3 - 20


def test_histogram_adds_batches_with_the_same_range():
    one, two = quant.HistogramObserver(bins=32), quant.HistogramObserver(bins=32)
    x = np.linspace(-1, 1, 101)
    one(mc.tensor(np.concatenate([x, x[::-1]])))
    two(mc.tensor(x))
    two(mc.tensor(x[::-1]))
    np.testing.assert_array_equal(one.histogram.data, two.histogram.data)
