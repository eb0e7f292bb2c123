"""kernels.batched_matmul (attention's many small products) and kernels.erfc (GELU): the same bits as
the per-matrix GEMM and the NumPy twin, with the JIT on and off; the engine routes batched products to it."""
import os
import sys

import numpy as np
import pytest
import scipy.special

import minitorch_compress as mc
from minitorch_compress import kernels
from minitorch_compress.kernels import batched, transcendental

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jit_twins import run_jit_off_and_on  # noqa: E402

# (P, M, K, N): attention's shapes, a K longer than the GEMM's k-block (256), degenerate sizes
SHAPES = [(256, 17, 16, 17), (6, 17, 17, 16), (3, 5, 300, 7), (4, 33, 70, 41), (2, 1, 1, 1), (3, 0, 4, 5)]


def operands(shape, seed=0):
    p, m, k, n = shape
    rng = np.random.default_rng(seed)
    # values of very different sizes, so that the order of the additions shows in the bits
    a = (rng.standard_normal((p, m, k)) * 10.0 ** rng.integers(-3, 3, (p, m, k))).astype(np.float32)
    return a, rng.standard_normal((p, k, n)).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
def test_same_bits_as_the_gemm_one_matrix_at_a_time(shape):
    a, b = operands(shape)
    out = kernels.batched_matmul(a, b)
    expected = np.stack([kernels.matmul(a[i], b[i]) for i in range(shape[0])]).reshape(out.shape)
    assert out.dtype == np.float32 and out.tobytes() == expected.tobytes()
    np.testing.assert_allclose(out, batched.batched_matmul_reference(a, b), rtol=1e-4, atol=1e-3)


def test_numpy_twin_agrees_and_views_are_read_correctly():
    a, b = operands((5, 9, 12, 7))
    twin = np.empty((5, 9, 7), np.float32)
    batched.batched_matmul_python(a, b, twin)
    assert twin.tobytes() == kernels.batched_matmul(a, b).tobytes()
    bt = np.ascontiguousarray(b.transpose(0, 2, 1))            # a transposed view, as K^T in attention
    assert kernels.batched_matmul(a, bt.transpose(0, 2, 1)).tobytes() == twin.tobytes()


def test_bad_input_is_rejected():
    a, b = operands((2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\) and \(2, 3, 5\)"):
        kernels.batched_matmul(a, b[:, :3])
    with pytest.raises(TypeError, match="float64"):
        kernels.batched_matmul(a.astype(np.float64), b)
    with pytest.raises(TypeError, match="list"):
        kernels.batched_matmul(a.tolist(), b)


def test_engine_batched_products_with_broadcast_give_the_per_matrix_bits():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((3, 4, 17, 8)).astype(np.float32)
    k = rng.standard_normal((1, 4, 8, 17)).astype(np.float32)      # broadcast over the first dimension
    w = rng.standard_normal((8, 5)).astype(np.float32)             # one matrix for every row of q
    out = (mc.tensor(q) @ mc.tensor(k)).data
    expected = np.stack([[kernels.matmul(q[i, h], k[0, h]) for h in range(4)] for i in range(3)])
    assert out.tobytes() == expected.tobytes()
    assert (mc.tensor(q) @ mc.tensor(w)).data.tobytes() == kernels.matmul(q.reshape(-1, 8), w).reshape(3, 4, 17, 5).tobytes()


def test_erfc_kernel_scalar_and_twin_agree_bit_for_bit_and_match_scipy():
    rng = np.random.default_rng(0)
    edges = [0.0, -0.0, 5e-324, -5e-324, 1e-17, -1e-17, 1e-16, 3.0, -3.0, 26.55, 27.3, -27.3, 40.0, 1e300, -1e300,
             np.inf, -np.inf, np.nan]     # 27.3: exp(-z^2) goes subnormal; 1e-17 < 2^-56 < 1e-16
    z = np.concatenate([rng.standard_normal(20_000) * s for s in (0.1, 1, 3, 10)] + [edges])
    with np.errstate(all="ignore"):
        out, twin = kernels.erfc(z), transcendental.erfc_reference(z)
    scalar = np.array([transcendental.erfc_scalar(v) for v in z])
    assert out.view(np.uint64).tolist() == twin.view(np.uint64).tolist() == scalar.view(np.uint64).tolist()
    assert out[-len(edges):][:6].tolist() == [1.0] * 6      # near 0 erfc rounds to 1, exactly
    np.testing.assert_allclose(out, scipy.special.erfc(z), rtol=1e-14, atol=1e-300)
    x32 = (rng.standard_normal(200_000) * 3).astype(np.float32)       # GELU's use: float32 in, rounded once
    assert kernels.erfc(x32).tobytes() == scipy.special.erfc(x32.astype(np.float64)).astype(np.float32).tobytes()


NO_JIT = """
import sys
import numpy as np
from minitorch_compress import kernels
from minitorch_compress.kernels import transcendental
rng = np.random.default_rng(0)
a, b = rng.standard_normal((3, 5, 7)).astype(np.float32), rng.standard_normal((3, 7, 4)).astype(np.float32)
z = np.concatenate([rng.standard_normal(200) * 3, [4.5, -5.0, np.inf]])
x = np.concatenate([rng.uniform(-745, -700, 200), rng.standard_normal(200) * 30, [709.5, -744.5, -np.inf, np.nan]])
np.savez(sys.argv[1], product=kernels.batched_matmul(a, b), erfc=kernels.erfc(z), exp=transcendental.exp(x))
"""


def test_kernels_run_as_plain_python_with_the_same_bits(tmp_path):
    python, compiled = run_jit_off_and_on(NO_JIT, tmp_path)
    for key in ("product", "erfc", "exp"):   # exp down to its subnormal results (2^k built two ways)
        assert python[key].tobytes() == compiled[key].tobytes(), key
