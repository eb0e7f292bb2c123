"""Knowledge distillation: a small student learns from a large teacher.

- ``kd_loss`` / ``soft_target_loss``: Hinton et al. (2015), temperature-softened targets.
- ``HintLoss`` and ``Activations``: intermediate-layer hints (FitNets, Patient KD).
- ``Distiller``: a frozen teacher and a trained student in the ordinary training loop.
"""
from .loss import kd_loss, soft_target_loss
from .hints import Activations, HintLoss
from .distiller import Distiller

__all__ = ["kd_loss", "soft_target_loss", "Activations", "HintLoss", "Distiller"]
