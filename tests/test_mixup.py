"""Mixup (Zhang et al. 2017) as a DataLoader batch transform, and its loss."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import functional as F
from minitorch_compress.data import DataLoader, TensorDataset
from minitorch_compress.gradcheck import gradcheck
from minitorch_compress.mixup import Mixup, mixup_loss


def batch(n=6, features=4):
    rng = np.random.default_rng(0)
    return mc.tensor(rng.standard_normal((n, features)).astype(np.float32)), mc.tensor(np.arange(n) % 3)


def test_mixup_mixes_each_example_with_a_partner_from_the_same_batch():
    X, y = batch()
    mc.manual_seed(5)
    mixed, soft = Mixup(alpha=0.4, num_classes=3)(X, y)
    rng = np.random.default_rng(5)                          # the same draws, in the same order
    lam, partner = rng.beta(0.4, 0.4), rng.permutation(6)
    np.testing.assert_allclose(mixed.data, lam * X.data + (1 - lam) * X.data[partner], rtol=1e-6)
    expected = np.zeros((6, 3))
    expected[np.arange(6), y.data] += lam
    expected[np.arange(6), y.data[partner]] += 1 - lam
    np.testing.assert_allclose(soft.data, expected, rtol=1e-6)
    assert mixed.dtype == soft.dtype == np.float32


def test_mixup_works_as_a_dataloader_transform_with_soft_label_cross_entropy():
    X, y = batch(8)
    loader = DataLoader(TensorDataset(X.data, y.data), 4, transform=Mixup(1.0, 3))
    mc.manual_seed(0)
    batches = list(loader)
    assert [b[1].shape for b in batches] == [(4, 3), (4, 3)]
    for _, soft in batches:
        np.testing.assert_allclose(soft.data.sum(axis=1), 1, rtol=1e-6)
    logits = mc.tensor(np.zeros((4, 3)), requires_grad=True)
    F.cross_entropy(logits, batches[0][1]).backward()
    assert logits.grad.shape == (4, 3)


def test_mixup_loss_equals_cross_entropy_on_the_mixed_labels():
    rng = np.random.default_rng(1)
    logits = mc.tensor(rng.standard_normal((5, 4)), dtype=np.float64)
    a, b = np.array([0, 1, 2, 3, 0]), np.array([3, 3, 1, 0, 2])
    lam = 0.3
    soft = lam * np.eye(4)[a] + (1 - lam) * np.eye(4)[b]
    assert mixup_loss(logits, mc.tensor(a), mc.tensor(b), lam).item() == pytest.approx(
        F.cross_entropy(logits, mc.tensor(soft, dtype=np.float64)).item(), rel=1e-12)
    log_p = logits.data - np.log(np.exp(logits.data).sum(axis=1, keepdims=True))
    by_hand = -(lam * log_p[np.arange(5), a] + (1 - lam) * log_p[np.arange(5), b]).mean()
    assert mixup_loss(logits, mc.tensor(a), mc.tensor(b), lam).item() == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize("lam", [0.0, 0.35, 1.0])
def test_mixup_loss_gradient_matches_finite_differences(lam):
    rng = np.random.default_rng(2)
    logits = mc.tensor(rng.standard_normal((4, 3)), requires_grad=True, dtype=np.float64)
    a, b = mc.tensor(np.array([0, 1, 2, 1])), mc.tensor(np.array([2, 2, 0, 1]))
    assert gradcheck(lambda z: mixup_loss(z, a, b, lam), [logits])


def test_mixup_rejects_bad_arguments():
    X, y = batch()
    for alpha in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=f"mixup alpha must be a finite number > 0, got {alpha!r}"):
            Mixup(alpha)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2, got 1"):
        Mixup(1.0, 1)
    with pytest.raises(ValueError, match="class label 5 is outside"):
        Mixup(1.0, 3)(X, mc.tensor(np.array([0, 1, 2, 5, 0, 1])))
    with pytest.raises(ValueError, match=r"integer labels of shape \(6,\)"):
        Mixup(1.0, 3)(X, mc.tensor(np.zeros((6, 3))))
    with pytest.raises(ValueError, match=r"mixup lam must be a finite number in \[0, 1\], got 1.5"):
        mixup_loss(mc.tensor(np.zeros((6, 3))), y, y, 1.5)
