"""Cross-layer parameter sharing, as in ALBERT (Lan et al. 2019, "ALBERT: A Lite BERT for
Self-supervised Learning of Language Representations", arXiv:1909.11942).

A stack of L layers uses only G distinct parameter sets: layer l runs block floor(l * G / L),
so consecutive layers form G groups (ALBERT's ``num_hidden_groups``; G = 1 shares one block
across all layers). The parameter count drops by L / G while the compute per example stays
that of L layers. A shared parameter's gradient is the sum of its gradients at every layer
that uses it (the engine accumulates them, as for any tensor used twice). The blocks may be any
modules whose input and output shapes match, e.g. ``lambda: nn.TransformerEncoderLayer(...)``;
extra forward arguments (a padding mask) are passed to every layer.

ALBERT's other reduction, the factorised embedding (its section 3.1): instead of one V x H table
(vocabulary V, hidden size H), a V x E table and an E x H projection (``embedding_hidden_mapping_in``
in HF transformers' ALBERT), V E + E H + H parameters instead of V H, fewer when E is small
(V = 30000, H = 768, E = 128: 3,938,304 + 768 instead of 23,040,000). ``FactorizedEmbedding`` does it
for token indices; ``FactorizedLinear`` for a linear input map, such as a vision transformer's patch
projection (P pixels -> E -> H: P E + E H + H parameters instead of P H + H).
"""
from .nn import Embedding, Linear, Module, ModuleList
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

    def forward(self, x, *args, **kwargs):
        for layer in range(self.num_layers):
            x = self.blocks[self.block_of(layer)](x, *args, **kwargs)
        return x

    def extra_repr(self):
        return f"num_layers={self.num_layers}, num_groups={len(self.blocks)}"


def factorized_parameters(num_embeddings, embedding_dim, hidden_size, bias=True):
    """V E + E H (+ H with the projection's bias): the parameters of a factorised V -> E -> H embedding."""
    check_positive(num_embeddings=num_embeddings, embedding_dim=embedding_dim, hidden_size=hidden_size)
    return num_embeddings * embedding_dim + embedding_dim * hidden_size + (hidden_size if bias else 0)


class FactorizedEmbedding(Module):
    """ALBERT's factorised embedding: ``word_embeddings`` (an ``nn.Embedding(num_embeddings,
    embedding_dim)``) then ``embedding_hidden_mapping_in`` (``nn.Linear(embedding_dim, hidden_size)``)."""

    def __init__(self, num_embeddings, embedding_dim, hidden_size, padding_idx=None, bias=True):
        super().__init__()
        check_positive(hidden_size=hidden_size)
        self.word_embeddings = Embedding(num_embeddings, embedding_dim, padding_idx)
        self.embedding_hidden_mapping_in = Linear(embedding_dim, hidden_size, bias)

    def forward(self, indices):
        return self.embedding_hidden_mapping_in(self.word_embeddings(indices))


class FactorizedLinear(Module):
    """x -> ``down`` (``nn.Linear(in_features, rank, bias=False)``) -> ``up`` (``nn.Linear(rank,
    out_features, bias)``): a linear map of rank at most ``rank``, in_features * rank + rank *
    out_features (+ out_features) parameters; ALBERT's factorisation for a continuous input."""

    def __init__(self, in_features, rank, out_features, bias=True):
        super().__init__()
        check_positive(rank=rank)
        self.down, self.up = Linear(in_features, rank, bias=False), Linear(rank, out_features, bias)

    def forward(self, x):
        return self.up(self.down(x))

    def extra_repr(self):
        return f"{self.down.in_features} -> {self.down.out_features} -> {self.up.out_features}"
