"""A vision transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", arXiv:2010.11929),
after ``torchvision.models.VisionTransformer``.

The image is cut into non-overlapping ``patch_size`` x ``patch_size`` patches, each patch is a
token: a linear projection of its pixels (torchvision's ``conv_proj``, a convolution with kernel and
stride ``patch_size``, is the same product; here ``patchify`` then a ``Linear``). A learned class
token is put in front, learned position embeddings are added, and pre-norm encoder layers
(``nn.TransformerEncoderLayer(norm_first=True)``, GELU) let every token attend to every other::

    z_0 = [class_token; patchify(x) W_p^T + b_p] + pos_embedding
    z_l = layer_l(z_{l-1}),   logits = heads(ln(z_L)[:, 0])

``encoder.layers`` is a ``Sequential`` of the layers, so it can be replaced by any module that maps
(N, L, hidden_dim) to the same shape (a ``LayerDrop`` or ``SharedLayers`` stack).
"""
import math
from collections import OrderedDict

import numpy as np

from .nn import Dropout, LayerNorm, Linear, Module, Parameter, Sequential, TransformerEncoderLayer
from .random import get_rng
from .tensor import Tensor, cat, zeros
from .validation import check_number, check_positive


def patchify(images, patch_size):
    """(N, C, H, W) images -> (N, (H/p)(W/p), C p p) tokens, row-major over the patch grid, each
    patch's pixels in (channel, row, column) order: the order of a Conv2d weight (out, C, p, p)."""
    if not isinstance(images, Tensor):
        raise TypeError(f"patchify expects a Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"patchify expects (N, C, H, W) images, got shape {images.shape}")
    check_positive(patch_size=patch_size)
    n, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_size={p}")
    grid = images.reshape(n, c, h // p, p, w // p, p)                      # (N, C, H/p, p, W/p, p)
    grid = grid.transpose(1, 2).transpose(2, 4).transpose(3, 4)            # (N, H/p, W/p, C, p, p)
    return grid.reshape(n, (h // p) * (w // p), c * p * p)


class Encoder(Module):
    """Position embeddings, dropout, the layers and a final LayerNorm, as torchvision's ``Encoder``."""

    def __init__(self, seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout, attention_dropout,
                 layer_norm_eps=1e-6):
        super().__init__()
        self.pos_embedding = Parameter((get_rng().standard_normal((1, seq_length, hidden_dim)) * 0.02)
                                       .astype(np.float32))
        self.dropout = Dropout(dropout)
        layers = OrderedDict()
        for i in range(num_layers):
            layer = TransformerEncoderLayer(hidden_dim, num_heads, mlp_dim, dropout, "gelu", layer_norm_eps,
                                            batch_first=True, norm_first=True)
            layer.self_attn.dropout = attention_dropout
            layers[f"encoder_layer_{i}"] = layer
        self.layers = Sequential(layers)
        self.ln = LayerNorm(hidden_dim, layer_norm_eps)

    def forward(self, x):
        if x.ndim != 3 or x.shape[1:] != self.pos_embedding.shape[1:]:
            raise ValueError(f"Encoder expects (N, {self.pos_embedding.shape[1]}, {self.pos_embedding.shape[2]}) "
                             f"tokens, got shape {x.shape}")
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(Module):
    """``torchvision.models.VisionTransformer(image_size, patch_size, num_layers, num_heads, hidden_dim,
    mlp_dim, dropout=0.0, attention_dropout=0.0, num_classes=1000)`` for square images with
    ``in_channels`` channels (1 for MNIST). Attributes: ``patch_proj`` (the patch Linear),
    ``class_token`` (1, 1, hidden_dim), ``encoder`` (``pos_embedding``, ``layers``, ``ln``), ``heads``
    (``head``). Initialised as torchvision where it matters most: zero class token, position
    embeddings N(0, 0.02^2), zero head; but the patch projection is N(0, 1 / fan_in) clipped at 2
    standard deviations (torchvision's ``trunc_normal_`` cuts at +-2 in absolute value, so it hardly
    ever clips), and the MLP's Linears keep ``nn.Linear``'s default (torchvision's ``MLPBlock`` uses
    Xavier-uniform weights and N(0, 1e-6) biases): lesson 17's checkpoints were trained this way."""

    def __init__(self, image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim, dropout=0.0,
                 attention_dropout=0.0, num_classes=1000, in_channels=1):
        super().__init__()
        check_positive(image_size=image_size, patch_size=patch_size, num_layers=num_layers, num_heads=num_heads,
                       hidden_dim=hidden_dim, mlp_dim=mlp_dim, num_classes=num_classes, in_channels=in_channels)
        check_number("dropout", dropout, 0, 1, high_open=True)
        check_number("attention_dropout", attention_dropout, 0, 1, high_open=True)
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}")
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim={hidden_dim} is not divisible by num_heads={num_heads}")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.hidden_dim, self.num_classes = hidden_dim, num_classes
        fan_in = in_channels * patch_size * patch_size
        self.patch_proj = Linear(fan_in, hidden_dim)
        weight = get_rng().standard_normal((hidden_dim, fan_in)).clip(-2, 2) * math.sqrt(1 / fan_in)
        self.patch_proj.weight.data[...] = weight.astype(np.float32)
        self.patch_proj.bias.data[...] = 0
        self.class_token = Parameter(np.zeros((1, 1, hidden_dim), np.float32))
        self.seq_length = (image_size // patch_size) ** 2 + 1
        self.encoder = Encoder(self.seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout,
                               attention_dropout)
        self.heads = Sequential(OrderedDict(head=Linear(hidden_dim, num_classes)))
        self.heads.head.weight.data[...] = 0
        self.heads.head.bias.data[...] = 0

    def _process_input(self, x):
        """(N, C, H, W) images -> (N, number of patches, hidden_dim) patch embeddings."""
        if not isinstance(x, Tensor):
            raise TypeError(f"VisionTransformer expects a Tensor, got {type(x).__name__}")
        if x.ndim == 2 and x.shape[1] == self.in_channels * self.image_size ** 2:
            x = x.reshape(x.shape[0], self.in_channels, self.image_size, self.image_size)   # flattened images
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or x.shape[1:] != expected:
            raise ValueError(f"VisionTransformer expects (N, {', '.join(map(str, expected))}) images, "
                             f"got shape {x.shape}")
        return self.patch_proj(patchify(x, self.patch_size))

    def forward(self, x):
        x = self._process_input(x)
        n = x.shape[0]
        tokens = cat([self.class_token + zeros(n, 1, self.hidden_dim), x], dim=1)   # the token for each image
        return self.heads(self.encoder(tokens)[:, 0])

    def extra_repr(self):
        return f"image_size={self.image_size}, patch_size={self.patch_size}, in_channels={self.in_channels}"
