"""The autograd engine: a ``Tensor`` wraps a NumPy array and remembers how it was made.

Each operation computes its result (the forward) and, right beside it, a ``backward``
function that maps the gradient of the result to the gradients of its inputs (the chain
rule for that one operation). ``Tensor.backward()`` visits the graph in reverse
topological order and calls those functions. Gradients flowing into an input that was
broadcast are summed back to the input's shape, once, in ``_unbroadcast``.

As in PyTorch, only leaf tensors (made by the user, ``requires_grad=True``) keep a
``.grad``, and it accumulates across ``backward()`` calls until ``zero_grad()``.
"""
from contextlib import contextmanager

import numpy as np

from .backend import matmul_arrays
from .kernels import exp, log, log_scalar, power, tanh
from .random import get_rng

_grad_enabled = True


def is_grad_enabled():
    return _grad_enabled


@contextmanager
def _grad_mode(enabled):
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, enabled
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad():
    """Context manager: operations inside record no graph (inference, optimizer steps)."""
    return _grad_mode(False)


def enable_grad():
    return _grad_mode(True)


def tensor_data(data, dtype=None):
    """The array a tensor of ``data`` holds: floats become float32 unless ``dtype`` says otherwise."""
    if isinstance(data, Tensor):
        data = data.data
    array = np.asarray(data, dtype=dtype)
    if dtype is None and array.dtype.kind == "f" and array.dtype != np.float32:
        array = array.astype(np.float32)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"cannot make a tensor from data of dtype {array.dtype}")
    return array


def tensor(data, requires_grad=False, dtype=None):
    """Make a tensor: floats become float32 (unless ``dtype`` says otherwise), integers stay integer."""
    return Tensor(tensor_data(data, dtype), requires_grad=requires_grad)


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes NumPy broadcasting added or stretched, back to ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _axis(axis, dim):
    """NumPy's ``axis`` or PyTorch's ``dim``; a list becomes a tuple."""
    if dim is not None:
        if axis is not None:
            raise TypeError("give axis or dim, not both")
        axis = dim
    return tuple(axis) if isinstance(axis, list) else axis


def op_result(data, parents, backward):
    """The tensor an operation returns: it joins the graph (remembering its ``parents`` and the
    ``backward`` rule that maps its gradient to theirs) only if an input needs a gradient."""
    if _grad_enabled and any(p.requires_grad for p in parents):
        return Tensor(data, True, parents, backward)
    return Tensor(data)


