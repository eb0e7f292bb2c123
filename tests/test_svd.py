"""kernels.svd (one-sided Jacobi): a valid SVD to float64 accuracy, LAPACK's singular values, the
compiled kernel and the plain Python loop bit for bit, and clear errors."""
import numpy as np
import pytest

from minitorch_compress.kernels import svd
from minitorch_compress.kernels.svd import _orthogonalize_rows, _orthogonalize_rows_kernel


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (5, 9), (9, 5), (30, 30), (40, 120), (120, 40)])
def test_is_an_svd_with_lapacks_singular_values(shape):
    a = np.random.default_rng(sum(shape)).standard_normal(shape)
    u, s, vt = svd(a)
    k = min(shape)
    assert u.shape == (shape[0], k) and s.shape == (k,) and vt.shape == (k, shape[1])
    assert np.all(np.diff(s) <= 0) and np.all(s >= 0)
    np.testing.assert_allclose((u * s) @ vt, a, atol=1e-12)
    np.testing.assert_allclose(u.T @ u, np.eye(k), atol=1e-12)
    np.testing.assert_allclose(vt @ vt.T, np.eye(k), atol=1e-12)
    np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False), rtol=1e-12, atol=1e-13 * s[0])


def test_rank_deficient_and_repeated_singular_values():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((12, 3)) @ rng.standard_normal((3, 20))           # rank 3
    u, s, vt = svd(a)
    assert np.all(s[3:] < 1e-12 * s[0])
    np.testing.assert_allclose((u * s) @ vt, a, atol=1e-12)
    u, s, vt = svd(np.eye(6) * 2.0)                                            # six equal values
    np.testing.assert_array_equal(s, np.full(6, 2.0))
    np.testing.assert_allclose((u * s) @ vt, np.eye(6) * 2.0, atol=1e-15)
    u, s, vt = svd(np.zeros((3, 4)))
    np.testing.assert_array_equal(s, 0)


def test_kernel_and_python_loop_agree_bit_for_bit():
    a = np.random.default_rng(3).standard_normal((8, 13))
    rows_jit, rows_py = a.copy(), a.copy()
    q_jit, q_py = np.eye(8), np.eye(8)
    sweeps = _orthogonalize_rows_kernel(rows_jit, q_jit, 1e-15, 60), _orthogonalize_rows(rows_py, q_py, 1e-15, 60)
    assert sweeps[0] == sweeps[1] < 60
    np.testing.assert_array_equal(rows_jit, rows_py)
    np.testing.assert_array_equal(q_jit, q_py)
    for x, y in zip(svd(a), svd(a, kernel=False)):
        np.testing.assert_array_equal(x, y)


def test_input_is_not_modified_and_float32_works():
    a = np.random.default_rng(4).standard_normal((6, 10)).astype(np.float32)
    before = a.copy()
    u, s, vt = svd(a)
    np.testing.assert_array_equal(a, before)
    assert u.dtype == s.dtype == vt.dtype == np.float64
    np.testing.assert_allclose((u * s) @ vt, a, atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(3,\)"):
        svd(np.ones(3))
    with pytest.raises(ValueError, match="nan"):
        svd(np.array([[1.0, np.nan]]))
    with pytest.raises(TypeError, match="complex"):
        svd(np.ones((2, 2), complex))
    with pytest.raises(TypeError, match="list"):
        svd([[1.0]])
