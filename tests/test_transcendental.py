"""exp, log, tanh and power of ``kernels.transcendental``: kernel and NumPy twin agree bit for bit,
float32 results are NumPy's float64 function correctly rounded, and the edge cases are IEEE's."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress.kernels import transcendental as T

FUNCTIONS = {"exp": np.exp, "log": np.log, "tanh": np.tanh}
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 88.7, 88.73, 89.0, -87.3, -103.9, -104.0, -150.0, 1e-45, 1e-30,
            -1e-30, 3e38, -3e38, 0.5, -0.5, 0.49999997, 0.50000006, 1.0, 2.0, 9.0, 9.1, 20.0, 710.0, -746.0]
# float64 exp near and below the smallest normal result (2^k subnormal, k < -1022) and near overflow
SPECIALS += list(np.linspace(-745.0, -700.0, 4001)) + [-708.3964185322641, -708.39641853226, 709.78, 709.0]
SPECIALS += list(np.linspace(709.0, 709.79, 801)) + [709.782712893384, 709.7827128933841, 709.785]


def sample(dtype, positive=False):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(20_000) * s for s in (1e-6, 1e-3, 0.3, 1, 5, 30, 100)] + [SPECIALS])
    x = x.astype(dtype)
    return np.abs(x) if positive else x


def bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_and_numpy_twin_agree_bit_for_bit(name, dtype):
    x = sample(dtype) if name != "log" else np.concatenate([sample(dtype), -sample(dtype, True)])
    kernel, twin = getattr(T, name), getattr(T, name + "_reference")
    with np.errstate(all="ignore"):
        out = kernel(x)
        assert out.dtype == dtype and out.shape == x.shape
        np.testing.assert_array_equal(bits(out), bits(twin(x)))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_float32_is_float64_numpy_correctly_rounded(name):
    x = sample(np.float32, positive=name == "log")
    with np.errstate(all="ignore"):
        expected = FUNCTIONS[name](x.astype(np.float64)).astype(np.float32)
        out = getattr(T, name)(x)
    np.testing.assert_array_equal(out, expected)   # nan == nan here; inf, 0 and -0 must match too
    assert np.array_equal(np.signbit(out), np.signbit(expected))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_float64_within_a_few_ulps_of_numpy(name):
    x = sample(np.float64, positive=name == "log")
    x = x[np.isfinite(x) & (x > (0 if name == "log" else -700)) & (x < 700)]
    out, expected = getattr(T, name)(x), FUNCTIONS[name](x)
    ulps = np.abs(out - expected) / np.spacing(np.abs(expected))
    assert ulps[expected != 0].max() <= 4


def test_float64_exp_up_to_overflow():
    # e^x is a float64 up to ln(DBL_MAX) = 709.78271289338397; there 2^k, k = 1024, is not
    x = np.concatenate([np.linspace(700.0, 709.78, 2001), [709.7827128933839, 709.782712893384, 709.7827128933841,
                                                            709.79, 709.8, 710.0]])
    with np.errstate(over="ignore"):
        out, expected = T.exp(x), np.exp(x)
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    assert np.isfinite(out[:2001]).all()
    finite = np.isfinite(expected)
    assert (np.abs(out[finite] - expected[finite]) / np.spacing(expected[finite])).max() <= 4


def test_log_edge_cases():
    with np.errstate(all="ignore"):
        out = T.log(np.array([0.0, -0.0, -1.0, np.inf, np.nan, 1.0], np.float32))
    assert out[0] == out[1] == -np.inf and np.isnan(out[2]) and out[3] == np.inf and np.isnan(out[4]) and out[5] == 0


def test_integer_input_gives_float32_and_bad_dtypes_are_rejected():
    assert T.exp(np.array([0, 1])).dtype == np.float32
    with pytest.raises(TypeError, match="complex"):
        T.exp(np.array([1j]))
    with pytest.raises(TypeError, match="<U1"):
        T.log("2")


@pytest.mark.parametrize("exponent", [0, 1, 2, 3, 7, -1, -2, 0.5, 1.5, -0.75, 2.0, 3.3])
def test_power_matches_numpy_within_float32_rounding(exponent):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.random(10_000) * 10, [0.0, 1.0, 2.0]]).astype(np.float32)
    with np.errstate(all="ignore"):
        out = T.power(x, exponent)
        expected = np.power(x.astype(np.float64), exponent)
    assert out.dtype == np.float32
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    np.testing.assert_allclose(out[finite], expected[finite], rtol=2 ** -23, atol=0)
    if exponent == 2:
        np.testing.assert_array_equal(out, x * x)   # the square rounds as NumPy's float32 x * x


def test_power_of_negative_base():
    with np.errstate(invalid="ignore"):
        out = T.power(np.array([-2.0, -8.0], np.float32), 3)
        fractional = T.power(np.array([-2.0], np.float32), 0.5)
    np.testing.assert_array_equal(out, [-8.0, -512.0])
    assert np.isnan(fractional[0])
    np.testing.assert_array_equal(T.power(np.array([2, 3]), 2), [4, 9])    # integers stay exact integers
    with pytest.raises(TypeError, match="exponent"):
        T.power(np.ones(2, np.float32), np.ones(2))


def test_tensor_functions_use_them():
    x = mc.tensor([-3.0, -0.2, 0.0, 0.7, 4.0])
    np.testing.assert_array_equal(x.exp().data, T.exp(x.data))
    np.testing.assert_array_equal(x.tanh().data, T.tanh(x.data))
    np.testing.assert_array_equal((x.abs() + 1).log().data, T.log(np.abs(x.data) + 1))
    np.testing.assert_array_equal((x.abs() ** 1.5).data, T.power(np.abs(x.data), 1.5))