class Tensor:
    # Makes ``ndarray + Tensor`` call Tensor.__radd__ instead of NumPy broadcasting over our object.
    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False, _parents=(), _backward=None):
        # NumPy scalars (what a full reduction returns) keep their dtype; Python data follows tensor()'s rules.
        self.data = data if isinstance(data, np.ndarray) else np.asarray(data) if isinstance(data, np.generic) else tensor_data(data)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        if self.requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only float tensors can require gradients, got dtype {self.data.dtype}")
        self._parents = _parents
        self._backward = _backward

    # ----- basics -------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)

    def __len__(self):
        return len(self.data)

    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    # NumPy and Python conversions, as torch.Tensor has them: np.asarray(t) (and so matplotlib) sees the
    # data rather than an object array of tensors; float/int/bool/index need exactly one element.
    def __array__(self, dtype=None, copy=None):
        data = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return data.copy() if copy else data

    def _scalar(self, to):
        if self.data.size != 1:
            raise ValueError(f"only a tensor of one element converts to a Python {to.__name__}; "
                             f"this one has shape {self.shape}")
        return to(self.data.item())

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __bool__(self):
        return self._scalar(bool)

    def __index__(self):
        if self.data.dtype.kind not in "iub":
            raise TypeError(f"only an integer tensor of one element can be used as an index, got dtype {self.dtype}")
        return self._scalar(int)

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

    def __repr__(self):
        body = np.array2string(self.data, precision=4, separator=", ", prefix="tensor(")
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}{grad})"

    def __hash__(self):
        return id(self)

    # ----- backpropagation ------------------------------------------------------------
    def backward(self, grad=None):
        """Fill ``.grad`` of every leaf this tensor depends on with d(self)/d(leaf)."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() without a gradient needs a scalar, got shape {self.shape}")
            grad = np.ones_like(self.data)
        else:
            grad = tensor_data(grad, self.data.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"gradient shape {grad.shape} does not match tensor shape {self.shape}")

        grads = {id(self): grad}
        for node in self._topological_order():
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf
                node.grad = g.copy() if node.grad is None else node.grad + g
                continue
            for parent, pg in zip(node._parents, node._backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                pg = _unbroadcast(pg, parent.shape)
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg

    def _topological_order(self):
        """Nodes from this one back to the leaves, each after everything that uses it."""
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if p.requires_grad and id(p) not in visited)
        return reversed(order)

    # ----- arithmetic ---------------------------------------------------------------
    def _other(self, other):
        if isinstance(other, Tensor):
            return other
        return Tensor(np.asarray(other, dtype=self.data.dtype))

    def __add__(self, other):
        other = self._other(other)
        return op_result(self.data + other.data, (self, other), lambda g: (g, g))

    def __sub__(self, other):
        other = self._other(other)
        return op_result(self.data - other.data, (self, other), lambda g: (g, -g))

    def __mul__(self, other):
        other = self._other(other)
        return op_result(self.data * other.data, (self, other),
                          lambda g: (g * other.data, g * self.data))

    def __truediv__(self, other):
        other = self._other(other)
        out = self.data / other.data
        return op_result(out, (self, other), lambda g: (g / other.data, -g * out / other.data))

    def __pow__(self, exponent):
        if not np.isscalar(exponent):
            # a ** b = exp(b * log a), for a > 0
            return (self._other(exponent) * self.log()).exp()
        out = power(self.data, exponent)

        def backward(g):
            return (g * exponent * power(self.data, exponent - 1),)
        return op_result(out, (self,), backward)

    def __rpow__(self, base):
        return (self * log_scalar(float(base))).exp()

    def __neg__(self):
        return op_result(-self.data, (self,), lambda g: (-g,))

    def __radd__(self, other):
        return self + other

    def __rsub__(self, other):
        return self._other(other) - self

    def __rmul__(self, other):
        return self * other

    def __rtruediv__(self, other):
        return self._other(other) / self

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(self._other(other), self)

    # Comparisons give boolean tensors and no gradient, as in PyTorch.
    def __lt__(self, other):
        return Tensor(self.data < self._other(other).data)

    def __le__(self, other):
        return Tensor(self.data <= self._other(other).data)

    def __gt__(self, other):
        return Tensor(self.data > self._other(other).data)

    def __ge__(self, other):
        return Tensor(self.data >= self._other(other).data)

    def __eq__(self, other):
        return Tensor(self.data == self._other(other).data)

    def __ne__(self, other):
        return Tensor(self.data != self._other(other).data)

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)

        def backward(g):
            grad = np.zeros_like(self.data)
            np.add.at(grad, index, g)  # add.at: repeated indices each receive their share
            return (grad,)
        return op_result(self.data[index], (self,), backward)

    # ----- reductions -----------------------------------------------------------------
    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis(axis, dim), keepdims if keepdim is None else keepdim
        out = self.data.sum(axis=axis, keepdims=keepdims)

        def backward(g):
            if not keepdims and axis is not None:
                g = np.expand_dims(g, axis)
            return (np.broadcast_to(g, self.shape),)
        return op_result(out, (self,), backward)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis = _axis(axis, dim)
        total = self.sum(axis, keepdims, keepdim=keepdim)
        count = self.data.size // max(total.data.size, 1) if self.data.size else 1
        return total / count

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Largest values along ``axis`` (like ``torch.amax``); tied maxima share the gradient equally."""
        axis, keepdims = _axis(axis, dim), keepdims if keepdim is None else keepdim
        kept = self.data.max(axis=axis, keepdims=True)
        out = kept if keepdims else kept.reshape(()) if axis is None else np.squeeze(kept, axis=axis)

        def backward(g):
            is_max = self.data == kept
            share = is_max / is_max.sum(axis=axis, keepdims=True)
            return (share * g.reshape(kept.shape),)
        return op_result(out, (self,), backward)

    # ----- shape -----------------------------------------------------------------------
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return op_result(self.data.reshape(shape), (self,), lambda g: (g.reshape(self.shape),))

    view = reshape

    def flatten(self, start_dim=0):
        return self.reshape(self.shape[:start_dim] + (-1,))

    def transpose(self, a, b):
        return op_result(self.data.swapaxes(a, b), (self,), lambda g: (g.swapaxes(a, b),))

    @property
    def T(self):
        if self.ndim != 2:
            raise ValueError(f".T is for 2-D tensors, got shape {self.shape}; use transpose(a, b)")
        return self.transpose(0, 1)

    # ----- elementwise functions ---------------------------------------------------------
    def exp(self):
        out = exp(self.data)
        return op_result(out, (self,), lambda g: (g * out,))

    def log(self):
        return op_result(log(self.data), (self,), lambda g: (g / self.data,))

    def sqrt(self):
        out = np.sqrt(self.data)
        return op_result(out, (self,), lambda g: (g / (2 * out),))

    def relu(self):
        positive = self.data > 0
        return op_result(self.data * positive, (self,), lambda g: (g * positive,))

    def sigmoid(self):
        # Split by sign so that exp never overflows.
        x = self.data
        e = exp(-np.abs(x))
        out = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return op_result(out, (self,), lambda g: (g * out * (1 - out),))

    def tanh(self):
        out = tanh(self.data)
        return op_result(out, (self,), lambda g: (g * (1 - out * out),))

    def abs(self):
        return op_result(np.abs(self.data), (self,), lambda g: (g * np.sign(self.data),))

    def clamp(self, min=None, max=None):
        """Clip to [min, max]; the gradient passes only where the value was not clipped."""
        out = np.clip(self.data, min, max)
        inside = out == self.data
        return op_result(out, (self,), lambda g: (g * inside,))

    def softmax(self, dim=-1):
        from .functional import softmax
        return softmax(self, dim)

    def log_softmax(self, dim=-1):
        from .functional import log_softmax
        return log_softmax(self, dim)

    def argmax(self, axis=None, *, dim=None):
        return Tensor(self.data.argmax(axis=_axis(axis, dim)))

    def astype(self, dtype):
        dtype = np.dtype(dtype)
        return op_result(self.data.astype(dtype), (self,), lambda g: (g.astype(self.dtype),))


