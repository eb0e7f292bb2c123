"""Mixup (Zhang, Cisse, Dauphin & Lopez-Paz 2017, "mixup: Beyond Empirical Risk Minimization",
arXiv:1710.09412): train on convex combinations of pairs of examples and of their labels,

    x~ = lam * x_i + (1 - lam) * x_j,    y~ = lam * y_i + (1 - lam) * y_j,    lam ~ Beta(alpha, alpha),

pairing each example of a batch with one of a random permutation of the same batch and drawing
one lam per batch, as the authors' code does. With one-hot labels the cross-entropy on y~ is

    mixup_loss = lam * CE(logits, y_i) + (1 - lam) * CE(logits, y_j),

so ``Mixup`` hands the loader's batches over with soft labels y~, which ``F.cross_entropy``
accepts; ``mixup_loss`` is the same loss written with the two label sets.
"""
import numpy as np

from . import functional as F
from .random import get_rng
from .tensor import Tensor, tensor
from .validation import check_int, check_number


def _check_alpha(alpha):
    check_number("mixup alpha", alpha, 0, low_open=True)


class Mixup:
    """A batch transform for ``DataLoader(..., transform=Mixup(alpha, num_classes))``: integer
    labels in, mixed inputs and soft labels out. The draws come from ``mc.get_rng()``."""

    def __init__(self, alpha=1.0, num_classes=10):
        _check_alpha(alpha)
        check_int("num_classes", num_classes, 2)
        self.alpha, self.num_classes = alpha, num_classes

    def __call__(self, X, y):
        labels = y.data if isinstance(y, Tensor) else np.asarray(y)
        if labels.dtype.kind not in "iu" or labels.shape != (len(X),):
            raise ValueError(f"Mixup expects integer labels of shape ({len(X)},), got {labels.dtype} {labels.shape}")
        bad = (labels < 0) | (labels >= self.num_classes)
        if bad.any():
            raise ValueError(f"Mixup: class label {labels[bad][0]} is outside [0, {self.num_classes})")
        rng = get_rng()
        lam = rng.beta(self.alpha, self.alpha)
        partner = rng.permutation(len(X))
        x = X.data if isinstance(X, Tensor) else np.asarray(X)
        one_hot = np.eye(self.num_classes, dtype=x.dtype)[labels]
        mixed = lam * x + (1 - lam) * x[partner]
        soft = lam * one_hot + (1 - lam) * one_hot[partner]
        return tensor(mixed.astype(x.dtype)), tensor(soft.astype(x.dtype))


def mixup_loss(logits, target_a, target_b, lam):
    """lam * cross_entropy(logits, target_a) + (1 - lam) * cross_entropy(logits, target_b)."""
    check_number("mixup lam", lam, 0, 1)
    return F.cross_entropy(logits, target_a) * lam + F.cross_entropy(logits, target_b) * (1 - lam)
