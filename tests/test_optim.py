"""Optimizers against PyTorch's update rules, computed by hand."""
import math

import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn, optim


def param(value):
    return nn.Parameter(mc.tensor([value], dtype=np.float64))


def test_sgd_with_momentum_and_weight_decay_follows_pytorch():
    p = param(1.0)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    p.grad = np.array([0.5])
    opt.step()
    # step 1: g = 0.5 + 0.01*1 = 0.51; buf = g; p = 1 - 0.1*0.51
    assert p.data[0] == pytest.approx(0.949)
    p.grad = np.array([0.5])
    opt.step()
    # step 2: g = 0.5 + 0.01*0.949 = 0.50949; buf = 0.9*0.51 + 0.50949 = 0.96849; p = 0.949 - 0.096849
    assert p.data[0] == pytest.approx(0.852151)


def test_plain_sgd_and_zero_grad():
    p = param(2.0)
    opt = optim.SGD([p], lr=0.5)
    p.grad = np.array([1.0])
    opt.step()
    assert p.data[0] == pytest.approx(1.5)
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # parameters without a gradient are left alone
    assert p.data[0] == pytest.approx(1.5)


def test_adam_follows_pytorch():
    lr, b1, b2, eps, wd = 0.1, 0.9, 0.999, 1e-8, 0.0
    p = param(1.0)
    opt = optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    value, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.5, -0.2, 0.3], start=1):
        p.grad = np.array([g])
        opt.step()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        value -= (lr / (1 - b1 ** t)) * m / (math.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)
        assert p.data[0] == pytest.approx(value, rel=1e-12)
    # the first step moves by lr against the sign of the gradient
    q = param(1.0)
    q.grad = np.array([123.0])
    optim.Adam([q], lr=0.01).step()
    assert q.data[0] == pytest.approx(0.99)


def test_adam_weight_decay_is_added_to_the_gradient():
    p = param(1.0)
    p.grad = np.array([0.0])
    optim.Adam([p], lr=0.1, weight_decay=0.5).step()
    assert p.data[0] == pytest.approx(0.9)  # g = 0.5 * 1.0 > 0, so the first step is -lr


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got -1"):
        optim.SGD([param(1.0)], lr=-1)
    with pytest.raises(TypeError, match="Tensor"):
        optim.SGD([mc.tensor([1.0], requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([param(1.0)], betas=(1.0, 0.9))
