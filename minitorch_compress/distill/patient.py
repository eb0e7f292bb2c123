"""Patient knowledge distillation (Sun, Cheng, Gan & Liu 2019, "Patient Knowledge Distillation
for BERT Model Compression", arXiv:1908.09355).

A shallow student learns not only from the teacher's logits (KD) but, "patiently", from the
teacher's intermediate layers: the student's k-th layer imitates the teacher's layer I(k) on one
vector per example, the [CLS] token's hidden state (``pooling="cls"``; ``"mean"`` averages the
tokens, for a model that pools that way). Vectors are compared in direction (eq. 4):

    L_PT = sum over the M chosen pairs (k, I(k)) of || h_s,k / ||h_s,k||_2 - h_t,I(k) / ||h_t,I(k)||_2 ||_2^2

averaged over the batch (``reduction="batchmean"``, the paper's formula per example). The paper's
code (github.com/intersun/PKD-for-BERT-Model-Compression, ``patience_loss``) stacks the pairs into
an (N, M, H) tensor, normalises with ``F.normalize(p=2, dim=2)`` (x / max(||x||_2, 1e-12)) and
takes ``F.mse_loss``, the mean over all N*M*H elements: ``reduction="mean"``, which is the same
loss divided by M*H (why its beta is in the hundreds). The total loss (eq. 5) is

    L_PKD = (1 - alpha) * CE(z_s, y) + alpha * T^2 * KL(softmax(z_t/T) || softmax(z_s/T)) + beta * L_PT

Which teacher layers (for a teacher of N_t layers and a student of N_s, both counted from 1; the
last layer of each is left out, its output already being taught through the logits):

- PKD-skip: student layer k <- teacher layer k * N_t / N_s (every (N_t/N_s)-th: 6 -> 3 uses {2, 4}),
- PKD-last: student layer k <- teacher layer N_t - N_s + k (the last ones below the top: 6 -> 3 uses {4, 5}).

``pkd_skip``/``pkd_last`` return these pairs as 0-based indices (6 -> 3 skip: [(0, 1), (1, 3)]).
"""
from .. import functional as F
from ..nn import Module, TransformerEncoderLayer
from ..tensor import Tensor
from ..validation import check_int, check_number
from .distiller import Distiller
from .hints import Activations

_EPS = 1e-12   # F.normalize's eps: x / max(||x||, eps)
POOLINGS = ("cls", "mean")
REDUCTIONS = ("batchmean", "mean", "sum")


def _check_depths(num_student_layers, num_teacher_layers):
    check_int("num_student_layers", num_student_layers, 1)
    check_int("num_teacher_layers", num_teacher_layers, 1)
    if num_student_layers > num_teacher_layers:
        raise ValueError(f"a student of {num_student_layers} layers is deeper than its teacher of "
                         f"{num_teacher_layers}")


def pkd_skip(num_student_layers, num_teacher_layers):
    """PKD-skip's (student, teacher) layer pairs, 0-based: student layer k (1-based, k < N_s) learns
    from teacher layer k * N_t / N_s; N_t must be a multiple of N_s. 6 -> 3 gives [(0, 1), (1, 3)]."""
    _check_depths(num_student_layers, num_teacher_layers)
    if num_teacher_layers % num_student_layers:
        raise ValueError(f"PKD-skip needs the teacher's depth ({num_teacher_layers}) to be a multiple of the "
                         f"student's ({num_student_layers})")
    step = num_teacher_layers // num_student_layers
    return [(k - 1, k * step - 1) for k in range(1, num_student_layers)]


def pkd_last(num_student_layers, num_teacher_layers):
    """PKD-last's (student, teacher) layer pairs, 0-based: student layer k (1-based, k < N_s) learns
    from teacher layer N_t - N_s + k, the last N_s - 1 layers below the top. 6 -> 3 gives [(0, 3), (1, 4)]."""
    _check_depths(num_student_layers, num_teacher_layers)
    offset = num_teacher_layers - num_student_layers
    return [(k - 1, offset + k - 1) for k in range(1, num_student_layers)]


