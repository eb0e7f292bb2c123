"""Knowledge distillation: kd_loss (Hinton et al. 2015), hint losses (FitNets, Patient KD), Distiller."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import functional as F
from minitorch_compress import nn, optim
from minitorch_compress.data import DataLoader, TensorDataset
from minitorch_compress.distill import Activations, Distiller, HintLoss, kd_loss, soft_target_loss
from minitorch_compress.gradcheck import gradcheck
from minitorch_compress.train import fit


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def kd_by_hand(s, t, y, T, alpha):
    """Hinton et al.'s loss written out in float64 NumPy."""
    p = np.exp(log_softmax(t / T))
    kl = (p * (np.log(p) - log_softmax(s / T))).sum() / len(s)
    ce = -log_softmax(s)[np.arange(len(s)), y].mean()
    return alpha * T * T * kl + (1 - alpha) * ce


def logits(seed, shape=(6, 5), scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


# ----- kd_loss ------------------------------------------------------------------------------------
@pytest.mark.parametrize("T, alpha", [(1.0, 0.5), (4.0, 0.9), (2.5, 0.0), (8.0, 1.0)])
def test_kd_loss_matches_the_formula(T, alpha):
    s, t, y = logits(0), logits(1, scale=3.0), np.array([0, 1, 2, 3, 4, 0])
    loss = kd_loss(mc.tensor(s, dtype=np.float64), mc.tensor(t, dtype=np.float64), mc.tensor(y), T, alpha)
    assert loss.item() == pytest.approx(kd_by_hand(s, t, y, T, alpha), rel=1e-12)


@pytest.mark.parametrize("T, alpha", [(1.0, 0.5), (4.0, 0.9), (3.0, 1.0)])
def test_kd_loss_gradient_matches_finite_differences(T, alpha):
    student = mc.tensor(logits(2), requires_grad=True, dtype=np.float64)
    teacher = mc.tensor(logits(3, scale=2.0), dtype=np.float64)
    y = mc.tensor(np.array([4, 3, 2, 1, 0, 2]))
    assert gradcheck(lambda s: kd_loss(s, teacher, y, T, alpha), [student])


def test_kd_loss_sends_no_gradient_to_the_teacher():
    student = mc.tensor(logits(4), requires_grad=True, dtype=np.float64)
    teacher = mc.tensor(logits(5), requires_grad=True, dtype=np.float64)
    kd_loss(student, teacher, mc.tensor(np.zeros(6, dtype=np.int64)), 2.0, 0.7).backward()
    assert teacher.grad is None and np.abs(student.grad).sum() > 0


def test_soft_gradient_approaches_logit_matching_at_high_temperature():
    # Hinton et al., eq. 3-4: with zero-mean logits and T >> |z|, the gradient of T^2 KL per
    # example is (z_s - z_t) / C, independent of T: the T^2 factor keeps its scale fixed.
    s, t = logits(6, (4, 10)), logits(7, (4, 10))
    s, t = s - s.mean(axis=1, keepdims=True), t - t.mean(axis=1, keepdims=True)
    limit = (s - t) / (10 * len(s))
    for T, tolerance in ((10.0, 0.2), (100.0, 0.02), (1000.0, 0.002)):   # the error shrinks as 1/T
        student = mc.tensor(s, requires_grad=True, dtype=np.float64)
        soft_target_loss(student, mc.tensor(t, dtype=np.float64), T).backward()
        assert np.abs(student.grad - limit).max() <= tolerance * np.abs(limit).max()


def test_kd_loss_of_a_student_equal_to_its_teacher_is_its_cross_entropy_share():
    z = mc.tensor(logits(8), dtype=np.float64)
    y = mc.tensor(np.array([1, 1, 0, 4, 2, 3]))
    assert kd_loss(z, z, y, 3.0, 0.25).item() == pytest.approx(0.75 * F.cross_entropy(z, y).item(), abs=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=0.0), "temperature must be a finite number > 0, got 0.0"),
    (dict(temperature=-2), "temperature must be a finite number > 0, got -2"),
    (dict(temperature=float("nan")), "temperature must be a finite number > 0, got nan"),
    (dict(temperature=float("inf")), "temperature must be a finite number > 0, got inf"),
    (dict(alpha=1.5), r"alpha must be a finite number in \[0, 1\], got 1.5"),
    (dict(alpha=-0.1), r"alpha must be a finite number in \[0, 1\], got -0.1"),
])
def test_kd_loss_rejects_bad_hyperparameters(kwargs, message):
    args = dict(temperature=2.0, alpha=0.5) | kwargs
    z = mc.tensor(logits(0))
    with pytest.raises(ValueError, match=message):
        kd_loss(z, z, mc.tensor(np.zeros(6, dtype=np.int64)), **args)


