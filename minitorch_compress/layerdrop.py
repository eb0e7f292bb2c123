"""LayerDrop (Fan, Grave & Joulin 2019, "Reducing Transformer Depth on Demand with Structured
Dropout", arXiv:1909.11556): dropout for whole residual layers.

While training, each layer of a residual stack is skipped with probability p, independently
per batch: x_{l+1} = x_l when layer l is dropped, x_l + f_l(x_l) otherwise. No rescaling is
needed (the skipped layer contributes nothing, as it will after pruning). The network learns not
to rely on any one layer, so at inference layers can be removed without fine-tuning: the "every
other" strategy prunes, for a rate r, the layers at depths d = 1, 2, ... with d = 0 (mod floor(1/r)).
In eval mode every kept layer runs: the output is deterministic.

Any layer whose input and output shapes match can be stacked: the ``ResidualBlock`` here, or a
pre-norm ``nn.TransformerEncoderLayer`` (x + sa(norm1(x)), then + ff(norm2(.)): residual as a
whole, so a skipped layer is exactly the identity path of its residual branches). Extra forward
arguments (e.g. ``src_key_padding_mask=``) are passed to every layer that runs.
"""
from .nn import Linear, Module, ModuleList, ReLU, Sequential
from .random import get_rng
from .validation import check_number


class ResidualBlock(Module):
    """x + W2 relu(W1 x): a layer that LayerDrop can skip, since its input and output match."""

    def __init__(self, width):
        super().__init__()
        self.fc1, self.fc2 = Linear(width, width), Linear(width, width)

    def forward(self, x):
        return x + self.fc2(self.fc1(x).relu())


class LayerDrop(Module):
    """Runs ``layers`` in order, skipping each with probability ``p`` in training mode."""

    def __init__(self, layers, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"LayerDrop probability p={p!r} is outside [0, 1]")
        self.layers, self.p = ModuleList(layers), p

    def forward(self, x, *args, **kwargs):
        for layer in self.layers:
            if self.training and get_rng().random() < self.p:
                continue
            x = layer(x, *args, **kwargs)
        return x

    def extra_repr(self):
        return f"p={self.p}"


def every_other(num_layers, rate=0.5):
    """Indices of the layers Fan et al.'s "every other" strategy keeps when pruning ``rate`` of them:
    depth d = index + 1 is pruned when d is a multiple of floor(1 / rate)."""
    check_number("rate (every other layer at most)", rate, 0, 0.5, low_open=True)
    step = int(1 // rate)
    return [i for i in range(num_layers) if (i + 1) % step != 0]


def prune_layers(layer_drop, rate=0.5):
    """A ``LayerDrop`` holding the layers ``every_other`` keeps (the same modules, not copies)."""
    if not isinstance(layer_drop, LayerDrop):
        raise TypeError(f"expected a LayerDrop, got {type(layer_drop).__name__}")
    keep = every_other(len(layer_drop.layers), rate)
    return LayerDrop([layer_drop.layers[i] for i in keep], layer_drop.p)


def residual_mlp(in_features, width, depth, out_features, p=0.0):
    """Linear(in, width), ReLU, LayerDrop(``depth`` residual blocks, p), Linear(width, out); index 2 is the stack."""
    return Sequential(Linear(in_features, width), ReLU(),
                      LayerDrop([ResidualBlock(width) for _ in range(depth)], p), Linear(width, out_features))