def layer_names(model, layer_type=TransformerEncoderLayer):
    """Names (as in ``named_modules()``) of ``model``'s submodules of ``layer_type``, in forward-definition order."""
    if not isinstance(model, Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    names = [name for name, module in model.named_modules() if isinstance(module, layer_type)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no {layer_type.__name__} submodule")
    return names


def pool_hidden(hidden, pooling="cls", batch_first=True):
    """One vector per example from a layer's (N, L, H) output ((L, N, H) if not ``batch_first``):
    the first token's ("cls") or the mean over tokens ("mean"). An (N, H) input is returned as is."""
    if not isinstance(hidden, Tensor):
        raise TypeError(f"hidden states must be a Tensor, got {type(hidden).__name__}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if hidden.ndim == 2:
        return hidden
    if hidden.ndim != 3:
        raise ValueError(f"hidden states of shape {hidden.shape} are neither (N, H) nor 3-D token sequences")
    token_axis = 1 if batch_first else 0
    if pooling == "cls":
        return hidden[:, 0] if batch_first else hidden[0]
    return hidden.mean(axis=token_axis)


def _unit(x):
    """x / max(||x||_2, eps) along the last axis, as F.normalize (max taken on the square: no 0/0 gradient)."""
    return x / (x * x).sum(axis=-1, keepdims=True).clamp(min=_EPS * _EPS).sqrt()


def patience_loss(student_hidden, teacher_hidden, normalize=True, reduction="batchmean"):
    """L_PT between paired lists of (N, H) vectors (the student's and teacher's chosen layers, in pair order):
    sum over pairs and features of (h_s/||h_s|| - h_t/||h_t||)^2, then ``reduction`` over examples:
    "batchmean" (mean over the batch: the paper's eq. 4 per example), "mean" (the paper's code,
    ``F.mse_loss`` over all N*M*H elements) or "sum". ``normalize=False`` compares raw vectors.
    Every pair has the same shape (N, H), as the paper's code stacks them. The teacher's vectors are
    constants (detached)."""
    if isinstance(student_hidden, Tensor) or isinstance(teacher_hidden, Tensor):
        raise TypeError("patience_loss takes lists of (N, H) Tensors, one per chosen layer")
    student_hidden, teacher_hidden = list(student_hidden), list(teacher_hidden)
    if len(student_hidden) != len(teacher_hidden) or not student_hidden:
        raise ValueError(f"patience_loss needs as many student as teacher layers (at least one), got "
                         f"{len(student_hidden)} and {len(teacher_hidden)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    total = None
    for i, (s, t) in enumerate(zip(student_hidden, teacher_hidden)):
        for name, x in (("student", s), ("teacher", t)):
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} hidden state {i} must be a Tensor, got {type(x).__name__}")
            if x.ndim != 2:
                raise ValueError(f"{name} hidden state {i} has shape {x.shape}, expected (N, H): pool it first")
        if s.shape != t.shape:
            raise ValueError(f"student hidden state {i} of shape {s.shape} does not match the teacher's {t.shape}")
        if s.shape != student_hidden[0].shape:   # the pairs stack into (N, M, H), as in the paper's code
            raise ValueError(f"hidden states of pair {i} have shape {s.shape}, pair 0's {student_hidden[0].shape}: "
                             f"every pair needs the same (N, H)")
        t = t.detach()
        diff = (_unit(s) - _unit(t)) if normalize else (s - t)
        per_example = (diff * diff).sum(axis=1)
        total = per_example if total is None else total + per_example
    if reduction == "sum":
        return total.sum()
    if reduction == "batchmean":
        return total.mean()
    n, h = student_hidden[0].shape
    return total.sum() * (1.0 / (n * h * len(student_hidden)))


class PatientDistiller(Distiller):
    """A ``Distiller`` whose loss adds Patient KD's ``beta * L_PT``::

        distiller = PatientDistiller(student, teacher, layers="skip", temperature=4.0, alpha=0.5, beta=1.0)
        mc.train.fit(distiller, loader, SGD(distiller.parameters(), lr=0.1), loss_fn=distiller.loss)

    total = (1 - alpha) * CE + alpha * T^2 * KL + beta * L_PT (``patience_loss`` with ``normalize``
    and ``reduction``). ``layers`` is "skip" or "last" (``pkd_skip``/``pkd_last`` over the
    ``TransformerEncoderLayer`` submodules of each model, see ``layer_names``) or an explicit
    sequence of (student submodule name, teacher submodule name) pairs. Each named layer's output
    is pooled with ``pool_hidden(output, pooling, batch_first)``. ``history["patience"]`` records
    L_PT per training batch, beside "soft", "hard" and "hint".

    Every paired layer must run in each forward pass: one skipped by ``LayerDrop`` (in training) has
    no output to compare, and ``loss`` raises ValueError naming it rather than leave the pair out
    (which would change the number of terms of L_PT from batch to batch). Pair layers outside a
    LayerDrop stack, or distil with ``beta=0``.
    """

    def __init__(self, student, teacher, layers="skip", temperature=4.0, alpha=0.5, beta=1.0, pooling="cls",
                 batch_first=True, normalize=True, reduction="batchmean"):
        check_number("beta", beta, 0)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        super().__init__(student, teacher, temperature, alpha)
        if isinstance(layers, str):
            if layers not in ("skip", "last"):
                raise ValueError(f"layers must be 'skip', 'last' or (student, teacher) name pairs, got {layers!r}")
            s_names, t_names = layer_names(student), layer_names(teacher)
            pairs = (pkd_skip if layers == "skip" else pkd_last)(len(s_names), len(t_names))
            layers = [(s_names[i], t_names[j]) for i, j in pairs]
        layers = [tuple(pair) for pair in layers]
        if not layers or any(len(pair) != 2 for pair in layers):
            raise ValueError(f"layers must be a non-empty sequence of (student, teacher) name pairs, got {layers!r}")
        self.layer_pairs = layers
        self.beta, self.pooling, self.batch_first = beta, pooling, batch_first
        self.normalize, self.reduction = normalize, reduction
        self._student_layers = Activations(student, [s for s, _ in layers])
        self._teacher_layers = Activations(teacher, [t for _, t in layers])
        self.history["patience"] = []

    def forward(self, x):
        # a layer skipped in this pass (LayerDrop) must not leave last batch's output behind
        self._student_layers.outputs.clear()
        self._teacher_layers.outputs.clear()
        return super().forward(x)

    def patience(self):
        """L_PT of the latest forward pass."""
        for which, recorded, names in (("student", self._student_layers, [s for s, _ in self.layer_pairs]),
                                       ("teacher", self._teacher_layers, [t for _, t in self.layer_pairs])):
            missing = [name for name in names if name not in recorded.outputs]
            if missing:
                raise ValueError(f"{which} layer {missing[0]!r} did not run in the latest forward pass (skipped by "
                                 f"LayerDrop?): patient KD needs the output of every paired layer")
        student = [pool_hidden(self._student_layers[s], self.pooling, self.batch_first) for s, _ in self.layer_pairs]
        teacher = [pool_hidden(self._teacher_layers[t], self.pooling, self.batch_first) for _, t in self.layer_pairs]
        return patience_loss(student, teacher, self.normalize, self.reduction)

    def loss(self, student_logits, target):
        """(1 - alpha) * CE + alpha * T^2 * KL + beta * L_PT for the batch of the latest forward."""
        total = super().loss(student_logits, target)
        if self.beta == 0:
            pt = 0.0
        else:
            pt_tensor = self.patience()
            total, pt = total + pt_tensor * self.beta, pt_tensor.item()
        if self.training:
            self.history["patience"].append(pt)
        return total

    def remove_hooks(self):
        super().remove_hooks()
        self._student_layers.remove()
        self._teacher_layers.remove()

    def extra_repr(self):
        return (f"layers={self.layer_pairs}, temperature={self.temperature}, alpha={self.alpha}, beta={self.beta}, "
                f"pooling={self.pooling!r}, reduction={self.reduction!r}")
