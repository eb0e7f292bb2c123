"""``Distiller``: train a student against a frozen teacher with the ordinary training loop.

The distiller is a module whose forward runs the teacher (eval mode, no graph) and the
student on the same batch and returns the student's logits; its ``loss`` method is the
``loss_fn`` for ``mc.train.fit``:

    loss = alpha * T^2 * KL(p_teacher || p_student) + (1 - alpha) * cross_entropy + hint_weight * sum of hint losses

(Hinton et al. 2015; hints: Romero et al. 2015, Sun et al. 2019.) Each term is recorded per
training batch in ``history``, so a lesson can plot what the student is being pulled by.
"""
from .. import functional as F
from ..nn import Module, ModuleList
from ..tensor import no_grad
from ..validation import check_number
from .hints import Activations, HintLoss
from .loss import check_alpha, check_temperature, soft_target_loss


class Distiller(Module):
    """``hints`` is a sequence of ``(student_layer, teacher_layer, HintLoss)``, the layers named
    as in ``named_modules()``. The distiller's parameters are what is trained: the student's and
    the hint regressors'. Use::

        distiller = Distiller(student, teacher, temperature=4.0, alpha=0.9)
        fit(distiller, loader, SGD(distiller.parameters(), lr=0.1), loss_fn=distiller.loss)
    """

    def __init__(self, student, teacher, temperature=4.0, alpha=0.9, hints=(), hint_weight=1.0):
        super().__init__()
        check_temperature(temperature)
        check_alpha(alpha)
        check_number("hint_weight", hint_weight, 0)
        hints = list(hints)
        for hint in hints:
            if len(hint) != 3 or not isinstance(hint[2], HintLoss):
                raise TypeError(f"each hint must be (student_layer, teacher_layer, HintLoss), got {hint!r}")
        self.student = student
        # Not registered as a child: the teacher is neither trained nor saved with the student,
        # and train()/eval() on the distiller must not switch it out of eval mode.
        object.__setattr__(self, "teacher", teacher.eval())
        self.temperature, self.alpha, self.hint_weight = temperature, alpha, hint_weight
        self.hint_pairs = [(s, t) for s, t, _ in hints]
        self.hint_losses = ModuleList(loss for _, _, loss in hints)
        self._student_features = Activations(student, [s for s, _ in self.hint_pairs])
        self._teacher_features = Activations(teacher, [t for _, t in self.hint_pairs])
        self._teacher_logits = None
        self.history = {"soft": [], "hard": [], "hint": []}

    def forward(self, x):
        with no_grad():
            self._teacher_logits = self.teacher.eval()(x)
        return self.student(x)

    def loss(self, student_logits, target):
        """The combined loss for the batch of the latest forward; records its terms while training."""
        if self._teacher_logits is None or self._teacher_logits.shape != student_logits.shape:
            raise ValueError("Distiller.loss needs the logits of the distiller's own latest forward pass")
        soft = soft_target_loss(student_logits, self._teacher_logits, self.temperature)
        hard = F.cross_entropy(student_logits, target)
        total = soft * self.alpha + hard * (1 - self.alpha)
        hint_total = 0.0
        for (s, t), hint_loss in zip(self.hint_pairs, self.hint_losses):
            hint = hint_loss(self._student_features[s], self._teacher_features[t])
            total, hint_total = total + hint * self.hint_weight, hint_total + hint.item()
        if self.training:
            self.history["soft"].append(soft.item())
            self.history["hard"].append(hard.item())
            self.history["hint"].append(hint_total)
        return total

    def remove_hooks(self):
        """Detach the feature hooks from student and teacher once distillation is done."""
        self._student_features.remove()
        self._teacher_features.remove()
