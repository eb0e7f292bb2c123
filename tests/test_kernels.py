"""Numba kernels against NumPy references: dense float32 and int8 products, validation, backend."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

import minitorch_compress as mc
from minitorch_compress import kernels as K
from minitorch_compress.kernels import dense, int8, microkernel
from minitorch_compress.kernels.dense import KC, matmul_reference
from minitorch_compress.kernels.int8 import int8_matmul_reference
from minitorch_compress.kernels.requant import int8_linear_dequant_reference, int8_linear_requant_reference
from minitorch_compress.kernels.transpose import transpose_reference, transpose_rows
from minitorch_compress.quant.qtensor import quantize_array

from emulated_cpus import HASWELL, X86
from jit_twins import run_jit_off_and_on

FEW = settings(max_examples=25, deadline=None)
dims = st.integers(0, 70)
# the portable kernel, and the byte kernel of the CPU Numba compiles for (VNNI or AVX2), if it has one
INT8_KERNELS = ["portable"] + [kernel for kernel in [int8.BYTE_KERNEL] if kernel]


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _i8(rng, *shape):
    return rng.integers(-128, 128, shape, dtype=np.int8)


# ----- dense float32 ---------------------------------------------------------------------
@FEW
@given(m=dims, k=dims, n=dims, seed=st.integers(0, 2**32 - 1))
def test_matmul_random_shapes(m, k, n, seed):
    rng = np.random.default_rng(seed)
    a, b = _f32(rng, m, k), _f32(rng, k, n)
    out = K.matmul(a, b)
    assert out.dtype == np.float32 and out.shape == (m, n)
    np.testing.assert_allclose(out, matmul_reference(a, b), rtol=1e-4, atol=1e-4 * max(k, 1) ** 0.5)


@pytest.mark.parametrize("m,k,n", [(128, 784, 256), (64, 1024, 1024), (64, 2 * KC + 40, 200), (9, 300, 33),
                                   (16, 17, 100)])
def test_matmul_blocked_shapes(m, k, n):
    # several k-blocks, several tasks, and edges that are not multiples of the tile
    rng = np.random.default_rng(0)
    a, b = _f32(rng, m, k), _f32(rng, k, n)
    out = K.matmul(a, b)
    np.testing.assert_allclose(out, matmul_reference(a, b), rtol=1e-4, atol=1e-3)
    # b as a Linear's W.T (packed by transposing W's rows) and a as a strided view (copied): same bits
    np.testing.assert_array_equal(K.matmul(a, np.ascontiguousarray(b.T).T), out)
    np.testing.assert_array_equal(K.matmul(np.asfortranarray(a), b), out)


def test_matmul_same_bits_for_any_k_block(monkeypatch):
    # KC follows the machine's L2 (1024 or 512); the sums' order, and so the bits, must not
    rng = np.random.default_rng(2)
    a, b = _f32(rng, 20, 2088), _f32(rng, 2088, 40)
    results = []
    for kc in (1024, 512, 7):
        monkeypatch.setattr(dense, "KC", kc)
        results.append(K.matmul(a, b).tobytes())
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("m", [1, microkernel.MR - 1, 2 * microkernel.MR + 1, 128, 131])
def test_matmul_reads_a_in_place_and_its_last_rows_from_a_copy(monkeypatch, m):
    # C-contiguous A is read where it is, a last strip past M from a padded copy; A with strided
    # columns is copied whole. Both must give the same bits, over several k-blocks (KC = 7) as well
    rng = np.random.default_rng(m)
    a, b = _f32(rng, m, 100), _f32(rng, 100, 40)
    strided = np.repeat(a, 2, axis=1)[:, ::2]
    assert microkernel.reads_in_place(a) and not microkernel.reads_in_place(strided)
    for kc in (dense.KC, 7):
        monkeypatch.setattr(dense, "KC", kc)
        in_place, copied = K.matmul(a, b), K.matmul(strided, b)
        assert in_place.tobytes() == copied.tobytes()
    np.testing.assert_allclose(in_place, matmul_reference(a, b), rtol=1e-5, atol=1e-4)


def test_row_strips_pad_the_fewest_rows():
    big_rows, small_rows = microkernel.MR, microkernel.MR_SMALL
    for m in range(1, 300):
        options = [(b * big_rows + s * small_rows, b + s, b, s)
                   for b in range(m // big_rows + 2) for s in range(m // small_rows + 2) if b * big_rows + s * small_rows >= m]
        assert microkernel.row_strips(m) == min(options)[2:], m


def test_matmul_rows_have_the_same_bits_in_any_strip():
    # a row of C is the same chain of FMAs in a 6- or 8-row strip, a 4-row one, a whole or an edge tile
    rng = np.random.default_rng(5)
    m_max = 2 * microkernel.MR + microkernel.MR_SMALL + 2
    a, b = _f32(rng, m_max, 70), _f32(rng, 70, 40)
    whole = K.matmul(a, b)
    np.testing.assert_allclose(whole, matmul_reference(a, b), rtol=1e-5, atol=1e-4)
    for m in range(1, m_max):
        assert K.matmul(a[:m], b).tobytes() == whole[:m].tobytes(), m
        assert K.matmul(a[m:], b).tobytes() == whole[m:].tobytes(), m


def test_matmul_non_contiguous_inputs():
    rng = np.random.default_rng(1)
    a = _f32(rng, 60, 90)[::2, 1::3]          # strided rows and columns
    b = _f32(rng, 40, 50).T[:30]              # Fortran-ordered slice
    np.testing.assert_allclose(K.matmul(a, b), matmul_reference(a, b), rtol=1e-4, atol=1e-4)


def test_matmul_accepts_tensors():
    a, b = mc.tensor(np.ones((3, 4))), mc.tensor(np.ones((4, 2)))
    np.testing.assert_array_equal(K.matmul(a, b), np.full((3, 2), 4, np.float32))


@pytest.mark.parametrize("a,b,error,match", [
    (np.ones((2, 3), np.float64), np.ones((3, 2), np.float32), TypeError, "a must have dtype float32, got float64"),
    (np.ones((2, 3), np.float32), np.ones((3, 2), np.int8), TypeError, "b must have dtype float32, got int8"),
    (np.ones(3, np.float32), np.ones((3, 2), np.float32), ValueError, r"a must be 2-D, got shape \(3,\)"),
    (np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), ValueError, r"\(2, 3\) and \(4, 2\)"),
    ([[1.0]], np.ones((1, 1), np.float32), TypeError, "a must be a NumPy array or Tensor, got list"),
])
def test_matmul_rejects_bad_inputs(a, b, error, match):
    with pytest.raises(error, match=match):
        K.matmul(a, b)


# ----- int8 ------------------------------------------------------------------------------
# b as it comes (packed along its rows), its transpose's rows (b.T C-contiguous, packed as a
# weight) and strided (copied first)
B_LAYOUTS = {"rows": lambda b: b, "transposed": np.asfortranarray, "strided": lambda b: np.repeat(b, 2, axis=1)[:, ::2]}


@pytest.mark.parametrize("layout", B_LAYOUTS)
@pytest.mark.parametrize("kernel", INT8_KERNELS)
@FEW
@given(m=dims, k=dims, n=dims, seed=st.integers(0, 2**32 - 1))
def test_int8_matmul_exact_random_shapes(kernel, layout, m, k, n, seed):
    rng = np.random.default_rng(seed)
    a, b = _i8(rng, m, k), B_LAYOUTS[layout](_i8(rng, k, n))
    out = K.int8_matmul(a, b, kernel=kernel)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, int8_matmul_reference(a, b))


@pytest.mark.parametrize("kernel", INT8_KERNELS)
@pytest.mark.parametrize("value", [-128, 127])
def test_int8_extremes_at_max_k(kernel, value):
    # K = 2**16 of (-128)(-128) = 2**30 per output: exact only if nothing overflows on the way
    k = 2 ** 16
    a = np.full((9, k), value, np.int8)
    b = np.full((k, 35), -128, np.int8)
    b[:, 1] = 127
    out = K.int8_matmul(a, b, kernel=kernel)
    np.testing.assert_array_equal(out, int8_matmul_reference(a, b))
    assert out[0, 0] == value * -128 * k


@pytest.mark.parametrize("kernel", INT8_KERNELS)
def test_int8_non_contiguous_and_uint8_activations(kernel):
    rng = np.random.default_rng(2)
    x = _i8(rng, 40, 130)[::3, ::2]
    w = _i8(rng, 70, 130)[::2, ::2]
    packed = K.pack_int8_weight(w)
    ref = int8_matmul_reference(x, w.T)
    np.testing.assert_array_equal(K.int8_linear(x, packed, kernel=kernel), ref)
    xu = rng.integers(0, 256, (13, 65), dtype=np.uint8)
    np.testing.assert_array_equal(K.int8_linear(xu, packed, kernel=kernel), int8_matmul_reference(xu, w.T))


@pytest.mark.parametrize("kernel", INT8_KERNELS)
@pytest.mark.parametrize("m", [1, 8, 13, 70])
def test_int8_activations_read_in_place(kernel, m):
    # codes 0..127 with K a multiple of 4 need no shift: the byte kernels read x where it lies, the
    # rows of a last strip that runs past M from a padded copy; K = 1100 is two k-blocks
    from minitorch_compress.kernels.int8 import _activations
    rng = np.random.default_rng(11)
    w = _i8(rng, 37, 1100)
    packed = K.pack_int8_weight(w)
    for dtype in (np.int8, np.uint8):
        x = rng.integers(0, 128, (m, 1100), dtype=dtype)
        odd = np.empty(x.size + 1, dtype)[1:].reshape(x.shape)    # C-contiguous, 1 byte off a lane
        odd[...] = x
        ref = int8_matmul_reference(x, w.T)
        for arr in (x, odd):
            assert np.shares_memory(_activations(arr, np.uint8, 0)[0], arr)
            np.testing.assert_array_equal(K.int8_linear(arr, packed, kernel=kernel), ref)
        if dtype == np.int8:
            np.testing.assert_array_equal(K.int8_matmul(x, np.ascontiguousarray(w.T), kernel=kernel), ref)


@pytest.mark.parametrize("kernel", INT8_KERNELS)
def test_int8_several_k_blocks_and_edge_tiles(kernel):
    # K = 2100: 3 blocks of 256 k-steps for VNNI (4 bytes a step), 5 for the portable kernel (2 a
    # step), so the micro-kernel adds to C; 70 x 100 leaves partial tiles at both edges
    rng = np.random.default_rng(8)
    a, b = _i8(rng, 70, 2100), _i8(rng, 2100, 100)
    np.testing.assert_array_equal(K.int8_matmul(a, b, kernel=kernel), int8_matmul_reference(a, b))


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
@pytest.mark.parametrize("n,k", [(100, 2100), (32, 4), (1, 64), (33, 1024), (17, 6), (5, 7)])
def test_layouts_by_transpose_match_element_packing(n, k, dtype):
    # with K a multiple of the lane's values (4 int8, 2 int16) a layout is packed as a transpose
    # of int32 lanes (W widened for int16); the element-by-element packing (any K) is the reference
    from minitorch_compress.kernels.int8 import NR, _pack, pack_strips
    w = _i8(np.random.default_rng(9), n, k)
    group = 4 // np.dtype(dtype).itemsize
    expected = np.full(-(-n // NR) * NR * -(-k // group) * group, 99, dtype)
    pack_strips(w, expected, group, NR)
    np.testing.assert_array_equal(_pack(w, dtype), expected)
    np.testing.assert_array_equal(_pack(np.asfortranarray(w), dtype), expected)


@pytest.mark.parametrize("group", [4, 2])
@pytest.mark.parametrize("k,n", [(2100, 100), (4, 32), (64, 1), (1024, 33), (7, 70), (1, 16)])
def test_layouts_packed_along_rows_match_element_packing(k, n, group):
    # int8_matmul packs W = b.T from b's rows, interleaving `group` of them in registers; the
    # element-by-element packing of a transposed copy is the reference
    from minitorch_compress.kernels.int8 import NR, pack_row_groups, pack_strips
    b = _i8(np.random.default_rng(k + n), k, n)
    steps, strips = -(-k // group), -(-n // NR)
    expected = np.full(strips * NR * steps * group, 99, np.int8 if group == 4 else np.int16)
    pack_strips(np.ascontiguousarray(b.T), expected, group, NR)
    out = np.full((strips, steps, NR), 99, np.int32)
    pack_row_groups(b, out, group)
    np.testing.assert_array_equal(out.view(expected.dtype).reshape(-1), expected)


@pytest.mark.parametrize("axis", [1, 0])     # W's row sums: from W, or from b = W.T for int8_matmul
@pytest.mark.parametrize("n,k", [(100, 2100), (1, 1), (0, 4), (3, 0), (1100, 30)])
def test_row_and_column_sums_match_numpy(n, k, axis):
    from minitorch_compress.kernels.int8 import column_sums, row_sums
    w = _i8(np.random.default_rng(10), n, k)
    out = np.full(n, 99, np.int64)
    if axis == 1:
        row_sums(w, out)
    else:
        column_sums(np.ascontiguousarray(w.T), out)
    np.testing.assert_array_equal(out, w.sum(axis=1, dtype=np.int64))


def test_row_sums_at_the_largest_k():
    # K = 2**16 codes of -128 or 127: the largest sums a packed weight can have
    from minitorch_compress.kernels.int8 import MAX_K, column_sums, row_sums
    w = np.stack([np.full(MAX_K, -128, np.int8), np.full(MAX_K, 127, np.int8)])
    out = np.zeros(2, np.int64)
    row_sums(w, out)
    np.testing.assert_array_equal(out, [-128 * 2 ** 16, 127 * 2 ** 16])
    assert K.pack_int8_weight(w).row_sums.tolist() == [-128 * 2 ** 16, 127 * 2 ** 16]
    column_sums(np.ascontiguousarray(w.T), out)     # int32 inside: exact up to 2**31
    np.testing.assert_array_equal(out, [-128 * 2 ** 16, 127 * 2 ** 16])


def test_byte_kernel_chosen_automatically():
    packed = K.pack_int8_weight(np.ones((4, 8), np.int8))
    assert (packed.quads is not None) == (int8.BYTE_KERNEL is not None)
    if int8.BYTE_KERNEL is not None:    # its instruction is in the machine code
        instruction = {"vnni": "vpdpbusd", "avx2": "vpmaddubsw"}[int8.BYTE_KERNEL]
        assert K.instruction_counts(int8.BYTE_KERNEL)[instruction] > 0
    assert int8.BYTE_KERNEL == ("vnni" if K.has_vnni() else "avx2" if K.has_maddubs() else None)


def test_portable_packing_skips_the_byte_layout():
    packed = K.pack_int8_weight(np.ones((4, 8), np.int8), quads=False)
    assert packed.quads is None
    for kernel in ("vnni", "avx2"):
        with pytest.raises(ValueError, match=f"kernel='{kernel}' needs a"):
            K.int8_linear(np.ones((2, 8), np.int8), packed, kernel=kernel)


# The AVX2 kernel's vpmaddubsw adds each pair of u8 x s8 products into a saturating int16. With
# activation codes in [0, A] and |weight codes| <= B a pair sum lies in [-2AB, 2AB] (the products
# are bilinear, so the corners bound it). The quantized layers' recipes, worked out by hand:
# name -> (fits for the codes of calibrated inputs, fits for every code the layer may clamp to)
RECIPES = {
    "x86": (True, False),             # reduce_range: calibrated 0..127, clamped 0..255; qint8 -128..127
    "default": (True, False),         # the same 0..127 / 0..255 activations
    "qnnpack": (False, False),        # 0..255 with -128..127: 2 * 255 * 128 = 65,280
    "dynamic": (True, True),          # DynamicLinear quantizes each batch to 0..127 (reduce_range)
    "bits(8, 8)": (False, False),     # clamped to 0..255 and -128..127
    "bits(8, 7)": (True, True),       # 0..127 with -128..127: 32,512
    "bits(7, 8)": (True, True),       # 0..255 with -64..63: 32,640
    "bits(4, 4)": (True, True),
}


def _recipe_ranges(name):
    """(calibrated activation max, clamped activation max, max |weight code|) from the library."""
    from minitorch_compress import quant as Q
    from minitorch_compress.quant.observers import code_range
    from minitorch_compress.quant.qtensor import dtype_range
    if name == "dynamic":
        act_max = dtype_range("quint8", Q.nn.DynamicLinear(1, 1).reduce_range)[1]
        w = Q.default_dynamic_qconfig.weight()
        return act_max, act_max, max(-code_range(w)[0], code_range(w)[1])
    qconfig = {"x86": lambda: Q.get_default_qconfig("x86"), "default": lambda: Q.default_qconfig,
               "qnnpack": lambda: Q.get_default_qconfig("qnnpack")}.get(name)
    qconfig = qconfig() if qconfig else Q.qconfig_for_bits(*map(int, name[5:-1].split(",")))
    act, w = qconfig.activation(), qconfig.weight()
    assert act.dtype == "quint8" and code_range(act)[0] == act.quant_min == 0
    return act.quant_max, code_range(act)[1], max(-code_range(w)[0], code_range(w)[1])


@pytest.mark.parametrize("name", RECIPES)
def test_avx2_pair_sums_fit_int16_for_the_recipes_that_take_it(name):
    from minitorch_compress.kernels.maddubs import fits, maddubs_python
    from minitorch_compress.kernels.vnni import vpdpbusd_python
    calibrated, clamped, b_max = _recipe_ranges(name)
    for a_max, expected in zip((calibrated, clamped), RECIPES[name]):
        corners = np.array([[a0, a1] for a0 in (0, a_max) for a1 in (0, a_max)])
        weights = np.array([[b0, b1] for b0 in (-b_max, 0, b_max - 1) for b1 in (-b_max, 0, b_max - 1)])
        worst = np.abs(corners @ weights.T).max()
        assert worst == 2 * a_max * b_max
        assert fits(a_max, b_max) == expected == (worst <= 2 ** 15 - 1)
        # the instruction's twin (saturation included) against the exact sum of 4 products
        a = np.full(4, a_max, np.uint8)
        b = np.full((1, 4), -b_max, np.int8)
        same = np.array_equal(maddubs_python(np.zeros(1, np.int32), a, b), vpdpbusd_python(np.zeros(1, np.int32), a, b))
        assert same == expected


def test_avx2_kernel_takes_codes_only_where_they_fit():
    from minitorch_compress.kernels.int8 import _avx2_shift
    assert _avx2_shift(np.array([[0, 127]], np.uint8), 128) == 0
    assert _avx2_shift(np.array([[0, 128]], np.uint8), 128) is None
    assert _avx2_shift(np.array([[0, 255]], np.uint8), 64) == 0
    assert _avx2_shift(np.array([[-64, 63]], np.int8), 128) == 64      # shifted to 0..127
    assert _avx2_shift(np.array([[-64, 64]], np.int8), 128) is None
    assert _avx2_shift(np.array([[5, 127]], np.int8), 128) == 0


def test_int8_k_above_limit_raises():
    with pytest.raises(ValueError, match="K=65537 exceeds 65536"):
        K.int8_matmul(np.zeros((1, 2 ** 16 + 1), np.int8), np.zeros((2 ** 16 + 1, 1), np.int8))
    with pytest.raises(ValueError, match="K=65537 exceeds 65536"):
        K.pack_int8_weight(np.zeros((1, 2 ** 16 + 1), np.int8))


@pytest.mark.parametrize("call,error,match", [
    (lambda: K.int8_matmul(np.ones((2, 3), np.float32), np.ones((3, 2), np.int8)), TypeError,
     "a must have dtype int8, got float32"),
    (lambda: K.int8_matmul(np.ones((2, 3), np.int8), np.ones((4, 2), np.int8)), ValueError, r"\(2, 3\) and \(4, 2\)"),
    (lambda: K.int8_matmul(np.ones((2, 3, 1), np.int8), np.ones((3, 2), np.int8)), ValueError, "a must be 2-D"),
    (lambda: K.int8_linear(np.ones((2, 3), np.int8), np.ones((2, 3), np.int8)), TypeError,
     "packed must be a PackedInt8Weight"),
    (lambda: K.int8_linear(np.ones((2, 3), np.int16), K.pack_int8_weight(np.ones((2, 3), np.int8))), TypeError,
     "x must have dtype int8 or uint8, got int16"),
    (lambda: K.int8_linear(np.ones((2, 4), np.int8), K.pack_int8_weight(np.ones((2, 3), np.int8))), ValueError,
     r"\(2, 4\) and \(2, 3\)"),
    (lambda: K.int8_linear(np.ones((2, 3), np.int8), K.pack_int8_weight(np.ones((2, 3), np.int8)), kernel="x"),
     ValueError, "unknown int8 kernel 'x'"),
])
def test_int8_rejects_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("per_channel", [False, True])
def test_dequant_and_requant_match_float_reference(per_channel):
    rng = np.random.default_rng(3)
    xq = rng.integers(0, 256, (6, 50), dtype=np.uint8)
    wq = _i8(rng, 12, 50)
    w_scale = rng.uniform(0.01, 0.05, 12) if per_channel else 0.02
    w_zp = rng.integers(-5, 5, 12) if per_channel else 0
    bias = rng.standard_normal(12).astype(np.float32)
    packed = K.pack_int8_weight(wq)
    ref = (0.1 * (xq - 7.0)) @ (np.reshape(w_scale, (-1, 1)) * (wq - np.reshape(w_zp, (-1, 1)))).T + bias
    y = K.int8_linear_dequant(xq, 0.1, 7, packed, w_scale, w_zp, bias)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4)
    q = K.int8_linear_requant(xq, 0.1, 7, packed, w_scale, 0.25, 3, w_zp, bias, out_dtype="qint8")
    assert q.dtype == np.int8
    expected = np.clip(np.rint(y * np.float32(1 / 0.25)) + 3, -128, 127)
    np.testing.assert_array_equal(q, expected)


@pytest.mark.parametrize("kwargs,match", [
    (dict(out_scale=0.0, out_zero_point=0), "out_scale must be finite and > 0, got 0.0"),
    (dict(out_scale=1.0, out_zero_point=300), "out_zero_point=300 outside"),
    (dict(out_scale=1.0, out_zero_point=0, out_dtype="int4"), "unknown out_dtype 'int4'"),
    (dict(out_scale=1.0, out_zero_point=0, w_zero_point=np.zeros(3)), r"w_zero_point must be a scalar or have shape \(2,\)"),
])
def test_requant_rejects_bad_arguments(kwargs, match):
    packed = K.pack_int8_weight(np.ones((2, 3), np.int8))
    with pytest.raises(ValueError, match=match):
        K.int8_linear_requant(np.ones((1, 3), np.int8), 1.0, 0, packed, 1.0, **kwargs)


@pytest.mark.parametrize("kernel", INT8_KERNELS)
@pytest.mark.parametrize("x_dtype,x_zp", [(np.uint8, 7), (np.int8, -3)])
@pytest.mark.parametrize("per_channel", [False, True])
def test_fused_epilogue_is_bit_exact_with_numpy_reference(kernel, x_dtype, x_zp, per_channel):
    rng = np.random.default_rng(4)
    info = np.iinfo(x_dtype)
    for m, k, n in [(1, 784, 100), (37, 300, 100), (200, 1100, 45)]:   # 1100: two VNNI k-blocks
        xq = rng.integers(info.min, info.max + 1, (m, k), dtype=x_dtype)
        wq = _i8(rng, n, k)
        w_scale = rng.uniform(0.001, 0.005, n) if per_channel else 0.002
        w_zp = rng.integers(-5, 5, n) if per_channel else 0
        bias = rng.standard_normal(n).astype(np.float32)
        packed = K.pack_int8_weight(wq, quads=kernel != "portable")
        y = K.int8_linear_dequant(xq, 0.1, x_zp, packed, w_scale, w_zp, bias)
        np.testing.assert_array_equal(y, int8_linear_dequant_reference(xq, 0.1, x_zp, wq, w_scale, w_zp, bias))
        for out_dtype in ("qint8", "quint8"):
            q = K.int8_linear_requant(xq, 0.1, x_zp, packed, w_scale, 0.25, 3, w_zp, bias, out_dtype)
            ref = int8_linear_requant_reference(xq, 0.1, x_zp, wq, w_scale, 0.25, 3, w_zp, bias, out_dtype)
            assert q.dtype == ref.dtype
            np.testing.assert_array_equal(q, ref)


def test_int8_linear_subtracts_the_activation_zero_point():
    rng = np.random.default_rng(5)
    x, w = rng.integers(0, 256, (9, 70), dtype=np.uint8), _i8(rng, 11, 70)
    expected = int8_matmul_reference(x.astype(np.int32) - 255, w.T)
    np.testing.assert_array_equal(K.int8_linear(x, K.pack_int8_weight(w), x_zero_point=255), expected)
    with pytest.raises(ValueError, match=r"x_zero_point must be an integer in \[-128, 127\] for int8 x, got 200"):
        K.int8_linear(x.view(np.int8), K.pack_int8_weight(w), x_zero_point=200)


@pytest.mark.parametrize("dtype,qmin,qmax,zero_point", [(np.uint8, 0, 255, 7), (np.int8, -128, 127, -3),
                                                        (np.uint8, 0, 127, 64), (np.int8, -8, 7, 0)])
@pytest.mark.parametrize("scale", [0.1, 1 / 3, 0.5])
def test_quantize_is_bit_exact_with_quantize_array(dtype, qmin, qmax, zero_point, scale):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((37, 41)) * 40 * scale).astype(np.float32)
    x.flat[:60] = np.arange(-30, 30) * np.float32(scale) / 2      # exact .5 ties: half to even
    for xx in (x, x.astype(np.float64), x[::2, ::3], x.reshape(37, 41, 1)):
        expected = quantize_array(xx, scale, zero_point, qmin, qmax).astype(dtype)
        np.testing.assert_array_equal(K.quantize(xx, scale, zero_point, qmin, qmax, dtype), expected)


@pytest.mark.parametrize("args,error,match", [
    ((np.ones(3, np.complex64), 1.0, 0, 0, 255, np.uint8), TypeError, "x must be a real-valued array"),
    (([1.0], 1.0, 0, 0, 255, np.uint8), TypeError, "x must be a NumPy array or Tensor"),
    ((np.ones(3), 1.0, 0, 0, 255, np.int16), TypeError, "dtype must be int8 or uint8"),
    ((np.ones(3), 1.0, 0, -1, 255, np.uint8), ValueError, r"\[qmin, qmax\] = \[-1, 255\]"),
    ((np.ones(3), 0.0, 0, 0, 255, np.uint8), ValueError, "scale must be finite and > 0, got 0.0"),
    ((np.ones(3), 1.0, 300, 0, 255, np.uint8), ValueError, "zero_point must be an integer in"),
])
def test_quantize_rejects_bad_inputs(args, error, match):
    with pytest.raises(error, match=match):
        K.quantize(*args)


def test_one_thread_and_the_pool_give_identical_results(monkeypatch):
    # small calls run on one thread (kernels/threads.py); each output is computed by one thread in
    # a fixed order either way, so forcing either path must not change a bit
    from minitorch_compress.kernels import threads
    from minitorch_compress.sparse import CSRMatrix
    rng = np.random.default_rng(7)
    x, a, b = _f32(rng, 300, 130), _f32(rng, 40, 130), _f32(rng, 130, 50)
    xq, wq = rng.integers(0, 256, (300, 130), dtype=np.uint8), _i8(rng, 50, 130)
    csr = CSRMatrix.from_dense(np.where(rng.random((50, 130)) < 0.8, 0, _f32(rng, 50, 130)))
    packed = K.pack_int8_weight(wq)

    def everything():
        return (K.quantize(x, 0.05, 3, 0, 255, np.uint8), K.matmul(a, b), csr @ x.T, csr @ x[:1].T,
                K.int8_linear_requant(xq, 0.1, 7, packed, 0.002, 0.25, 3, bias=np.ones(50, np.float32)))

    monkeypatch.setattr(threads, "SERIAL_NS", 0)
    pool = everything()
    monkeypatch.setattr(threads, "SERIAL_NS", float("inf"))
    for got, expected in zip(everything(), pool):
        np.testing.assert_array_equal(got, expected)


@FEW
@given(n=st.integers(1, 70), k=st.integers(0, 70), first=st.integers(0, 69), seed=st.integers(0, 2**32 - 1))
def test_transpose_rows_matches_numpy(n, k, first, seed):
    # whole blocks in registers (transpose.BLOCK), the edges element by element; dst's other
    # columns untouched
    first = min(first, n - 1)
    src = _f32(np.random.default_rng(seed), n, k)
    got, expected = np.full((k, 80), np.nan, np.float32), np.full((k, 80), np.nan, np.float32)
    transpose_rows(src, first, n, got)
    transpose_reference(src, first, n, expected)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("lanes", [8, 16])
def test_transpose_blocks_in_registers_match_numpy(lanes):
    # both recipes on every CPU (transpose_rows uses the one that fits the vector registers): the
    # block at row 3, column 5 of src lands at row 2, column 4 of dst, and nothing else is written
    from numba import njit
    from minitorch_compress.kernels import transpose
    block = {8: transpose._transpose8, 16: transpose._transpose16}[lanes]

    @njit
    def run(src, s_off, s_rs, dst, d_off, d_rs):
        block(src, s_off, s_rs, dst, d_off, d_rs)

    src = _f32(np.random.default_rng(lanes), 40, 37)
    got = np.full((30, 25), np.nan, np.float32)
    run(src, 3 * 37 + 5, 37, got, 2 * 25 + 4, 25)
    expected = np.full((30, 25), np.nan, np.float32)
    expected[2:2 + lanes, 4:4 + lanes] = src[3:3 + lanes, 5:5 + lanes].T
    np.testing.assert_array_equal(got, expected)


SMALLER_CPU_CHECKS = textwrap.dedent("""
    import numpy as np
    from minitorch_compress import kernels as K
    from minitorch_compress.kernels import microkernel
    from minitorch_compress.kernels.dense import matmul_reference
    from minitorch_compress.kernels.int8 import int8_matmul_reference
    from minitorch_compress.sparse import CSRMatrix
    assert (microkernel.MR, microkernel.NR, K.has_vnni()) == (6, 16, False), (microkernel.MR, microkernel.NR)
    rng = np.random.default_rng(0)
    for m, k, n in [(1, 1, 1), (7, 13, 5), (70, 600, 100), (13, 1100, 33)]:
        a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
        np.testing.assert_allclose(K.matmul(a, b), matmul_reference(a, b), rtol=1e-4, atol=1e-3)
        ai, bi = rng.integers(-128, 128, (m, k), dtype=np.int8), rng.integers(-128, 128, (k, n), dtype=np.int8)
        np.testing.assert_array_equal(K.int8_matmul(ai, bi), int8_matmul_reference(ai, bi))
        w = np.where(rng.random((n, k)) < 0.8, 0, rng.standard_normal((n, k))).astype(np.float32)
        s = CSRMatrix.from_dense(w)
        out = s @ a.T
        np.testing.assert_allclose(out, w.astype(np.float64) @ a.T.astype(np.float64), rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(s @ np.ascontiguousarray(a[:1].T), out[:, :1])
    a, b = rng.standard_normal((20, 70)).astype(np.float32), rng.standard_normal((70, 40)).astype(np.float32)
    whole = K.matmul(a, b)
    for m in range(1, 20):   # rows in 6- and 4-row strips, whole and edge tiles: the same bits
        assert K.matmul(a[:m], b).tobytes() == whole[:m].tobytes(), m
    for m in range(1, 200):   # strips of 6 and 4 rows that pad the fewest rows
        big, small = microkernel.MR, microkernel.MR_SMALL
        options = [(b * big + s * small, b + s, b, s)
                   for b in range(m // big + 2) for s in range(m // small + 2) if b * big + s * small >= m]
        assert microkernel.row_strips(m) == min(options)[2:], m
    from minitorch_compress.kernels import csr     # CSR in chunks (48-column blocks): one pass's bits
    w = np.where(rng.random((300, 600)) < 0.6, 0, rng.standard_normal((300, 600))).astype(np.float32)
    s, x = CSRMatrix.from_dense(w), rng.standard_normal((600, 70)).astype(np.float32)
    assert csr._plan(600, 70, s.indptr, s.indices, True)[1] > 1
    chunked, chunked_xt = s @ x, s @ np.ascontiguousarray(x.T).T
    csr.CHUNK_ROWS = 0
    assert chunked.tobytes() == (s @ x).tobytes() == chunked_xt.tobytes()
    a, b = np.full((3, 2 ** 16), -128, np.int8), np.full((2 ** 16, 17), -128, np.int8)
    assert (K.int8_matmul(a, b) == 2 ** 30).all()
    from minitorch_compress.kernels.dense64 import product_python
    a, b = rng.standard_normal((9, 40)), rng.standard_normal((40, 21))
    np.testing.assert_array_equal(K.matmul64(a, b), product_python(a, b))   # no fused multiply-add
""")


AVX2_CHECKS = """
    # the AVX2 byte kernel (vpmaddubsw): exact wherever the codes fit its int16 pair sums, which
    # is checked per call; codes that do not fit (a plan of "portable") stay exact too
    from minitorch_compress.kernels import int8
    assert int8.BYTE_KERNEL == "avx2"
    for x_lo, x_hi, w_lo, w_hi, x_dtype, plan in [(0, 127, -128, 127, np.uint8, "avx2"),
                                                 (0, 255, -64, 64, np.uint8, "avx2"),
                                                 (-64, 63, -128, 127, np.int8, "avx2"),
                                                 (0, 255, -128, 127, np.uint8, "portable"),
                                                 (-128, 127, -128, 127, np.int8, "portable")]:
        for m, k, n in [(1, 2, 1), (7, 13, 5), (70, 600, 100), (13, 1100, 33), (3, 2 ** 16, 17)]:
            x = rng.integers(x_lo, x_hi + 1, (m, k)).astype(x_dtype)
            w = rng.integers(w_lo, w_hi + 1, (n, k)).astype(np.int8)
            x[0], x[-1, -1], w[0] = x_hi, x_lo, w_lo      # the range's ends: its worst pair sums
            packed = K.pack_int8_weight(w)
            assert int8._plan(x, packed.quads is not None, packed.max_abs, None)[0] == plan
            np.testing.assert_array_equal(K.int8_linear(x, packed, x_zero_point=x_lo + 1),
                                          int8_matmul_reference(x.astype(np.int64) - (x_lo + 1), w.T))
            if x_dtype == np.int8:
                np.testing.assert_array_equal(K.int8_matmul(x, w.T), int8_matmul_reference(x, w.T))
    # the micro-kernel and its twin agree, saturation included (full-range codes on purpose)
    from numba import njit

    @njit
    def tile(a, a_off, a_rs, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate):
        microkernel.tile(a, a_off, a_rs, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate)

    @njit
    def tile_small(a, a_off, a_rs, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate):
        microkernel.tile_small(a, a_off, a_rs, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate)

    a = rng.integers(0, 256, microkernel.MR * 41 * 4).astype(np.uint8)
    b = rng.integers(-128, 128, 37 * microkernel.NR * 4).astype(np.int8)
    c, init = np.zeros(microkernel.MR * microkernel.NR, np.int32), np.arange(microkernel.NR, dtype=np.int32)
    for compiled_tile, python_tile in [(tile, microkernel.tile_python), (tile_small, microkernel.tile_small_python)]:
        compiled, python = c.copy(), c.copy()
        compiled_tile(a, 3, 41, b, 0, 37, compiled, 0, microkernel.NR, init, 0, 0)
        python_tile(a, 3, 41, b, 0, 37, python, 0, microkernel.NR, init, 0, 0)
        assert compiled.tobytes() == python.tobytes()
    counts = K.instruction_counts("avx2")
    assert counts["vpmaddubsw"] > 0 and counts["vpmaddwd"] > 0 and counts["vpdpbusd"] == 0, counts
"""


def test_kernels_compiled_for_a_smaller_cpu():
    # Most learners' laptops have AVX2, not AVX-512: on an x86 host, compile for Haswell (6 x 16 tiles,
    # 32-column CSR blocks, no VNNI: the AVX2 int8 kernel on vpmaddubsw, the portable one on
    # vpmaddwd); elsewhere (arm64) for the generic target of the host's architecture. Every kernel must still be exact. This CPU runs that
    # code; a fresh process, because the target is fixed when Numba loads.
    if X86:
        env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=HASWELL)
        checks = SMALLER_CPU_CHECKS + textwrap.dedent(AVX2_CHECKS) + (
            'assert K.instruction_counts("dense")["vfmadd231ps"] > 0 and '
            'K.instruction_counts("portable")["vpmaddwd"] > 0\n')
    else:   # no x86 intrinsics on a generic target: the portable kernel only
        env = dict(os.environ, NUMBA_CPU_NAME="generic")
        checks = SMALLER_CPU_CHECKS + "from minitorch_compress.kernels import int8\nassert int8.BYTE_KERNEL is None\n"
    result = subprocess.run([sys.executable, "-c", checks], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


# ----- float64 in a fixed order -------------------------------------------------------------
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 13, 5), (33, 70, 17), (0, 4, 3), (3, 0, 2)])
def test_matmul64_is_its_python_loop_bit_for_bit(m, k, n):
    from minitorch_compress.kernels.dense64 import product_python
    rng = np.random.default_rng(m * 100 + k)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    got = K.matmul64(a, b)
    np.testing.assert_array_equal(got, product_python(a, b))
    np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12)


def test_matmul64_same_bits_on_one_thread_and_non_contiguous_inputs():
    import numba
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((200, 90)), rng.standard_normal((60, 90)).T   # b is a transpose
    pool = K.matmul64(a, b)
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        np.testing.assert_array_equal(K.matmul64(a, b), pool)
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(pool, K.matmul64(a, np.ascontiguousarray(b)))


def test_engine_float64_products_use_matmul64():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2, 5, 7)), rng.standard_normal((7, 3))
    out = mc.matmul(mc.Tensor(a), mc.Tensor(b)).data
    for i in range(2):
        np.testing.assert_array_equal(out[i], K.matmul64(a[i], b))
    with pytest.raises(TypeError, match="float64"):
        K.matmul64(a[0].astype(np.float32), b)
    with pytest.raises(ValueError, match=r"\(5, 7\) and \(3, 7\)"):
        K.matmul64(a[0], b.T)


# ----- the "numba" backend in training ---------------------------------------------------
def _loss_curve(backend):
    from minitorch_compress import functional as F
    mc.manual_seed(0)
    model = mc.nn.Sequential(mc.nn.Linear(20, 32), mc.nn.ReLU(), mc.nn.Linear(32, 5))
    opt = mc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    x = mc.tensor(rng.standard_normal((64, 20)))
    y = mc.tensor(rng.integers(0, 5, 64))
    losses = []
    with mc.use_backend(backend):
        for _ in range(15):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return np.array(losses)


def test_training_through_numba_backend_matches_numpy():
    numpy_curve, numba_curve = _loss_curve("numpy"), _loss_curve("numba")
    assert numpy_curve[-1] < numpy_curve[0]
    np.testing.assert_allclose(numba_curve, numpy_curve, rtol=1e-4, atol=1e-5)


# ----- memory ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.int64])
@pytest.mark.parametrize("shape", [(1,), (3, 5), (1000, 1000), (2, 3, 4)])
def test_aligned_empty_starts_on_a_cache_line(shape, dtype):
    from minitorch_compress.kernels.workspace import ALIGN, aligned_empty, scratch
    a = aligned_empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert a.ctypes.data % ALIGN == 0
    assert not np.shares_memory(a, aligned_empty(shape, dtype))
    assert scratch(f"test_{np.dtype(dtype).name}", int(np.prod(shape)), dtype).ctypes.data % ALIGN == 0


def test_packed_operands_and_scratch_start_on_a_cache_line():
    # a vector that straddles two cache lines loads at half speed: what the kernels stream through
    # (the packed int8 weight, the scratch buffers of packed B and of the CSR blocks) starts on one
    from minitorch_compress.kernels import workspace
    from minitorch_compress.sparse import CSRMatrix
    rng = np.random.default_rng(13)
    packed = K.pack_int8_weight(_i8(rng, 29, 50))
    arrays = [packed.portable] + ([] if packed.quads is None else [packed.quads])
    K.matmul(_f32(rng, 37, 50), _f32(rng, 50, 29))
    CSRMatrix.from_dense(_f32(rng, 29, 50)) @ _f32(rng, 37, 50).T
    arrays += [workspace.scratch(name, 1, np.float32) for name in ("dense_b", "csr_blocks")]
    for arr in arrays:
        assert arr.ctypes.data % workspace.ALIGN == 0


# ----- the plain-Python twins (what runs with NUMBA_DISABLE_JIT=1) -------------------------
def _fma_exact(a, b, c):
    """Correctly rounded float32 a*b + c from exact rationals: the nearest float32, ties to even."""
    from fractions import Fraction
    x = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    f = np.float32(float(x))
    candidates = [np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))]
    distances = [abs(Fraction(float(g)) - x) for g in candidates]
    nearest = [g for g, d in zip(candidates, distances) if d == min(distances)]
    return min(nearest, key=lambda g: int(np.array(g).view(np.int32)) & 1)


def test_fma32_rounds_once():
    from minitorch_compress.kernels.fma import fma32
    # 1 + 2^-23 + 2^-24 (1 - 2^-46) lies just below a float32 midpoint; float64 rounds it onto the
    # midpoint, and rounding that to float32 (ties to even) would go up: double rounding
    a, b, c = np.float32(1 + 2 ** -23), np.float32(2 ** -24 * (1 - 2 ** -23)), np.float32(1 + 2 ** -23)
    assert np.float32(np.float64(a) * np.float64(b) + np.float64(c)) != _fma_exact(a, b, c)
    assert fma32(a, b, c) == _fma_exact(a, b, c) == np.float32(1 + 2 ** -23)
    rng = np.random.default_rng(0)
    # random mantissas at exponents close enough for the product and addend to interact
    a = (rng.standard_normal(3000) * 2.0 ** rng.integers(-3, 4, 3000)).astype(np.float32)
    b = (rng.standard_normal(3000) * 2.0 ** rng.integers(-30, -20, 3000)).astype(np.float32)
    c = rng.standard_normal(3000).astype(np.float32)
    got = fma32(a, b, c)
    assert all(g == _fma_exact(*t) for g, t in zip(got, zip(a, b, c)))


@njit
def _call_tile(a, a_off, a_rs, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate):
    microkernel.tile(a, a_off, a_rs, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate)


@njit
def _call_tile_small(a, a_off, a_rs, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate):
    microkernel.tile_small(a, a_off, a_rs, b, b_off, kc, c, c_off, c_rs, init, init_off, accumulate)


@pytest.mark.parametrize("small", [False, True])
@pytest.mark.parametrize("kind", ["float32", "int16", "int8"])
def test_tile_python_is_the_intrinsic_bit_for_bit(kind, small):
    if kind == "int8" and not K.has_vnni():
        kind = "int16"   # vpdpbusd exists only with AVX512-VNNI; the portable kernel everywhere
    for kc in [*range(1, 10), 37]:   # below, at and past the float32 unroll (microkernel.K_UNROLL = 4)
        _check_tile(kind, kc, small)


def _check_tile(kind, kc, small):
    from minitorch_compress.kernels.microkernel import MR, NR
    compiled_tile, python_tile = ((_call_tile_small, microkernel.tile_small_python) if small else
                                  (_call_tile, microkernel.tile_python))
    rng = np.random.default_rng(kc)
    a_rs = 41                               # lanes per A row; C rows NR + 3 lanes apart
    if kind == "float32":
        a = rng.standard_normal(MR * a_rs).astype(np.float32)
        b = rng.standard_normal(kc * NR).astype(np.float32)
        c, init = rng.standard_normal(MR * (NR + 3)).astype(np.float32), rng.standard_normal(NR).astype(np.float32)
    else:
        narrow = np.int16 if kind == "int16" else np.uint8
        a = rng.integers(0 if kind == "int8" else -128, 128, MR * a_rs * (4 // np.dtype(narrow).itemsize)).astype(narrow)
        b = rng.integers(-128, 128, kc * NR * (4 // np.dtype(narrow).itemsize)).astype(np.int16 if kind == "int16" else np.int8)
        c = rng.integers(-2 ** 31, 2 ** 31, MR * (NR + 3)).astype(np.int32)   # wraps are part of the deal
        init = rng.integers(-2 ** 20, 2 ** 20, NR).astype(np.int32)
    for accumulate in (0, 1):
        compiled, python = c.copy(), c.copy()
        compiled_tile(a, 3, a_rs, b, 0, kc, compiled, 2, NR + 3, init, 0, accumulate)
        python_tile(a, 3, a_rs, b, 0, kc, python, 2, NR + 3, init, 0, accumulate)
        assert compiled.tobytes() == python.tobytes()
        assert not np.array_equal(compiled, c)


NO_JIT_PRODUCTS = textwrap.dedent("""
    import sys
    import numpy as np
    from minitorch_compress import kernels as K
    from minitorch_compress.sparse import CSRMatrix
    rng, out = np.random.default_rng(0), {}
    for m, k, n in [(1, 1, 1), (7, 13, 5), (13, 70, 37), (17, 40, 70)]:   # edge tiles and blocks
        a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
        out[f"dense{m}"], out[f"dense_bt{m}"] = K.matmul(a, b), K.matmul(a, np.ascontiguousarray(b.T).T)
        w = np.where(rng.random((n, k)) < 0.7, 0, rng.standard_normal((n, k))).astype(np.float32)
        s = CSRMatrix.from_dense(w)
        out[f"csr{m}"], out[f"csr_xt{m}"] = s @ np.ascontiguousarray(a.T), s @ a.T
        ai, bi = rng.integers(-128, 128, (m, k), dtype=np.int8), rng.integers(-128, 128, (k, n), dtype=np.int8)
        out[f"int8{m}"], out[f"int8p{m}"] = K.int8_matmul(ai, bi), K.int8_matmul(ai, bi, kernel="portable")
        xu = rng.integers(0, 128, (m, k), dtype=np.uint8)     # no shift: read in place where K % 4 == 0
        out[f"int8u{m}"] = K.int8_linear(xu, K.pack_int8_weight(bi.T))
    from minitorch_compress.kernels import csr     # the dense matrix in chunks of a few rows, as AVX2 does
    csr.CHUNK_ROWS, csr.CHUNK_NNZ, csr.L1_BYTES = 3, 0, 0
    out["csr_chunks"], out["csr_xt_chunks"] = s @ np.ascontiguousarray(a.T), s @ a.T
    np.savez(sys.argv[1], **out)
    from numba import config
    if config.DISABLE_JIT:   # no machine code: a clear error, not a crash deep in Numba
        try:
            K.instruction_counts("dense")
            raise AssertionError("instruction_counts ran without the JIT")
        except RuntimeError as e:
            assert "NUMBA_DISABLE_JIT" in str(e)
""")


def test_kernels_run_as_plain_python_with_the_same_bits(tmp_path):
    # minitorch's teaching trick: NUMBA_DISABLE_JIT=1 turns every kernel into Python a debugger can
    # step through; the intrinsics' twins then run, and must give the compiled kernels' bits
    python, compiled = run_jit_off_and_on(NO_JIT_PRODUCTS, tmp_path)
    assert set(python) == set(compiled) and len(python) == 30
    for key in python:
        assert python[key].tobytes() == compiled[key].tobytes(), key
