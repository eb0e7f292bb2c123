"""The layers of the course's networks, initialised as PyTorch initialises them."""
import math

import numpy as np

from .. import functional as F
from ..random import get_rng
from ..validation import as_pair, check_int, check_positive
from .module import Module, Parameter


def _uniform(bound, shape):
    return Parameter(get_rng().uniform(-bound, bound, shape).astype(np.float32))


def _init_weight_and_bias(module, weight_shape, bias):
    """PyTorch's default: Kaiming-uniform with a = sqrt(5), i.e. U(±1/sqrt(fan_in)), for weight and bias."""
    fan_in = int(np.prod(weight_shape[1:]))
    bound = 1 / math.sqrt(fan_in)
    module.weight = _uniform(bound, weight_shape)
    if bias:
        module.bias = _uniform(bound, (weight_shape[0],))
    else:
        module.register_parameter("bias", None)


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        check_positive(in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        _init_weight_and_bias(self, (out_features, in_features), bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution over NCHW images; weight of shape (out_channels, in_channels/groups, kh, kw).

    ``groups`` splits the channels into groups convolved separately (``groups=in_channels``:
    depthwise; ``out_channels = k * in_channels`` then gives each input channel k filters);
    ``dilation`` spaces the kernel's taps. See ``F.conv2d``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__()
        kh, kw = as_pair(kernel_size, "kernel_size")
        check_positive(in_channels=in_channels, out_channels=out_channels, kh=kh, kw=kw, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels={in_channels} and out_channels={out_channels} must both be divisible "
                             f"by groups={groups}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding = (kh, kw), as_pair(stride, "stride"), as_pair(padding, "padding")
        self.dilation = as_pair(dilation, "dilation")
        _init_weight_and_bias(self, (out_channels, in_channels // groups, kh, kw), bias)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        extra = "".join(f", {name}={value}" for name, value, default in
                        (("dilation", self.dilation, (1, 1)), ("groups", self.groups, 1)) if value != default)
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}{extra}, bias={self.bias is not None}")


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class ReLU6(Module):
    def forward(self, x):
        return F.relu6(x)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``, initialised N(0, 1) as in
    PyTorch; ``forward(indices)`` picks rows. The ``padding_idx`` row starts at zero and never learns."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        check_positive(num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        if padding_idx is not None:
            padding_idx = check_int("padding_idx", padding_idx)
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx={padding_idx} is outside the {num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = Parameter(get_rng().standard_normal((num_embeddings, embedding_dim)).astype(np.float32))
        if padding_idx is not None:
            self.weight.data[padding_idx] = 0

    def forward(self, indices):
        return F.embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Identity(Module):
    """Returns its input; like PyTorch's, it accepts and ignores any constructor arguments, so it
    can stand in for a layer that was removed (a pruned branch, a fused BatchNorm)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Dropout(Module):
    """Inverted dropout while training; the identity in eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability p={p} is outside [0, 1]")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    """Flattens dimensions start_dim..end of each example: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x):
        return x.flatten(self.start_dim)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size; ``AdaptiveAvgPool2d(1)`` is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class CrossEntropyLoss(Module):
    def forward(self, logits, target):
        return F.cross_entropy(logits, target)


class MSELoss(Module):
    def forward(self, input, target):
        return F.mse_loss(input, target)