def test_kd_loss_rejects_mismatched_logits_and_arrays():
    with pytest.raises(ValueError, match=r"\(6, 5\).*\(6, 4\)"):
        kd_loss(mc.tensor(logits(0)), mc.tensor(logits(1, (6, 4))), mc.tensor(np.zeros(6, dtype=np.int64)), 2.0, 0.5)
    with pytest.raises(TypeError, match="teacher_logits must be a Tensor"):
        kd_loss(mc.tensor(logits(0)), logits(1), mc.tensor(np.zeros(6, dtype=np.int64)), 2.0, 0.5)


# ----- hints --------------------------------------------------------------------------------------
def test_hint_loss_is_the_mean_squared_error_after_the_regressor():
    mc.manual_seed(0)
    hint = HintLoss(3, 5).double()
    s, t = logits(1, (4, 3)), logits(2, (4, 5))
    w, b = hint.regressor.weight.data, hint.regressor.bias.data
    expected = ((s @ w.T + b - t) ** 2).mean()
    assert hint(mc.tensor(s, dtype=np.float64), mc.tensor(t, dtype=np.float64)).item() == pytest.approx(expected)


def test_hint_loss_of_equal_widths_has_no_regressor_parameters():
    hint = HintLoss(4, 4)
    assert list(hint.parameters()) == []
    s, t = logits(1, (3, 4)), logits(2, (3, 4))
    assert hint(mc.tensor(s), mc.tensor(t)).item() == pytest.approx(((s - t) ** 2).mean(), rel=1e-6)


def test_normalized_hint_loss_compares_directions():
    s, t = logits(3, (5, 4)), logits(4, (5, 4))
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    expected = ((unit(s) - unit(t)) ** 2).sum(axis=1).mean()
    loss = HintLoss(4, 4, normalize=True)(mc.tensor(s, dtype=np.float64), mc.tensor(t, dtype=np.float64))
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    scaled = HintLoss(4, 4, normalize=True)(mc.tensor(3 * s, dtype=np.float64), mc.tensor(t, dtype=np.float64))
    assert scaled.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("normalize", [False, True])
def test_hint_loss_gradient_matches_finite_differences(normalize):
    mc.manual_seed(1)
    hint = HintLoss(3, 4, normalize=normalize).double()
    student = mc.tensor(logits(5, (5, 3)), requires_grad=True, dtype=np.float64)
    teacher = mc.tensor(logits(6, (5, 4)), dtype=np.float64)
    w, b = hint.regressor.weight, hint.regressor.bias
    assert gradcheck(lambda s, w, b: hint(s, teacher), [student, w, b])


def test_hint_loss_rejects_features_of_the_wrong_width():
    with pytest.raises(ValueError, match=r"student features of shape \(2, 5\) do not fit \(N, 3\)"):
        HintLoss(3, 4)(mc.tensor(np.zeros((2, 5))), mc.tensor(np.zeros((2, 4))))
    with pytest.raises(ValueError, match=r"teacher features of shape \(2, 3\) do not fit \(N, 4\)"):
        HintLoss(3, 4)(mc.tensor(np.zeros((2, 3))), mc.tensor(np.zeros((2, 3))))


def test_activations_record_the_named_layers_outputs_until_removed():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    acts = Activations(model, ["0", "1"])
    x = mc.tensor(logits(0, (2, 4)))
    model(x)
    pre = x.data @ model[0].weight.data.T + model[0].bias.data
    np.testing.assert_allclose(acts["0"].data, pre, rtol=1e-6)
    np.testing.assert_allclose(acts["1"].data, np.maximum(pre, 0), rtol=1e-6)
    first = acts["1"]
    acts.remove()
    model(mc.tensor(logits(1, (2, 4))))
    assert acts["1"] is first
    with pytest.raises(ValueError, match="no submodule named '7'"):
        Activations(model, ["7"])


