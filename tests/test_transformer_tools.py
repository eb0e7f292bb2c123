"""Compressing a transformer (issue 18): patient KD, head importance and pruning, LayerDrop and
sharing on encoder layers, factorised embeddings, int8 attention and SmoothQuant."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import functional as F
from minitorch_compress import nn
from minitorch_compress.distill import (PatientDistiller, kd_loss, layer_names, patience_loss, pkd_last, pkd_skip,
                                        pool_hidden)
from minitorch_compress.gradcheck import gradcheck


def t64(*shape, seed=0, requires_grad=True):
    return mc.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=requires_grad,
                     dtype=np.float64)


class Encoder(nn.Module):
    """Tokens (N, L, E) -> encoder layers -> a linear head on the first token: a tiny ViT-like model."""

    def __init__(self, depth, width=8, heads=2, classes=3):
        super().__init__()
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(width, heads, 2 * width, 0.0, batch_first=True,
                                                               norm_first=True) for _ in range(depth))
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.head(x[:, 0])


# ----- patient knowledge distillation (Sun et al. 2019) ------------------------------------------
def test_pkd_layer_maps_are_the_papers():
    # the paper's 12 -> 6: skip {2,4,6,8,10}, last {7,8,9,10,11} (1-based), the top layer left out
    assert [(s + 1, t + 1) for s, t in pkd_skip(6, 12)] == [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]
    assert [(s + 1, t + 1) for s, t in pkd_last(6, 12)] == [(1, 7), (2, 8), (3, 9), (4, 10), (5, 11)]
    assert pkd_skip(3, 6) == [(0, 1), (1, 3)] and pkd_last(3, 6) == [(0, 3), (1, 4)]
    assert pkd_skip(1, 4) == [] and pkd_last(1, 4) == []
    with pytest.raises(ValueError, match="multiple"):
        pkd_skip(4, 6)
    with pytest.raises(ValueError, match="deeper"):
        pkd_last(4, 3)
    with pytest.raises(ValueError, match="positive int"):
        pkd_skip(2.0, 4)


def test_patience_loss_hand_worked():
    # one layer, two examples: (3,4)/5 - (1,0) = (-0.4, 0.8) -> 0.8; (0,2) and (0,5) point the same way -> 0
    s, t = mc.tensor([[3.0, 4.0], [0.0, 2.0]]), mc.tensor([[1.0, 0.0], [0.0, 5.0]])
    assert patience_loss([s], [t]).item() == pytest.approx(0.4)
    assert patience_loss([s], [t], reduction="sum").item() == pytest.approx(0.8)
    assert patience_loss([s], [t], reduction="mean").item() == pytest.approx(0.8 / 4)   # over N*M*H = 2*1*2
    assert patience_loss([s, s], [t, t]).item() == pytest.approx(0.8)                   # summed over layers
    # unnormalised: (2,4) and (0,-3), squared: 20 and 9, batch mean 14.5
    assert patience_loss([s], [t], normalize=False).item() == pytest.approx(14.5)
    # an all-zero vector stays zero (F.normalize divides by max(norm, 1e-12)) and has a finite gradient
    z = mc.tensor([[0.0, 0.0]], requires_grad=True)
    loss = patience_loss([z], [mc.tensor([[0.0, 1.0]])])
    loss.backward()
    assert loss.item() == pytest.approx(1.0) and np.all(np.isfinite(z.grad))


def test_patience_loss_matches_the_reference_code_formula_and_finite_differences():
    n, m, h = 5, 3, 4
    s = [t64(n, h, seed=i) for i in range(m)]
    t = [t64(n, h, seed=10 + i, requires_grad=False) for i in range(m)]
    S, T = np.stack([x.data for x in s], 1), np.stack([x.data for x in t], 1)           # (N, M, H)

    def normalize(a):   # torch.nn.functional.normalize(a, p=2, dim=2)
        return a / np.maximum(np.linalg.norm(a, axis=2, keepdims=True), 1e-12)
    mse = ((normalize(S) - normalize(T)) ** 2).mean()                                  # the PKD repo's patience_loss
    assert patience_loss(s, t, reduction="mean").item() == pytest.approx(mse, rel=1e-12)
    assert patience_loss(s, t).item() == pytest.approx(mse * m * h, rel=1e-12)
    assert gradcheck(lambda *xs: patience_loss(list(xs), t), s)
    assert gradcheck(lambda *xs: patience_loss(list(xs), t, reduction="mean"), s)
    s[0].grad = None
    patience_loss(s, [x.detach() for x in s]).backward()    # identical directions: zero loss, zero gradient
    np.testing.assert_allclose(s[0].grad, 0, atol=1e-12)


def test_patience_loss_rejects_bad_input():
    a = mc.randn(2, 3)
    with pytest.raises(TypeError, match="lists"):
        patience_loss(a, a)
    with pytest.raises(ValueError, match="as many"):
        patience_loss([a, a], [a])
    with pytest.raises(ValueError, match=r"\(N, H\)"):
        patience_loss([mc.randn(2, 3, 4)], [mc.randn(2, 3, 4)])
    with pytest.raises(ValueError, match="does not match"):
        patience_loss([a], [mc.randn(2, 4)])
    with pytest.raises(ValueError, match="reduction"):
        patience_loss([a], [a], reduction="none")
    with pytest.raises(TypeError, match="Tensor"):
        patience_loss([a.data], [a])


def test_pool_hidden_takes_the_class_token_or_the_mean():
    x = t64(2, 3, 4, requires_grad=False)
    np.testing.assert_array_equal(pool_hidden(x).data, x.data[:, 0])
    np.testing.assert_allclose(pool_hidden(x, "mean").data, x.data.mean(axis=1))
    np.testing.assert_array_equal(pool_hidden(x.transpose(0, 1), "cls", batch_first=False).data, x.data[:, 0])
    np.testing.assert_allclose(pool_hidden(x.transpose(0, 1), "mean", batch_first=False).data, x.data.mean(axis=1))
    with pytest.raises(ValueError, match="pooling"):
        pool_hidden(x, "max")
    with pytest.raises(ValueError, match="shape"):
        pool_hidden(mc.randn(2, 3, 4, 5))


def test_patient_distiller_loss_is_ce_kd_and_beta_times_pt():
    mc.manual_seed(0)
    teacher, student = Encoder(6), Encoder(3)
    assert layer_names(teacher) == [f"layers.{i}" for i in range(6)]
    x, y = mc.randn(4, 5, 8), mc.tensor(np.array([0, 1, 2, 1]))
    for layers, chosen in (("skip", [(0, 1), (1, 3)]), ("last", [(0, 3), (1, 4)])):
        d = PatientDistiller(student, teacher, layers, temperature=2.0, alpha=0.3, beta=5.0)
        assert d.layer_pairs == [(f"layers.{i}", f"layers.{j}") for i, j in chosen]
        z = d(x)
        loss = d.loss(z, y)
        # the same terms from the layers run by hand, without hooks
        hs, ht, hx_s, hx_t = [], [], x, x
        for layer in student.layers:
            hx_s = layer(hx_s)
            hs.append(hx_s[:, 0])
        for layer in teacher.layers:
            hx_t = layer(hx_t)
            ht.append(hx_t[:, 0])
        pt = patience_loss([hs[i] for i, _ in chosen], [ht[j] for _, j in chosen])
        expected = kd_loss(z, teacher(x), y, 2.0, 0.3) + pt * 5.0
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
        assert d.history["patience"][-1] == pytest.approx(pt.item(), rel=1e-5)
        d.remove_hooks()
    pairs = [("layers.2", "layers.5")]
    d = PatientDistiller(student, teacher, pairs, beta=0.0)
    assert d.layer_pairs == pairs and d.history["patience"] == []
    d.loss(d(x), y)
    assert d.history["patience"] == [0.0]
    d.remove_hooks()
    with pytest.raises(ValueError, match="skip"):
        PatientDistiller(student, teacher, "middle")
    with pytest.raises(ValueError, match="no submodule"):
        PatientDistiller(student, teacher, [("layers.9", "layers.0")])
    with pytest.raises(ValueError, match="beta"):
        PatientDistiller(student, teacher, beta=-1.0)
    with pytest.raises(ValueError, match="no TransformerEncoderLayer"):
        PatientDistiller(nn.Linear(2, 2), teacher)


def test_patient_distiller_trains_the_student_towards_the_teacher_directions():
    mc.manual_seed(1)
    teacher, student = Encoder(4), Encoder(2)
    x, y = mc.randn(16, 5, 8), mc.tensor(np.arange(16) % 3)
    d = PatientDistiller(student, teacher, "skip", alpha=0.5, beta=10.0)
    opt = mc.optim.Adam(d.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = d.loss(d(x), y)
        loss.backward()
        opt.step()
        first = first if first is not None else d.history["patience"][0]
    assert d.history["patience"][-1] < 0.5 * first