# ----- functions of several tensors -------------------------------------------------------
def _as_tensor(x):
    return x if isinstance(x, Tensor) else tensor(x)


def matmul(a, b, backend=None):
    """``a @ b`` with gradients; ``backend`` picks NumPy or our Numba kernel for this call."""
    a, b = _as_tensor(a), _as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs tensors of at least 1 dimension, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape}")
    if a.ndim == 1 or b.ndim == 1:  # a vector is lifted to a matrix, as NumPy does, then dropped again
        out = matmul(a.reshape(1, -1) if a.ndim == 1 else a, b.reshape(-1, 1) if b.ndim == 1 else b, backend)
        shape = out.shape
        if a.ndim == 1:
            shape = shape[:-2] + shape[-1:]
        if b.ndim == 1:
            shape = shape[:-1]
        return out.reshape(shape)

    def backward(g):
        return (matmul_arrays(g, b.data.swapaxes(-1, -2), backend) if a.requires_grad else None,
                matmul_arrays(a.data.swapaxes(-1, -2), g, backend) if b.requires_grad else None)
    return op_result(matmul_arrays(a.data, b.data, backend), (a, b), backward)


def cat(tensors, axis=None, *, dim=None):
    axis = _axis(axis, dim) or 0
    tensors = [_as_tensor(t) for t in tensors]
    sizes = np.cumsum([t.shape[axis] for t in tensors])[:-1]
    out = np.concatenate([t.data for t in tensors], axis=axis)
    return op_result(out, tuple(tensors), lambda g: tuple(np.split(g, sizes, axis=axis)))


def stack(tensors, axis=None, *, dim=None):
    axis = _axis(axis, dim) or 0
    return cat([_as_tensor(t).reshape(np.expand_dims(t.data, axis).shape) for t in tensors], axis)


def where(condition, x, y):
    """Elementwise ``x`` where ``condition`` holds, else ``y``; the gradient follows the choice."""
    condition = condition.data if isinstance(condition, Tensor) else np.asarray(condition, dtype=bool)
    x, y = _as_tensor(x), _as_tensor(y)
    return op_result(np.where(condition, x.data, y.data), (x, y),
                   lambda g: (g * condition, g * ~condition))


# ----- constructors --------------------------------------------------------------------------
def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(*shape, requires_grad=False, dtype=np.float32):
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad)


def ones(*shape, requires_grad=False, dtype=np.float32):
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad)


def zeros_like(t, requires_grad=False):
    return Tensor(np.zeros_like(t.data), requires_grad)


def ones_like(t, requires_grad=False):
    return Tensor(np.ones_like(t.data), requires_grad)


def randn(*shape, requires_grad=False, dtype=np.float32):
    """Standard normal draws from the package generator (see ``mc.manual_seed``)."""
    return Tensor(get_rng().standard_normal(_shape(shape)).astype(dtype), requires_grad)


def rand(*shape, requires_grad=False, dtype=np.float32):
    """Uniform [0, 1) draws from the package generator."""
    return Tensor(get_rng().random(_shape(shape)).astype(dtype), requires_grad)


def arange(*args, dtype=None):
    return tensor(np.arange(*args), dtype=dtype)
