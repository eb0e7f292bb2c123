"""The knowledge-distillation loss of Hinton, Vinyals & Dean (2015), "Distilling the Knowledge
in a Neural Network" (arXiv:1503.02531).

The teacher's logits z_t, softened by a temperature T, give soft targets p_t = softmax(z_t / T);
the student learns to match them with its own softened distribution p_s = softmax(z_s / T):

    kd_loss = alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * cross_entropy(z_s, target)

KL is the batch mean of sum_i p_t,i (log p_t,i - log p_s,i). The gradient of the soft term
with respect to z_s scales as 1/T^2, so the T^2 factor keeps the two terms' gradients of
comparable size when T changes (Hinton et al., section 2).
"""

from .. import functional as F
from ..tensor import Tensor
from ..validation import check_number


def check_temperature(temperature):
    check_number("temperature", temperature, 0, low_open=True)


def check_alpha(alpha):
    check_number("alpha", alpha, 0, 1)


def soft_target_loss(student_logits, teacher_logits, temperature):
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), the batch mean: the soft term of ``kd_loss``.

    The teacher's logits are constants (detached): only the student learns.
    """
    for name, logits in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if not isinstance(logits, Tensor):
            raise TypeError(f"{name} must be a Tensor, got {type(logits).__name__}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits shape {student_logits.shape} and "
                         f"teacher logits shape {teacher_logits.shape} differ")
    check_temperature(temperature)
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    p_teacher = F.softmax(teacher_logits.detach() / temperature, dim=1)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature ** 2


def kd_loss(student_logits, teacher_logits, target, temperature, alpha):
    """alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * cross_entropy(student, target)."""
    check_alpha(alpha)
    soft = soft_target_loss(student_logits, teacher_logits, temperature)
    return soft * alpha + F.cross_entropy(student_logits, target) * (1 - alpha)
