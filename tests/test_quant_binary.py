"""Binary weights and activations: forward values, straight-through gradients, training, bytes."""
import numpy as np
import pytest

import minitorch_compress as mc
import minitorch_compress.functional as F
from minitorch_compress import nn
from minitorch_compress.quant import binary


def test_binary_weight_forward_is_alpha_times_sign():
    w = mc.tensor([[0.5, -1.5, 0.0, 2.0], [-0.1, 0.3, -0.2, 0.0]], requires_grad=True)
    wb = binary.binarize_weight(w)
    # alpha = mean |w| per row: 1.0 and 0.15; sign(0) = +1
    np.testing.assert_allclose(wb.data, [[1.0, -1.0, 1.0, 1.0], [-0.15, 0.15, -0.15, 0.15]], rtol=1e-6)
    wb.backward(np.arange(8, dtype=np.float32).reshape(2, 4))
    np.testing.assert_array_equal(w.grad, [[0, 0, 2, 0], [4, 5, 6, 7]])   # cancelled where |w| > 1


def test_binary_activation_forward_and_gradient():
    x = mc.tensor([-2.0, -0.5, 0.0, 0.7, 1.0, 3.0], requires_grad=True)
    y = binary.BinaryActivation()(x)
    np.testing.assert_array_equal(y.data, [-1, -1, 1, 1, 1, 1])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1, 1, 0])


def test_binary_linear_uses_binarized_weights_and_trains():
    mc.manual_seed(0)
    layer = binary.BinaryLinear(3, 2)
    x = mc.randn(5, 3)
    alpha = np.abs(layer.weight.data).mean(axis=1, keepdims=True)
    expected = x.data @ (alpha * np.where(layer.weight.data >= 0, 1, -1)).T + layer.bias.data
    np.testing.assert_allclose(layer(x).data, expected, rtol=1e-6)
    # a binary MLP learns a task a random one cannot: the sign of the sum of 8 inputs
    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 8)).astype(np.float32)
    y = (X.sum(axis=1) > 0).astype(np.int64)
    model = nn.Sequential(binary.BinaryLinear(8, 32), nn.BatchNorm1d(32), binary.BinaryActivation(),
                          binary.BinaryLinear(32, 2))
    opt = mc.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(mc.tensor(X)), mc.tensor(y)).backward()
        opt.step()
    accuracy = (model.eval()(mc.tensor(X)).data.argmax(axis=1) == y).mean()
    assert accuracy > 0.9, accuracy


def test_packed_bytes():
    layer = binary.BinaryLinear(784, 300)
    assert binary.packed_bytes(layer) == 784 * 300 // 8 + 4 * 300 + 4 * 300
    assert binary.packed_bytes(binary.BinaryLinear(3, 3, bias=False)) == 2 + 12
    with pytest.raises(TypeError, match="BinaryLinear"):
        binary.packed_bytes(nn.Linear(3, 3))
