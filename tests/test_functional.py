"""functional: gradients against finite differences, forwards against direct formulas."""
import numpy as np
import pytest

import minitorch_compress as mc
import minitorch_compress.functional as F
from minitorch_compress.gradcheck import gradcheck


def t64(*shape, seed=0, requires_grad=True):
    return mc.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=requires_grad, dtype=np.float64)


def test_softmax_and_log_softmax_gradients():
    assert gradcheck(lambda x: F.softmax(x, dim=1), [t64(3, 5)])
    assert gradcheck(lambda x: F.softmax(x, dim=0), [t64(3, 5)])
    assert gradcheck(lambda x: F.log_softmax(x, dim=-1), [t64(3, 5)])


def test_softmax_values_and_stability():
    x = mc.tensor([[1.0, 2.0, 3.0], [1e4, -1e4, 0.0]], dtype=np.float64)
    expected = np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum()
    np.testing.assert_allclose(F.softmax(x, 1).data[0], expected)
    np.testing.assert_allclose(F.softmax(x, 1).data[1], [1, 0, 0])
    log_p = F.log_softmax(x, 1).data
    assert np.isfinite(log_p).all()
    np.testing.assert_allclose(log_p[1], [0, -2e4, -1e4])


def test_cross_entropy_gradient_and_value():
    target = mc.tensor([0, 2, 1, 2])
    assert gradcheck(lambda z: F.cross_entropy(z, target), [t64(4, 3)])
    z = np.random.default_rng(0).standard_normal((4, 3))
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    expected = -np.mean(log_p[np.arange(4), [0, 2, 1, 2]])
    assert F.cross_entropy(mc.tensor(z, dtype=np.float64), target).item() == pytest.approx(expected)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = mc.tensor([[1e4, -1e4], [1e4, -1e4]], requires_grad=True)
    loss = F.cross_entropy(logits, mc.tensor([0, 1]))
    assert loss.item() == pytest.approx(1e4)  # (0 + 2e4) / 2
    loss.backward()
    np.testing.assert_allclose(logits.grad, [[0, 0], [0.5, -0.5]])


def test_cross_entropy_with_soft_targets():
    probs = mc.tensor(np.array([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]]), dtype=np.float64)
    assert gradcheck(lambda z: F.cross_entropy(z, probs), [t64(2, 3)])
    onehot = mc.tensor(np.eye(3)[[2, 0]], dtype=np.float64)
    z = t64(2, 3, requires_grad=False)
    assert F.cross_entropy(z, onehot).item() == pytest.approx(F.cross_entropy(z, mc.tensor([2, 0])).item())


def test_cross_entropy_rejects_bad_targets():
    logits = mc.randn(2, 3)
    with pytest.raises(ValueError, match="outside \\[0, 3\\)"):
        F.cross_entropy(logits, mc.tensor([0, 3]))
    with pytest.raises(ValueError, match="outside"):
        F.cross_entropy(logits, mc.tensor([-1, 0]))
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        F.cross_entropy(logits, mc.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="\\(N, C\\)"):
        F.cross_entropy(mc.randn(3), mc.tensor([0]))


def test_mse_loss():
    assert gradcheck(lambda a, b: F.mse_loss(a, b), [t64(3, 2), t64(3, 2, seed=1)])
    assert F.mse_loss(mc.tensor([1.0, 2.0]), mc.tensor([2.0, 4.0])).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        F.mse_loss(mc.randn(2), mc.randn(3))


def test_kl_div_matches_the_definition_and_handles_zero_probabilities():
    p = np.array([[0.5, 0.5, 0.0], [0.1, 0.6, 0.3]])
    q = np.array([[0.25, 0.25, 0.5], [0.3, 0.3, 0.4]])
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / q), 0)
    out = F.kl_div(mc.tensor(np.log(q), dtype=np.float64), mc.tensor(p, dtype=np.float64))
    assert out.item() == pytest.approx(terms.sum() / 2)
    assert F.kl_div(mc.tensor(np.log(q)), mc.tensor(p), reduction="sum").item() == pytest.approx(terms.sum(), rel=1e-6)
    log_q = F.log_softmax(t64(2, 3), 1).detach()
    log_q.requires_grad = True
    target = mc.tensor(p, requires_grad=True, dtype=np.float64)
    target.data[0] = [0.5, 0.3, 0.2]  # gradient w.r.t. p needs p > 0 (log p at p = 0 is not differentiable)
    assert gradcheck(lambda a, b: F.kl_div(a, b), [log_q, target])
    with pytest.raises(ValueError, match="reduction"):
        F.kl_div(log_q, target, reduction="avg")