# ----- Distiller ----------------------------------------------------------------------------------
def tiny_setup():
    mc.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    teacher = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    student = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    return DataLoader(TensorDataset(X, y), 8, shuffle=True, seed=0), teacher, student


def test_distiller_loss_is_kd_loss_plus_weighted_hints():
    loader, teacher, student = tiny_setup()
    hint = HintLoss(4, 16)
    distiller = Distiller(student, teacher, temperature=3.0, alpha=0.7, hints=[("1", "1", hint)], hint_weight=0.5)
    X, y = next(iter(loader))
    loss = distiller.loss(distiller(X), y)
    teacher.eval()
    with mc.no_grad():
        t_hidden = teacher[1](teacher[0](X))
        expected = (kd_loss(student(X), teacher(X), y, 3.0, 0.7)
                    + hint(student[1](student[0](X)), t_hidden) * 0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_distiller_trains_student_and_regressor_but_never_the_teacher():
    loader, teacher, student = tiny_setup()
    teacher_before = {k: v.data.copy() for k, v in teacher.state_dict().items()}
    student_before = student[0].weight.data.copy()
    hint = HintLoss(4, 16)
    regressor_before = hint.regressor.weight.data.copy()
    distiller = Distiller(student, teacher, hints=[("1", "1", hint)])
    trained = {id(p) for p in distiller.parameters()}
    assert trained == {id(p) for p in list(student.parameters()) + list(hint.parameters())}
    fit(distiller, loader, optim.SGD(distiller.parameters(), lr=0.1), loss_fn=distiller.loss, epochs=2, progress=False)
    assert not teacher.training and all(not m.training for m in teacher.modules())
    for k, v in teacher.state_dict().items():
        np.testing.assert_array_equal(v.data, teacher_before[k])
    assert not np.array_equal(student[0].weight.data, student_before)
    assert not np.array_equal(hint.regressor.weight.data, regressor_before)
    # two epochs of three batches: every term recorded once per training batch
    assert [len(distiller.history[k]) for k in ("soft", "hard", "hint")] == [6, 6, 6]
    assert all(v > 0 for v in distiller.history["soft"] + distiller.history["hint"])


def test_distiller_keeps_the_teacher_deterministic_in_training_mode():
    loader, teacher, student = tiny_setup()
    distiller = Distiller(student, teacher).train()
    teacher.train()   # even if someone switches it back, the distiller evaluates it in eval mode
    X, _ = next(iter(loader))
    distiller(X)
    first = distiller._teacher_logits.data.copy()
    distiller(X)
    np.testing.assert_array_equal(distiller._teacher_logits.data, first)


def test_distiller_rejects_bad_arguments():
    loader, teacher, student = tiny_setup()
    with pytest.raises(ValueError, match="hint_weight must be a finite number >= 0, got -1"):
        Distiller(student, teacher, hint_weight=-1)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got 0"):
        Distiller(student, teacher, temperature=0)
    with pytest.raises(TypeError, match="each hint must be"):
        Distiller(student, teacher, hints=[("1", "1")])
    with pytest.raises(ValueError, match="no submodule named '9'"):
        Distiller(student, teacher, hints=[("9", "1", HintLoss(4, 16))])
    with pytest.raises(ValueError, match="latest forward pass"):
        Distiller(student, teacher).loss(mc.tensor(np.zeros((8, 3))), mc.tensor(np.zeros(8, dtype=np.int64)))


def test_distiller_remove_hooks_stops_recording_features():
    loader, teacher, student = tiny_setup()
    distiller = Distiller(student, teacher, hints=[("1", "1", HintLoss(4, 16))])
    X, _ = next(iter(loader))
    distiller(X)
    recorded = distiller._student_features["1"]
    distiller.remove_hooks()
    distiller(X)
    assert distiller._student_features["1"] is recorded
    assert not student[1].forward_hooks() and not teacher[1].forward_hooks()
