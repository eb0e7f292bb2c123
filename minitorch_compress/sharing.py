"""Cross-layer parameter sharing, as in ALBERT (Lan et al. 2019, "ALBERT: A Lite BERT for
Self-supervised Learning of Language Representations", arXiv:1909.11942).

A stack of L layers uses only G distinct parameter sets: layer l runs block floor(l * G / L),
so consecutive layers form G groups (ALBERT's ``num_hidden_groups``; G = 1 shares one block
across all layers). The parameter count drops by L / G while the compute per example stays
that of L layers. A shared parameter's gradient is the sum of its gradients at every layer
that uses it (the engine accumulates them, as for any tensor used twice).
"""
from .nn import Module, ModuleList
from .validation import check_positive


class SharedLayers(Module):
    """``num_layers`` layers built from ``num_groups`` blocks made by ``make_block()``."""

    def __init__(self, make_block, num_layers, num_groups=1):
        super().__init__()
        check_positive(num_layers=num_layers, num_groups=num_groups)
        if num_groups > num_layers:
            raise ValueError(f"num_groups={num_groups} cannot exceed num_layers={num_layers}")
        self.blocks = ModuleList(make_block() for _ in range(num_groups))
        self.num_layers = num_layers

    def block_of(self, layer):
        """Which block layer ``layer`` (0-based) runs."""
        return layer * len(self.blocks) // self.num_layers

    def forward(self, x):
        for layer in range(self.num_layers):
            x = self.blocks[self.block_of(layer)](x)
        return x

    def extra_repr(self):
        return f"num_layers={self.num_layers}, num_groups={len(self.blocks)}"
