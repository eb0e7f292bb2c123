"""CSR kernel, CSRMatrix and SparseLinear against dense NumPy and SciPy."""
import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings, strategies as st

import minitorch_compress as mc
from minitorch_compress.kernels import csr, csr_matmul, has_sorted_indices
from minitorch_compress.kernels.csr import csr_matmul_reference
from minitorch_compress.sparse import CSRMatrix, SparseLinear, csr_bytes

FEW = settings(max_examples=25, deadline=None)


def _sparse(rng, shape, sparsity):
    a = rng.standard_normal(shape).astype(np.float32)
    a[rng.random(shape) < sparsity] = 0
    return a


@FEW
@given(r=st.integers(0, 40), k=st.integers(0, 40), n=st.integers(0, 40),
       sparsity=st.sampled_from([0.0, 0.5, 0.9, 1.0]), seed=st.integers(0, 2**32 - 1))
def test_csr_matmul_random(r, k, n, sparsity, seed):
    rng = np.random.default_rng(seed)
    a = _sparse(rng, (r, k), sparsity)
    dense = rng.standard_normal((k, n)).astype(np.float32)
    s = scipy.sparse.csr_matrix(a)
    out = csr_matmul(s.indptr, s.indices, s.data, dense)
    assert out.dtype == np.float32 and out.shape == (r, n)
    np.testing.assert_allclose(out, csr_matmul_reference(s.indptr, s.indices, s.data, dense), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, s @ dense, rtol=1e-5, atol=1e-5)


def _chunked(monkeypatch, rows):
    """Make the CSR product walk the dense matrix in chunks of ``rows`` rows (fewer with AVX2's
    48-column blocks; 0: never) whatever its size and the CPU, and count the products that did."""
    calls = []
    bounds = csr.chunk_bounds
    monkeypatch.setattr(csr, "chunk_bounds", lambda *args: calls.append(1) or bounds(*args))
    monkeypatch.setattr(csr, "CHUNK_ROWS", rows)
    monkeypatch.setattr(csr, "CHUNK_NNZ", 0)
    monkeypatch.setattr(csr, "L1_BYTES", 0)
    return calls


@pytest.mark.parametrize("n", [1, 5, 16, 17, 33, 70])
def test_chunks_of_the_dense_matrix_give_the_same_bits(monkeypatch, n):
    # With AVX2 a product whose dense block outgrows L1 takes it in chunks of rows, each row's two
    # accumulator sets kept in memory in between: the same sums in the same order, the same bits.
    # Rows of 0-11 nonzeros, odd and even, so that chunks meet rows' last odd nonzeros and empty rows
    rng = np.random.default_rng(n)
    k = 90
    a = np.zeros((41, k), np.float32)
    for r, count in enumerate(rng.integers(0, 12, 41)):
        a[r, rng.choice(k, count, replace=False)] = rng.standard_normal(count)
    s = CSRMatrix.from_dense(a)
    x = rng.standard_normal((n, k)).astype(np.float32)
    _chunked(monkeypatch, 0)
    whole = [s @ x.T, s @ np.ascontiguousarray(x.T)]     # x.T as a transpose, copied by the kernel
    np.testing.assert_allclose(whole[0], a.astype(np.float64) @ x.T, rtol=1e-5, atol=1e-5)
    assert whole[0].tobytes() == whole[1].tobytes()
    for rows in (1, 2, 3, 7, 30):
        calls = _chunked(monkeypatch, rows)
        assert (s @ x.T).tobytes() == whole[0].tobytes(), rows
        assert (s @ np.ascontiguousarray(x.T)).tobytes() == whole[0].tobytes(), rows
        assert len(calls) == 2


