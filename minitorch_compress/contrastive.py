"""Contrastive self-supervised learning in the style of SimCLR (Chen et al. 2020).

Two augmented views of each of N images go through an encoder and a projection head, giving
z (2N, d). The NT-Xent loss ("normalised temperature-scaled cross entropy") asks each view to pick
out its partner among the other 2N - 1 views by cosine similarity:

    s_ij = z_i . z_j / (|z_i| |z_j|),    l_i = -log( exp(s_i,p(i) / t) / sum_{k != i} exp(s_ik / t) ),
    loss = mean_i l_i,

where p(i) is i's partner (i + N or i - N) and t the temperature. A small t sharpens the
softmax: the hardest negatives dominate the gradient. Built from the engine's operations, so its
gradient is autograd's (checked against finite differences in the tests).
"""
import numpy as np

from . import functional as F
from .tensor import Tensor, cat


def nt_xent_loss(z1, z2, temperature=0.5):
    """NT-Xent of the projections ``z1`` and ``z2`` (N, d) of two views of the same N images."""
    if not isinstance(z1, Tensor) or not isinstance(z2, Tensor):
        raise TypeError("nt_xent_loss takes two Tensors of projections")
    if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError(f"z1 and z2 must both be (N, d) with N >= 2, got {z1.shape} and {z2.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    n = z1.shape[0]
    z = cat([z1, z2], axis=0)
    z = z / ((z * z).sum(axis=1, keepdims=True) ** 0.5)
    logits = (z @ z.T) / temperature
    # a view is not its own negative: -inf on the diagonal drops it from the softmax
    logits = logits + Tensor(np.where(np.eye(2 * n, dtype=bool), -np.inf, 0).astype(z.dtype))
    partner = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    return F.cross_entropy(logits, partner)
