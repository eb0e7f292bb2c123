"""Knowledge distillation: a small student learns from a large teacher.

- ``kd_loss`` / ``soft_target_loss``: Hinton et al. (2015), temperature-softened targets.
- ``HintLoss`` and ``Activations``: intermediate-layer hints (FitNets, Patient KD).
- ``Distiller``: a frozen teacher and a trained student in the ordinary training loop.
- ``patient``: Patient KD (Sun et al. 2019): ``patience_loss``, the PKD-skip/last layer maps, ``PatientDistiller``.
"""
from .loss import kd_loss, soft_target_loss
from .hints import Activations, HintLoss
from .distiller import Distiller
from .patient import PatientDistiller, layer_names, patience_loss, pkd_last, pkd_skip, pool_hidden

__all__ = ["kd_loss", "soft_target_loss", "Activations", "HintLoss", "Distiller", "PatientDistiller", "patience_loss",
           "pkd_skip", "pkd_last", "layer_names", "pool_hidden"]
