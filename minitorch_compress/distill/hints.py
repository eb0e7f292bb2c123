"""Intermediate-layer distillation: the student's hidden features imitate the teacher's.

FitNets (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets", arXiv:1412.6550) pick a
teacher layer (the hint, features u) and a student layer (the guided layer, features v) and
learn a regressor r, here a ``Linear`` from the student's width to the teacher's, so that
widths may differ:

    hint_loss = mean over batch and features of (r(v) - u)^2

(FitNets write 1/2 ||u - r(v)||^2; the mean only rescales the loss weight.) Patient KD
(Sun et al. 2019, "Patient Knowledge Distillation for BERT Model Compression",
arXiv:1908.09355) compares directions instead of values:

    hint_loss = mean over batch of || r(v)/||r(v)||_2 - u/||u||_2 ||_2^2

The features are captured from both networks with forward hooks (``Activations``).
"""
from .. import functional as F
from ..nn import Identity, Linear, Module
from ..tensor import Tensor

_EPS = 1e-12  # keeps the norm of an all-zero feature vector (a dead ReLU layer) away from 0


class Activations:
    """Records the output of each named submodule (a name from ``model.named_modules()``)
    on every forward pass: ``activations[name]`` is the latest one. ``remove()`` unhooks."""

    def __init__(self, model, names):
        modules = dict(model.named_modules())
        unknown = [name for name in names if name not in modules]
        if unknown:
            raise ValueError(f"no submodule named {unknown[0]!r}; the model has {list(modules)}")
        self.outputs = {}
        self._handles = [modules[name].register_forward_hook(self._recorder(name)) for name in names]

    def _recorder(self, name):
        def hook(module, args, output):
            self.outputs[name] = output
        return hook

    def __getitem__(self, name):
        if name not in self.outputs:
            raise KeyError(f"no activation recorded for {name!r} yet: run a forward pass first")
        return self.outputs[name]

    def remove(self):
        for handle in self._handles:
            handle.remove()


def _unit_rows(x):
    return x / ((x * x).sum(axis=1, keepdims=True) + _EPS).sqrt()


class HintLoss(Module):
    """FitNets hint loss (or Patient KD's with ``normalize=True``) from student features of width
    ``student_features`` to teacher features of width ``teacher_features``; the regressor is a
    learned ``Linear`` when the widths differ, the identity when they are equal."""

    def __init__(self, student_features, teacher_features, normalize=False):
        super().__init__()
        self.student_features, self.teacher_features = student_features, teacher_features
        self.normalize = normalize
        same = student_features == teacher_features
        self.regressor = Identity() if same else Linear(student_features, teacher_features)

    def forward(self, student, teacher):
        for name, x, width in (("student", student, self.student_features),
                               ("teacher", teacher, self.teacher_features)):
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} features must be a Tensor, got {type(x).__name__}")
            if x.ndim != 2 or x.shape[1] != width:
                raise ValueError(f"{name} features of shape {x.shape} do not fit (N, {width})")
        guided, hint = self.regressor(student), teacher.detach()
        if not self.normalize:
            return F.mse_loss(guided, hint)
        return ((_unit_rows(guided) - _unit_rows(hint)) ** 2).sum(axis=1).mean()

    def extra_repr(self):
        return f"{self.student_features} -> {self.teacher_features}, normalize={self.normalize}"
