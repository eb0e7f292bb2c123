"""Optimizers, with PyTorch's update rules (``torch.optim.SGD`` and ``torch.optim.Adam``)."""
import math

import numpy as np

from .nn.module import Parameter
from .validation import check_number


class Optimizer:
    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        bad = [type(p).__name__ for p in self.params if not isinstance(p, Parameter)]
        if bad:
            raise TypeError(f"optimizer parameters must be nn.Parameter, got {bad[0]}")
        check_number("lr", lr, 0, low_open=True)
        self.lr = lr
        self.state = {}  # per-parameter buffers (momentum, moments), keyed by id

    def zero_grad(self):
        """Set every gradient to None (PyTorch's default, ``set_to_none=True``)."""
        for p in self.params:
            p.grad = None

    def step(self):
        for p in self.params:
            if p.grad is not None:
                self._update(p, p.grad, self.state.setdefault(id(p), {}))

    def _update(self, p, grad, state):
        raise NotImplementedError


class SGD(Optimizer):
    """g = grad + wd*p;  buf = g (first step) else momentum*buf + g;  p -= lr * buf."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr)
        check_number("momentum", momentum, 0)
        check_number("weight_decay", weight_decay, 0)
        self.momentum, self.weight_decay = momentum, weight_decay

    def _update(self, p, grad, state):
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        if self.momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = np.array(grad, copy=True)
            else:
                buf = state["momentum_buffer"]
                buf *= self.momentum
                buf += grad
            grad = state["momentum_buffer"]
        p.data -= (self.lr * grad).astype(p.dtype, copy=False)


class Adam(Optimizer):
    """Kingma & Ba (2015) with PyTorch's arithmetic:
    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
    p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas={betas} must each be in [0, 1)")
        check_number("eps", eps, 0)
        check_number("weight_decay", weight_decay, 0)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def _update(self, p, grad, state):
        b1, b2 = self.betas
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        if not state:
            state.update(step=0, m=np.zeros_like(p.data), v=np.zeros_like(p.data))
        state["step"] += 1
        m, v, t = state["m"], state["v"], state["step"]
        m += (1 - b1) * (grad - m)  # PyTorch's lerp form of b1*m + (1-b1)*g
        v *= b2
        v += (1 - b2) * grad * grad
        denom = np.sqrt(v) / math.sqrt(1 - b2 ** t) + self.eps
        p.data -= ((self.lr / (1 - b1 ** t)) * m / denom).astype(p.dtype, copy=False)
