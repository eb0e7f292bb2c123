"""Define a new differentiable operation, PyTorch style.

Subclass ``Function`` with two static methods working on NumPy arrays::

    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    y = Square.apply(t)

``backward`` returns one gradient per positional input of ``forward`` (``None`` for inputs
that are not tensors or need none). Tools such as fake quantization (straight-through
estimator) are built this way, without touching the engine's internals.
"""
from .tensor import Tensor, op_result


class Context:
    """Carries what ``forward`` saves for ``backward``."""

    def __init__(self):
        self.saved_tensors = ()

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays


class Function:
    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        tensors = tuple(a for a in args if isinstance(a, Tensor))
        if not tensors:
            raise TypeError(f"{cls.__name__}.apply needs at least one Tensor argument")
        ctx = Context()
        out = cls.forward(ctx, *(a.data if isinstance(a, Tensor) else a for a in args), **kwargs)

        def backward(grad):
            grads = cls.backward(ctx, grad)
            grads = grads if isinstance(grads, tuple) else (grads,)
            if len(grads) != len(args):
                raise ValueError(f"{cls.__name__}.backward returned {len(grads)} gradients for {len(args)} inputs")
            return tuple(g for a, g in zip(args, grads) if isinstance(a, Tensor))
        return op_result(out, tensors, backward)