def test_chunks_only_where_rows_have_enough_nonzeros_in_each(monkeypatch):
    # the AVX2 rule, whatever the CPU: chunks of at most 32 KiB of the dense block when it outgrows
    # L1, and only if rows have CHUNK_NNZ nonzeros per chunk on average; 48-column tasks where they
    # take chunks, else 32
    for name, value in (("CHUNK_ROWS", 256), ("CHUNK_NNZ", 40), ("L1_BYTES", 32 * 1024), ("CW", 32),
                        ("CW_CHUNKED", 48)):
        monkeypatch.setattr(csr, name, value)
    n = 16     # 64 bytes a row of the block at either width
    assert csr._chunks(512, n, 10_000, 32) == 1                                # 32 KiB: fits L1
    assert csr._chunks(513, n, 10_000, 32) == 3                                # 3 chunks of 171 rows
    assert csr._chunks(1024, n, 512, 32) == csr._chunks(1024, n, 160, 32) == 4   # 40 a chunk and more
    assert csr._chunks(1024, n, 159.9, 32) == csr._chunks(1024, n, 0, 32) == 1   # fewer: one pass
    assert csr._chunks(1024, 256, 280, 48) == 7                                # 170 rows of 48 columns
    assert csr._chunks(1024, 256, 279, 48) == 1

    def plan(nnz_per_row, sorted_indices=True):
        indptr = np.arange(0, 1025 * nnz_per_row, nnz_per_row)
        return csr._plan(1024, 256, indptr, np.zeros(indptr[-1], np.int32), sorted_indices)

    assert plan(512) == (48, 7) and plan(280) == (48, 7)
    assert plan(279) == (32, 4) and plan(160) == (32, 4)
    assert plan(159) == plan(512, sorted_indices=False) == (32, 1)
    monkeypatch.setattr(csr, "CHUNK_ROWS", 0)                                  # AVX-512: never
    assert csr._chunks(1024, n, 10_000, 32) == 1 and plan(512) == (32, 1)


def test_column_blocks_share_the_threads_evenly(monkeypatch):
    # tasks' column blocks: CW columns; at CW_CHUNKED (48 with AVX2), each thread's share of the
    # 16-column vectors in as few, as even blocks as fit, as a thread takes consecutive tasks
    monkeypatch.setattr(csr, "CW", 32)
    monkeypatch.setattr(csr, "CW_CHUNKED", 48)
    assert csr.column_blocks(70, 32, 2).tolist() == [0, 32, 64, 70]
    assert csr.column_blocks(256, 48, 1).tolist() == [0, 32, 80, 128, 160, 208, 256]     # not 5 x 48 + 16
    assert csr.column_blocks(256, 48, 2).tolist() == [0, 32, 80, 128, 160, 208, 256]     # 128 a thread
    assert csr.column_blocks(256, 48, 8).tolist() == list(range(0, 257, 32))             # 2 vectors a thread
    assert csr.column_blocks(70, 48, 1).tolist() == [0, 32, 70]     # 5 vectors, the last one partial
    for n in range(1, 300):
        for threads in (1, 2, 3, 8):
            starts = csr.column_blocks(n, 48, threads)
            widths = np.diff(starts)
            assert starts[0] == 0 and starts[-1] == n and (widths > 0).all() and (widths <= 48).all()
            assert (widths[:-1] % 16 == 0).all(), (n, threads)


def test_unsorted_indices_are_never_chunked(monkeypatch):
    # chunks are found by binary search in each row's columns, so rows must keep them in order
    indptr, indices = np.array([0, 3, 3, 5]), np.array([4, 1, 2, 0, 3])
    data = np.arange(1, 6, dtype=np.float32)
    assert not has_sorted_indices(indptr, indices)
    assert has_sorted_indices(indptr, np.array([1, 2, 4, 0, 3])) and has_sorted_indices(indptr[:1], indices[:0])
    assert has_sorted_indices(np.array([0, 2, 2]), np.array([3, 3]))    # repeated columns are in order
    dense = np.random.default_rng(0).standard_normal((5, 40)).astype(np.float32)
    calls = _chunked(monkeypatch, 2)
    out = csr_matmul(indptr, indices, data, dense)
    np.testing.assert_allclose(out, csr_matmul_reference(indptr, indices, data, dense), rtol=1e-5, atol=1e-5)
    assert not calls and not CSRMatrix(indptr, indices, data, (3, 5)).has_sorted_indices


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 1.0])
def test_csr_matrix_round_trip_and_product(sparsity):
    rng = np.random.default_rng(0)
    a = _sparse(rng, (37, 29), sparsity)
    a[5] = 0                                   # an empty row
    m = CSRMatrix.from_dense(a)
    assert m.shape == (37, 29) and m.nnz == np.count_nonzero(a)
    np.testing.assert_array_equal(m.to_dense(), a)
    np.testing.assert_array_equal(m.T.to_dense(), a.T)
    dense = rng.standard_normal((29, 11)).astype(np.float32)
    np.testing.assert_allclose(m @ dense, a @ dense, rtol=1e-5, atol=1e-5)
    g = rng.standard_normal((37, 4)).astype(np.float32)
    np.testing.assert_allclose(m.T @ g, a.T @ g, rtol=1e-5, atol=1e-5)   # the backward-pass product


