"""The two controls that tell a winning ticket from any sparse network (Frankle & Carbin 2019, section 2).

- ``reinitialized``: the ticket's masks on a freshly initialised network. If the ticket's
  initial values did not matter, this would train as well as the ticket.
- ``random_masks``: the ticket's rewound weights under random masks with the same number of
  survivors in every layer. If the structure found by magnitude did not matter, this would.

``masks`` map layer names (as in ``named_modules()``) to 0/1 arrays shaped like the layer's weight.
"""
import numpy as np

from .. import prune
from ..tensor import Tensor
from .rewind import dense_state, rewind


def _array(mask):
    return mask.data if isinstance(mask, Tensor) else np.asarray(mask)


def _layers(model, masks):
    modules = dict(model.named_modules())
    unknown = [name for name in masks if name not in modules]
    if unknown:
        raise ValueError(f"masks name layers {unknown} that the model does not have")
    return [(modules[name], _array(mask)) for name, mask in masks.items()]


def apply_masks(model, masks):
    """Prune each named layer's weight with its mask (``prune.custom_from_mask``) and zero the
    pruned entries of ``weight_orig`` too. Returns ``model``."""
    for module, mask in _layers(model, masks):
        prune.custom_from_mask(module, "weight", mask)
    rewind(model, dense_state(model))
    return model


def reinitialized(make_model, masks):
    """A fresh network from ``make_model()`` (a new random initialisation) under ``masks``."""
    return apply_masks(make_model(), masks)


def random_masks(make_model, masks, state):
    """A network rewound to ``state`` under random masks keeping as many weights per layer as ``masks``."""
    model = make_model()
    for module, mask in _layers(model, masks):
        prune.random_unstructured(module, "weight", amount=int(mask.size - np.count_nonzero(mask)))
    rewind(model, state)
    return model
