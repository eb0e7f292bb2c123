"""Check a gradient against finite differences, like ``torch.autograd.gradcheck``.

For every input element x_i, the central difference (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)
of the scalar ``sum(f(x) * w)``, with fixed random weights w, must match what ``backward()``
computes. Use float64 inputs: in float32 the difference quotient is mostly rounding error.
"""
import numpy as np

from .tensor import Tensor


def gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, seed=0):
    """Return True if ``fn``'s analytic gradients match finite differences; raise AssertionError if not.

    ``inputs`` is a list of tensors; those with ``requires_grad=True`` are checked.
    """
    inputs = list(inputs)
    for t in inputs:
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck inputs must be Tensors, got {type(t).__name__}")
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs, got {t.dtype}")
    out = fn(*inputs)
    weights = np.asarray(np.random.default_rng(seed).standard_normal(out.shape))

    def objective():
        return float((fn(*inputs).data * weights).sum())

    for t in inputs:
        t.grad = None
    (out * Tensor(weights)).sum().backward()
    for index, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        numeric = np.zeros_like(t.data)
        for i in np.ndindex(t.shape):
            saved = t.data[i]
            t.data[i] = saved + eps
            up = objective()
            t.data[i] = saved - eps
            down = objective()
            t.data[i] = saved
            numeric[i] = (up - down) / (2 * eps)
        analytic = np.zeros_like(t.data) if t.grad is None else t.grad
        if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
            worst = np.unravel_index(np.argmax(np.abs(analytic - numeric)), t.shape)
            raise AssertionError(f"gradient of input {index} differs from finite differences: "
                                 f"at {worst} analytic {analytic[worst]:.6g} vs numeric {numeric[worst]:.6g}")
    return True