def test_csr_matmul_non_contiguous_dense_and_int64_indices():
    rng = np.random.default_rng(1)
    s = scipy.sparse.csr_matrix(_sparse(rng, (20, 30), 0.7))
    dense = rng.standard_normal((13, 60)).astype(np.float32).T[::2]          # (30, 13), strided
    out = csr_matmul(s.indptr.astype(np.int64), s.indices.astype(np.int64), s.data, dense)
    np.testing.assert_allclose(out, s @ dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1), (70, 45), (100, 64), (130, 17)])   # whole and partial 16 x 16 blocks
def test_csr_matrix_times_transposed_batch(shape):
    rng = np.random.default_rng(4)
    a = _sparse(rng, (9, shape[1]), 0.6)
    x = rng.standard_normal(shape).astype(np.float32)
    for dense in (x.T, x[:, ::-1].T):     # a transpose (copied per task), and any other strides
        np.testing.assert_allclose(CSRMatrix.from_dense(a) @ dense, a @ dense, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"shapes \(9, 45\) and \(46, 2\) do not match for A @ dense"):
        CSRMatrix.from_dense(_sparse(rng, (9, 45), 0.6)) @ np.ones((46, 2), np.float32)


@pytest.mark.parametrize("n", [16, 100, 300])
def test_batch_of_one_rounds_as_a_batch(n):
    # the one-column kernel groups the sums as the 16- and 64-column ones do (n = 100 uses all
    # three), and a transposed batch goes through a per-task copy: bit-identical columns
    rng = np.random.default_rng(5)
    a = CSRMatrix.from_dense(_sparse(rng, (50, 300), 0.9))
    x = rng.standard_normal((n, 300)).astype(np.float32)
    batch = a @ np.ascontiguousarray(x.T)
    np.testing.assert_array_equal(a @ x.T, batch)
    for j in (0, 7, 15, n - 1):
        np.testing.assert_array_equal(a @ np.ascontiguousarray(x[j:j + 1].T), batch[:, j:j + 1])


def test_matmul_with_tensor_backpropagates():
    rng = np.random.default_rng(2)
    a = _sparse(rng, (8, 6), 0.5)
    x = mc.tensor(rng.standard_normal((6, 5)), requires_grad=True)
    (CSRMatrix.from_dense(a) @ x).sum().backward()
    np.testing.assert_allclose(x.grad, a.T @ np.ones((8, 5), np.float32), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args,error,match", [
    ((np.array([0, 1]), np.array([0]), np.array([1.0], np.float64), np.ones((2, 2), np.float32)), TypeError,
     "data must be a 1-D float32 array, got dtype float64"),
    ((np.array([0, 1]), np.array([2]), np.array([1.0], np.float32), np.ones((2, 2), np.float32)), ValueError,
     r"column indices must lie in \[0, 2\), got range \[2, 2\]"),
    ((np.array([0, 2]), np.array([0]), np.array([1.0], np.float32), np.ones((2, 2), np.float32)), ValueError,
     "indptr.-1.=2 but indices has 1"),
    ((np.array([1, 1]), np.array([], np.int32), np.array([], np.float32), np.ones((2, 2), np.float32)), ValueError,
     "indptr must start at 0"),
    ((np.array([0.0, 1.0]), np.array([0]), np.array([1.0], np.float32), np.ones((2, 2), np.float32)), TypeError,
     "indptr must be a 1-D integer array"),
    ((np.array([0, 1]), np.array([0]), np.array([1.0], np.float32), np.ones((2, 2), np.float64)), TypeError,
     "dense must have dtype float32, got float64"),
])
def test_csr_matmul_rejects_bad_inputs(args, error, match):
    with pytest.raises(error, match=match):
        csr_matmul(*args)


def test_csr_matrix_rejects_bad_inputs():
    with pytest.raises(TypeError, match="array must have dtype float32, got float64"):
        CSRMatrix.from_dense(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"indptr has 2 entries; shape \(3, 2\) needs 4"):
        CSRMatrix(np.array([0, 0]), np.array([], np.int32), np.array([], np.float32), (3, 2))


def _pruned_linear(sparsity, bias=True):
    mc.manual_seed(0)
    fc = mc.nn.Linear(24, 16, bias=bias)
    fc.weight.data[np.random.default_rng(3).random(fc.weight.shape) < sparsity] = 0
    return fc


@pytest.mark.parametrize("sparsity,bias", [(0.0, True), (0.8, True), (0.8, False), (1.0, True)])
def test_sparse_linear_matches_linear(sparsity, bias):
    fc = _pruned_linear(sparsity, bias)
    layer = SparseLinear.from_linear(fc)
    assert isinstance(layer, mc.nn.Module)
    assert layer.weight_csr.nnz == np.count_nonzero(fc.weight.data)
    x = mc.tensor(np.random.default_rng(4).standard_normal((10, 24)), requires_grad=True)
    np.testing.assert_allclose(layer(x).data, fc(x).data, rtol=1e-5, atol=1e-5)
    layer(x).sum().backward()
    grad = x.grad.copy()
    x.grad = None
    fc(x).sum().backward()
    np.testing.assert_allclose(grad, x.grad, rtol=1e-5, atol=1e-5)


