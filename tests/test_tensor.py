"""The Tensor: every operator's gradient against finite differences (float64), and the engine's rules."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import minitorch_compress as mc
from minitorch_compress.autograd import Function
from minitorch_compress.gradcheck import gradcheck


def t64(*shape, positive=False, seed=0):
    data = np.random.default_rng(seed).standard_normal(shape)
    return mc.tensor(np.abs(data) + 0.5 if positive else data, requires_grad=True, dtype=np.float64)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow_tensor": lambda a, b: a ** b,
}


@pytest.mark.parametrize("name", BINARY)
def test_binary_op_gradients(name):
    assert gradcheck(BINARY[name], [t64(3, 4, positive=True), t64(3, 4, positive=True, seed=1)])


@pytest.mark.parametrize("name", BINARY)
def test_binary_op_gradients_through_broadcasting(name):
    a, b = t64(2, 3, 4, positive=True), t64(3, 1, positive=True, seed=1)
    assert gradcheck(BINARY[name], [a, b])
    assert a.grad.shape == (2, 3, 4) and b.grad.shape == (3, 1)


UNARY = {
    "neg": lambda x: -x,
    "pow": lambda x: x ** 3,
    "rpow": lambda x: 2.0 ** x,
    "scalar_ops": lambda x: (2 - x) * 3 / (1 + x * x) + 1 / (2 + x * x),
    "exp": lambda x: x.exp(),
    "log": lambda x: (x * x + 1).log(),
    "sqrt": lambda x: (x * x + 1).sqrt(),
    "relu": lambda x: x.relu(),
    "sigmoid": lambda x: x.sigmoid(),
    "tanh": lambda x: x.tanh(),
    "abs": lambda x: x.abs(),
    "clamp": lambda x: x.clamp(-0.5, 0.5),
    "sum_all": lambda x: x.sum(),
    "sum_axis": lambda x: x.sum(axis=1),
    "sum_keepdims": lambda x: x.sum(axis=0, keepdims=True),
    "sum_dim_keepdim": lambda x: x.sum(dim=(0, 1), keepdim=True),
    "mean": lambda x: x.mean(axis=1),
    "mean_all": lambda x: x.mean(),
    "max_axis": lambda x: x.max(axis=1),
    "max_all": lambda x: x.max(),
    "max_keepdims": lambda x: x.max(dim=0, keepdim=True),
    "reshape": lambda x: x.reshape(4, 3) * mc.tensor(np.arange(12.0).reshape(4, 3), dtype=np.float64),
    "transpose": lambda x: x.transpose(0, 1) @ mc.tensor(np.ones((3, 2)), dtype=np.float64),
    "T": lambda x: x.T,
    "getitem_slice": lambda x: x[1:, ::2],
    "getitem_repeated": lambda x: x[[0, 0, 2]],
    "getitem_mask": lambda x: x[x.data > 0],
    "softmax_method": lambda x: x.softmax(dim=1),
    "flatten": lambda x: x.flatten(),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary_op_gradients(name):
    x = t64(3, 4)
    x.data[np.abs(x.data) < 0.05] = 0.3  # keep relu/abs/clamp away from their kinks
    x.data[np.abs(np.abs(x.data) - 0.5) < 0.05] = 0.3
    assert gradcheck(UNARY[name], [x])


def test_matmul_gradients_for_matrices_vectors_and_batches():
    assert gradcheck(lambda a, b: a @ b, [t64(3, 4), t64(4, 5, seed=1)])
    assert gradcheck(lambda a, b: a @ b, [t64(4), t64(4, 5, seed=1)])
    assert gradcheck(lambda a, b: a @ b, [t64(3, 4), t64(4, seed=1)])
    assert gradcheck(lambda a, b: a @ b, [t64(4), t64(4, seed=1)])
    assert gradcheck(lambda a, b: a @ b, [t64(2, 3, 4), t64(4, 5, seed=1)])
    assert (t64(4) @ t64(4, 5)).shape == (5,) and (t64(3, 4) @ t64(4)).shape == (3,)


def test_cat_stack_where_gradients():
    assert gradcheck(lambda a, b: mc.cat([a, b], dim=1), [t64(2, 3), t64(2, 2, seed=1)])
    assert gradcheck(lambda a, b: mc.stack([a, b], axis=0), [t64(2, 3), t64(2, 3, seed=1)])
    assert gradcheck(lambda a, b: mc.where(a.data > b.data, a, b), [t64(3, 3), t64(3, 3, seed=1)])


def test_max_ties_share_the_gradient_equally():
    x = mc.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [0.5, 0, 0.5]])
    y = mc.tensor([4.0, 4.0, 4.0, 1.0], requires_grad=True)
    y.max().backward()
    np.testing.assert_allclose(y.grad, [1 / 3, 1 / 3, 1 / 3, 0])


@settings(max_examples=40, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
def test_broadcast_gradients_have_input_shapes_and_sum_correctly(shapes):
    (sa, sb), result = shapes.input_shapes, shapes.result_shape
    a, b = t64(*sa), t64(*sb, seed=1)
    assert gradcheck(lambda a, b: a * b + a - b, [a, b])
    assert a.grad.shape == sa and b.grad.shape == sb
    # d/da sum(a + b) counts how many output elements each element of a reaches
    a.grad = b.grad = None
    (a + b).sum().backward()
    np.testing.assert_allclose(a.grad, np.full(sa, np.prod(result) / max(np.prod(sa), 1)))


def test_gradients_accumulate_until_zero_grad():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [4.0, 8.0])
    x.zero_grad()
    assert x.grad is None


def test_a_tensor_used_twice_gets_both_contributions():
    x = mc.tensor(3.0, requires_grad=True)
    y = x * x + x  # dy/dx = 2x + 1
    y.backward()
    assert x.grad == pytest.approx(7.0)


def test_only_leaves_keep_grad_and_intermediates_do_not():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    h.sum().backward()
    assert h.grad is None and x.grad is not None


def test_no_grad_records_nothing_and_detach_cuts_the_graph():
    x = mc.tensor([1.0], requires_grad=True)
    with mc.no_grad():
        y = x * 2
    assert not y.requires_grad
    assert mc.is_grad_enabled()
    z = x.detach()  # as torch: the same storage, no graph
    assert not z.requires_grad and np.shares_memory(z.data, x.data)
    (x * 2 + x.detach() * 3).sum().backward()
    assert x.grad.tolist() == [2.0]  # nothing flows through the detached term


def test_numpy_and_python_conversions_follow_torch():
    t = mc.tensor([[1.5, -2.0]])
    assert np.asarray(t).dtype == np.float32 and np.array_equal(np.asarray(t), t.data)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert np.array(t, copy=True) is not t.data and t.tolist() == [[1.5, -2.0]]
    assert float(mc.tensor([[2.5]])) == 2.5 and int(mc.tensor([-2.7])) == -2  # int truncates, as int(-2.7)
    assert bool(mc.tensor(0.0)) is False and bool(mc.tensor([3])) is True
    assert [10, 20, 30][mc.tensor(1)] == 20 and np.arange(5)[mc.tensor([1, 3])].tolist() == [1, 3]
    for convert in (float, int, bool):
        with pytest.raises(ValueError, match=r"shape \(1, 2\)"):
            convert(t)
    with pytest.raises(TypeError, match="integer"):
        [1, 2][mc.tensor(0.0)]


def test_dtypes_follow_the_contract():
    assert mc.tensor([1.0, 2.0]).dtype == np.float32
    assert mc.tensor(np.zeros(2, dtype=np.float64)).dtype == np.float32
    assert mc.tensor([1.0], dtype=np.float64).dtype == np.float64
    assert mc.tensor([1, 2]).dtype.kind == "i"
    assert (mc.tensor([1.0]) * 2.5).dtype == np.float32
    with pytest.raises(TypeError, match="float"):
        mc.tensor([1, 2], requires_grad=True)


def test_comparisons_are_boolean_and_carry_no_gradient():
    x = mc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = x > 1.5
    assert mask.dtype == bool and not mask.requires_grad
    np.testing.assert_array_equal(mask.data, [False, True, True])
    np.testing.assert_array_equal((x <= 2).data, [True, True, False])


def test_bad_input_errors_name_the_values():
    with pytest.raises(ValueError, match=r"\(2, 3\) @ \(2, 3\)"):
        mc.randn(2, 3) @ mc.randn(2, 3)
    with pytest.raises(ValueError, match="scalar"):
        mc.randn(2, requires_grad=True).backward()
    with pytest.raises(ValueError, match=r"\(3,\)"):
        (mc.randn(2, requires_grad=True) * 1).backward(np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        mc.randn(2, 3, 4).T
    with pytest.raises(TypeError, match="dtype"):
        mc.tensor(["a"])


def test_sigmoid_is_stable_for_huge_inputs():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = mc.tensor([-1000.0, 0.0, 1000.0]).sigmoid()
    np.testing.assert_allclose(out.data, [0.0, 0.5, 1.0])


def test_manual_seed_makes_draws_reproducible():
    mc.manual_seed(7)
    a = mc.randn(5).data
    mc.manual_seed(7)
    np.testing.assert_array_equal(a, mc.randn(5).data)
    assert not np.array_equal(a, mc.randn(5).data)
    with pytest.raises(TypeError):
        mc.manual_seed(1.5)


def test_numpy_on_the_left_dispatches_to_the_tensor():
    x = mc.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * x
    assert isinstance(y, mc.Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 4.0])


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))
def test_numba_backend_matmul_matches_numpy(m, k, n):
    a, b = mc.randn(m, k), mc.randn(k, n)
    np.testing.assert_allclose(mc.matmul(a, b, backend="numba").data, a.data @ b.data, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown backend"):
        mc.matmul(a, b, backend="cuda")


def test_default_backend_is_our_fixed_order_kernel():
    from minitorch_compress import kernels
    a, b = mc.randn(33, 70), mc.randn(70, 17)
    assert mc.get_backend() == "numba"
    np.testing.assert_array_equal(mc.matmul(a, b).data, kernels.matmul(a.data, b.data))


def test_batched_float32_matmul_runs_our_kernel_per_matrix_with_broadcast_batches():
    from minitorch_compress import kernels
    a = mc.randn(2, 3, 5, 7, requires_grad=True)
    b = mc.randn(3, 7, 4, requires_grad=True)
    out = a @ b
    assert out.shape == (2, 3, 5, 4)
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(out.data[i, j], kernels.matmul(a.data[i, j], b.data[j]))
    np.testing.assert_allclose(out.data, a.data.astype(np.float64) @ b.data, rtol=1e-5, atol=1e-5)
    out.sum().backward()   # the gradient of b sums over the batch dimension it was broadcast along
    g = np.ones((2, 3, 5, 4))
    np.testing.assert_allclose(a.grad, g @ b.data.swapaxes(-1, -2).astype(np.float64), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.grad, (a.data.swapaxes(-1, -2).astype(np.float64) @ g).sum(axis=0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(2, 3, 5, 7\) @ \(3, 6, 4\)"):
        a @ mc.randn(3, 6, 4)


class _WrongSquareBackward(Function):
    # forward x^2 with the backward of x^2 off by the factor 2
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return x * grad


def test_gradcheck_catches_a_wrong_backward():
    # every other gradient test trusts gradcheck; this shows it can say no
    x = t64(3, 4, seed=5)
    with pytest.raises(AssertionError, match="differs from finite differences"):
        gradcheck(_WrongSquareBackward.apply, [x])
    assert gradcheck(lambda a: a * a, [x])
