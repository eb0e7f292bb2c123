"""Multi-head attention and the transformer encoder layer, as ``torch.nn``."""
import math

import numpy as np

from .. import functional as F
from ..random import get_rng
from ..tensor import Tensor
from ..validation import check_positive
from .containers import Sequential
from .layers import GELU, Dropout, Linear, ReLU
from .module import Module, Parameter
from .normalization import LayerNorm


class NonDynamicallyQuantizableLinear(Linear):
    """A ``Linear`` that ``quant.quantize_dynamic(model, {nn.Linear})`` leaves in float, as PyTorch's
    ``torch.nn.modules.linear.NonDynamicallyQuantizableLinear``: the type of ``MultiheadAttention.out_proj``
    (the whole attention is quantized by naming ``nn.MultiheadAttention`` in the spec)."""


class MultiheadAttention(Module):
    """``torch.nn.MultiheadAttention``: the input projections stacked in ``in_proj_weight`` (3E, E)
    (Xavier-uniform) and ``in_proj_bias`` (zeros), an ``out_proj`` Linear with zero bias; each of
    the ``num_heads`` heads attends with E / num_heads dimensions::

        head_h = softmax(Q_h K_h^T / sqrt(E / H) + mask) V_h,   out = concat_h(head_h) W_o^T + b_o

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True)`` returns (output, weights averaged over heads or None). Inputs are
    (L, N, E), or (N, L, E) with ``batch_first=True``. Boolean masks mark what may NOT be attended
    to (True = masked), as PyTorch's here: ``attn_mask`` (L, S), ``key_padding_mask`` (N, S).

    Beyond PyTorch, for head pruning (``prune.heads``, Michel et al. 2019): ``head_mask``, a
    non-persistent buffer, None or a (num_heads,) tensor xi multiplying each head's output before
    ``out_proj`` (out = concat_h(xi_h head_h) W_o^T + b_o; the returned weights are not masked); and
    heads may be removed (``prune.prune_heads``), leaving ``num_heads * head_dim`` < ``embed_dim``
    projection rows, each head keeping its head_dim and its 1/sqrt(head_dim) scaling. With no head
    left the output is ``out_proj``'s bias at every position and the weights are zeros.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False):
        super().__init__()
        check_positive(embed_dim=embed_dim, num_heads=num_heads)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        bound = math.sqrt(6 / (embed_dim + 3 * embed_dim))    # xavier_uniform_ on the (3E, E) matrix
        self.in_proj_weight = Parameter(get_rng().uniform(-bound, bound, (3 * embed_dim, embed_dim)).astype(np.float32))
        self.register_parameter("in_proj_bias", Parameter(np.zeros(3 * embed_dim, np.float32)) if bias else None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias)
        if bias:
            self.out_proj.bias.data[...] = 0
        self.register_buffer("head_mask", None, persistent=False)

    def _heads(self, x):   # (N, L, H * D) -> (N, H, L, D)
        n, length = x.shape[:2]
        return x.reshape(n, length, self.num_heads, self.head_dim).transpose(1, 2)

    def in_projections(self, query, key, value):
        """(Q, K, V), each (N, L, num_heads * head_dim): the query, key and value (batch first) times
        rows 0..HD, HD..2HD and 2HD..3HD of ``in_proj_weight``, plus the same blocks of ``in_proj_bias``.
        Beyond PyTorch: the hook a subclass overrides to project differently (``quant.DynamicMultiheadAttention``)."""
        inner = self.num_heads * self.head_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        return tuple(F.linear(x, w[i * inner:(i + 1) * inner], None if b is None else b[i * inner:(i + 1) * inner])
                     for i, x in enumerate((query, key, value)))

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True):
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, length, e = query.shape
        if e != self.embed_dim:
            raise ValueError(f"MultiheadAttention({self.embed_dim}) got inputs with {e} features")
        if self.num_heads == 0:
            return self._headless(query, key, need_weights, average_attn_weights)
        q, k, v = (self._heads(x) for x in self.in_projections(query, key, value))
        allowed = None      # no mask: every key, without adding a tensor of zeros to the scores
        if attn_mask is not None or key_padding_mask is not None:
            blocked = np.zeros((n, 1, length, key.shape[1]), bool)
            if attn_mask is not None:
                blocked = blocked | np.asarray(attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask, bool)
            if key_padding_mask is not None:
                pad = np.asarray(key_padding_mask.data if isinstance(key_padding_mask, Tensor) else key_padding_mask,
                                 bool)
                blocked = blocked | pad[:, None, None, :]
            allowed = ~blocked
        out, weights = F.attention(q, k, v, allowed, self.dropout if self.training else 0.0)
        if self.head_mask is not None:
            if self.head_mask.shape != (self.num_heads,):
                raise ValueError(f"head_mask of shape {self.head_mask.shape} does not fit num_heads={self.num_heads}")
            out = out * self.head_mask.reshape(1, self.num_heads, 1, 1)
        out = self.out_proj(out.transpose(1, 2).reshape(n, length, self.num_heads * self.head_dim))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, (weights.mean(axis=1) if average_attn_weights else weights)

    def _headless(self, query, key, need_weights, average_attn_weights):
        """Every head removed: concat_h(head_h) is empty, so the output is out_proj's bias (or 0) everywhere."""
        n, length, e = query.shape
        out = Tensor(np.zeros((n, length, e), query.dtype))
        if self.out_proj.bias is not None:
            out = out + self.out_proj.bias
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        shape = (n, length, key.shape[1]) if average_attn_weights else (n, 0, length, key.shape[1])
        return out, Tensor(np.zeros(shape, out.dtype))

    def extra_repr(self):
        pruned = "" if self.num_heads * self.head_dim == self.embed_dim else f", head_dim={self.head_dim}"
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}{pruned}, batch_first={self.batch_first}"


class TransformerEncoderLayer(Module):
    """``torch.nn.TransformerEncoderLayer``: self-attention and a feed-forward network, each in a
    residual branch with dropout. ``norm_first=True`` (pre-norm) normalises each branch's input,
    x + sa(norm1(x)), then x + ff(norm2(x)), which trains without warm-up; the default (post-norm)
    normalises after each add."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True):
        super().__init__()
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, bias, batch_first)
        self.linear1, self.linear2 = Linear(d_model, dim_feedforward, bias), Linear(dim_feedforward, d_model, bias)
        self.feed_forward = Sequential(self.linear1, ReLU() if activation == "relu" else GELU(), Dropout(dropout),
                                       self.linear2)
        self.norm1, self.norm2 = LayerNorm(d_model, layer_norm_eps), LayerNorm(d_model, layer_norm_eps)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)
        self.norm_first = norm_first

    def _sa(self, x, attn_mask, key_padding_mask):
        return self.dropout1(self.self_attn(x, x, x, key_padding_mask, False, attn_mask)[0])

    def forward(self, src, src_mask=None, src_key_padding_mask=None):
        x = src
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask)
            return x + self.dropout2(self.feed_forward(self.norm2(x)))
        x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask))
        return self.norm2(x + self.dropout2(self.feed_forward(x)))