def test_sparse_linear_from_masked_weight():
    # a pruned Linear exposes weight = weight_orig * weight_mask as a plain tensor attribute
    fc = _pruned_linear(0.0)
    mask = (np.random.default_rng(5).random(fc.weight.shape) > 0.7).astype(np.float32)
    orig = fc.weight
    del fc.weight                              # as pruning does: the parameter becomes weight_orig
    fc.weight = orig * mc.tensor(mask)
    layer = SparseLinear.from_linear(fc)
    assert layer.weight_csr.nnz == np.count_nonzero(mask)
    x = mc.tensor(np.ones((3, 24)))
    np.testing.assert_allclose(layer(x).data, x.data @ (fc.weight.data).T + fc.bias.data, rtol=1e-5, atol=1e-5)


def test_sparse_linear_rejects_bad_input():
    layer = SparseLinear.from_linear(_pruned_linear(0.5))
    with pytest.raises(ValueError, match=r"input shape \(3, 5\) does not match in_features=24"):
        layer(mc.tensor(np.ones((3, 5))))
    with pytest.raises(TypeError, match="SparseLinear expects a Tensor, got ndarray"):
        layer(np.ones((3, 24), np.float32))


def _sparse_mlp(seed, sparsity):
    mc.manual_seed(seed)
    rng = np.random.default_rng(seed)
    fc1, fc2 = mc.nn.Linear(24, 16), mc.nn.Linear(16, 5, bias=False)
    for fc in (fc1, fc2):
        fc.weight.data[rng.random(fc.weight.shape) < sparsity] = 0
    return mc.nn.Sequential(SparseLinear.from_linear(fc1), mc.nn.ReLU(), SparseLinear.from_linear(fc2))


def test_sparse_linear_round_trips_through_save_and_load(tmp_path):
    saved, fresh = _sparse_mlp(0, 0.8), _sparse_mlp(1, 0.5)
    assert list(saved.state_dict()) == ["0.weight_indptr", "0.weight_indices", "0.weight_data", "0.bias",
                                        "2.weight_indptr", "2.weight_indices", "2.weight_data"]
    assert saved[0].weight_csr.nnz < fresh[0].weight_csr.nnz   # loading replaces the arrays, whatever their length
    x = mc.tensor(np.random.default_rng(2).standard_normal((6, 24)))
    path = tmp_path / "sparse.npz"
    mc.save(saved.state_dict(), path)
    assert not np.array_equal(fresh(x).data, saved(x).data)
    fresh.load_state_dict(mc.load(path))
    np.testing.assert_array_equal(fresh(x).data, saved(x).data)
    np.testing.assert_array_equal(fresh[2].weight_csr.to_dense(), saved[2].weight_csr.to_dense())


def test_sparse_linear_rejects_a_checkpoint_that_does_not_fit():
    layer = SparseLinear.from_linear(_pruned_linear(0.5, bias=False))       # 16 x 24
    x = mc.tensor(np.ones((2, 24)))
    before = layer(x).data.copy()
    with pytest.raises(ValueError, match=r"weight_indptr: checkpoint \(9,\) vs model \(17,\)"):
        layer.load_state_dict(SparseLinear.from_linear(mc.nn.Linear(24, 8, bias=False)).state_dict())
    state = layer.state_dict()
    state["weight_data"] = state["weight_data"][:-1]
    with pytest.raises(ValueError, match=r"weight_indptr, weight_indices, weight_data: indptr\[-1\]=\d+ but indices"):
        layer.load_state_dict(state)
    np.testing.assert_array_equal(layer(x).data, before)


def test_csr_bytes_counts_what_a_csr_matrix_stores():
    dense = np.array([[0, 1.5, 0, 2], [0, 0, 0, 0], [3, 0, 4, 5]], np.float32)
    m = CSRMatrix.from_dense(dense)
    assert csr_bytes(dense != 0) == m.indptr.nbytes + m.indices.nbytes + m.data.nbytes == 5 * 4 + 5 * 4 + 4 * 4
    assert csr_bytes(dense != 0, value_bits=4) == 3 + 5 * 4 + 4 * 4   # 5 four-bit values fill 3 bytes
