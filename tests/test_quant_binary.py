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
    with pytest.raises(TypeError, match="BinaryLinear or BinaryConv2d"):
        binary.packed_bytes(nn.Linear(3, 3))


def test_binary_conv2d_forward_gradient_and_bytes():
    mc.manual_seed(0)
    layer = binary.BinaryConv2d(2, 3, 3, padding=1, bias=True)
    x = mc.randn(2, 2, 5, 5)
    w = layer.weight.data
    alpha = np.abs(w).reshape(3, -1).mean(axis=1)                    # one scale per filter
    wb = alpha[:, None, None, None] * np.where(w >= 0, 1, -1)
    # the convolution by hand (cross-correlation, zero padding 1), in float64
    xp = np.pad(x.data.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.zeros((2, 3, 5, 5))
    for i in range(5):
        for j in range(5):
            expected[:, :, i, j] = np.einsum("ncij,ocij->no", xp[:, :, i:i + 3, j:j + 3], wb)
    expected += layer.bias.data[None, :, None, None]
    out = layer(x)
    np.testing.assert_allclose(out.data, expected, rtol=1e-5, atol=1e-5)
    # straight-through: the weight's gradient is the binarized weight's gradient, cancelled where |w| > 1
    layer.weight.data[0, 0, 0, 0] = 1.5
    upstream = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    layer(x).backward(upstream)
    plain = mc.tensor(binary.binarize_weight(layer.weight).data, requires_grad=True)
    F.conv2d(x, plain, layer.bias, 1, 1).backward(upstream)
    np.testing.assert_allclose(layer.weight.grad, plain.grad * (np.abs(layer.weight.data) <= 1), rtol=1e-6)
    assert layer.weight.grad[0, 0, 0, 0] == 0
    # 54 weights -> 7 bytes, 3 scales and 3 biases of 4 bytes
    assert binary.packed_bytes(layer) == 7 + 12 + 12
    assert binary.packed_bytes(binary.BinaryConv2d(16, 32, 3, bias=False)) == 16 * 32 * 9 // 8 + 4 * 32