def test_linear_gradients_and_shapes():
    assert gradcheck(F.linear, [t64(4, 3), t64(2, 3, seed=1), t64(2, seed=2)])
    assert gradcheck(lambda x, w: F.linear(x, w), [t64(5, 4, 3), t64(2, 3, seed=1)])
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(2, 3\)"):
        F.linear(mc.randn(4, 5), mc.randn(2, 3))


def conv2d_reference(x, w, b, stride, padding):
    """The convolution formula, one output pixel at a time."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, wd = xp.shape
    o, _, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w) + b
    return out


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), (3, 2)])
def test_conv2d_matches_the_formula_and_its_gradient(stride, padding):
    x, w, b = t64(2, 3, 7, 6), t64(4, 3, 3, 2, seed=1), t64(4, seed=2)
    np.testing.assert_allclose(F.conv2d(x, w, b, stride, padding).data,
                               conv2d_reference(x.data, w.data, b.data, stride, padding), atol=1e-12)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding), [x, w, b])


def test_conv2d_rejects_mismatched_channels():
    with pytest.raises(ValueError, match=r"\(1, 2, 5, 5\).*\(4, 3, 3, 3\)"):
        F.conv2d(mc.randn(1, 2, 5, 5), mc.randn(4, 3, 3, 3))


@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 1), (2, 3)])
def test_max_pool2d_matches_the_formula_and_its_gradient(kernel, stride):
    x = t64(2, 3, 7, 8)
    s = stride or kernel
    out = F.max_pool2d(x, kernel, stride).data
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            window = x.data[:, :, i * s:i * s + kernel, j * s:j * s + kernel]
            np.testing.assert_array_equal(out[:, :, i, j], window.max(axis=(2, 3)))
    assert gradcheck(lambda x: F.max_pool2d(x, kernel, stride), [x])


def test_dropout_is_inverted_and_reproducible():
    mc.manual_seed(0)
    x = mc.ones(200, 500)
    y = F.dropout(x, p=0.3, training=True).data
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.01
    assert abs(y.mean() - 1.0) < 0.01  # the expectation is preserved
    assert F.dropout(x, 0.3, training=False) is x
    assert (F.dropout(x, 1.0).data == 0).all()
    mc.manual_seed(0)
    np.testing.assert_array_equal(F.dropout(x, 0.3).data, y)


def test_dropout_gradient_uses_the_same_mask():
    x = t64(4, 5)

    def dropped(x):
        mc.manual_seed(3)  # the same mask on every call, so finite differences see one function
        return F.dropout(x, 0.4)
    assert gradcheck(dropped, [x])
    with pytest.raises(ValueError, match="p=1.5"):
        F.dropout(x, 1.5)


@pytest.mark.parametrize("op", ["linear", "conv2d", "matmul"])
def test_gradients_are_computed_only_for_inputs_that_need_them(op):
    x = t64(2, 3, 5, 5, requires_grad=False) if op == "conv2d" else t64(4, 3, requires_grad=False)
    w = t64(2, 3, 3, 3, seed=1) if op == "conv2d" else t64(2, 3, seed=1)
    fn = {"linear": lambda x, w: F.linear(x, w), "conv2d": lambda x, w: F.conv2d(x, w, padding=1),
          "matmul": lambda x, w: x @ w.T}[op]
    assert gradcheck(fn, [x, w])
    assert x.grad is None
    x.requires_grad, w.requires_grad = True, False
    assert gradcheck(fn, [x, w])
    assert w.grad is None
