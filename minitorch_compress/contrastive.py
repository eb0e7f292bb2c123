"""Contrastive self-supervised learning in the style of SimCLR (Chen et al. 2020).

Two augmented views of each of N images go through an encoder and a projection head, giving
z (2N, d). The NT-Xent loss ("normalised temperature-scaled cross entropy") asks each view to pick
out its partner among the other 2N - 1 views by cosine similarity:

    s_ij = z_i . z_j / (|z_i| |z_j|),    l_i = -log( exp(s_i,p(i) / t) / sum_{k != i} exp(s_ik / t) ),
    loss = mean_i l_i,

where p(i) is i's partner (i + N or i - N) and t the temperature. A small t sharpens the
softmax: the hardest negatives dominate the gradient. Built from the engine's operations, so its
gradient is autograd's (checked against finite differences in the tests).

Pre-training runs in ``mc.train.fit``: ``TwoViews`` is a ``DataLoader`` batch transform that stacks two
augmented views of the batch, (2N, ...), and ``NTXentLoss`` the loss function that splits the
projections back into the two views (it ignores the labels)::

    loader = DataLoader(train_set, 256, shuffle=True, drop_last=True, transform=TwoViews(views, (28, 28)))
    mc.train.fit(nn.Sequential(encoder, head), loader, optimizer, loss_fn=NTXentLoss(0.2), epochs=50)
"""
import numpy as np

from . import functional as F
from .tensor import Tensor, cat, tensor


def nt_xent_loss(z1, z2, temperature=0.5):
    """NT-Xent of the projections ``z1`` and ``z2`` (N, d) of two views of the same N images."""
    if not isinstance(z1, Tensor) or not isinstance(z2, Tensor):
        raise TypeError("nt_xent_loss takes two Tensors of projections")
    if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError(f"z1 and z2 must both be (N, d) with N >= 2, got {z1.shape} and {z2.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    return _stacked_loss(cat([z1, z2], axis=0), temperature)


def _stacked_loss(z, temperature):
    """NT-Xent of z (2N, d) whose halves are the two views."""
    n = z.shape[0] // 2
    z = z / ((z * z).sum(axis=1, keepdims=True) ** 0.5)
    logits = (z @ z.T) / temperature
    # a view is not its own negative: -inf on the diagonal drops it from the softmax
    logits = logits + Tensor(np.where(np.eye(2 * n, dtype=bool), -np.inf, 0).astype(z.dtype))
    partner = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    return F.cross_entropy(logits, partner)


class NTXentLoss:
    """``nt_xent_loss`` of projections ``z`` (2N, d) whose first and second halves are the two views
    of the same N images (as ``TwoViews`` stacks them); ``target`` is ignored, so it can serve as the
    ``loss_fn`` of ``mc.train.fit``."""

    def __init__(self, temperature=0.5):
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.temperature = temperature

    def __call__(self, z, target=None):
        if not isinstance(z, Tensor):
            raise TypeError(f"NTXentLoss takes a Tensor of projections, got {type(z).__name__}")
        if z.ndim != 2 or z.shape[0] % 2 or z.shape[0] < 4:
            raise ValueError(f"NTXentLoss takes projections (2N, d) of two stacked views with N >= 2, got {z.shape}")
        return _stacked_loss(z, self.temperature)

    def __repr__(self):
        return f"NTXentLoss(temperature={self.temperature})"


class TwoViews:
    """A ``DataLoader`` batch transform for contrastive pre-training: X (N, ...) becomes two views
    ``transform(X)`` stacked, (2N, ...), each image reshaped to ``shape`` for the transform and
    flattened back; the labels are repeated (NTXentLoss ignores them)."""

    def __init__(self, transform, shape):
        self.transform, self.shape = transform, tuple(shape)

    def __call__(self, X, y):
        data = X.data if isinstance(X, Tensor) else np.asarray(X)
        images = data.reshape((len(data),) + self.shape)
        views = [self.transform(images).reshape(data.shape) for _ in range(2)]
        labels = y.data if isinstance(y, Tensor) else np.asarray(y)
        return tensor(np.concatenate(views)), tensor(np.concatenate([labels, labels]))

    def __repr__(self):
        return f"TwoViews({self.transform!r}, shape={self.shape})"
