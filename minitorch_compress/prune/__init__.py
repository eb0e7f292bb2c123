"""Pruning: ``torch.nn.utils.prune``'s masks, plus the criteria, granularities, scopes, schedules,
regrowth and physical thinning that the course builds on them.

The PyTorch-compatible core (``methods.py``)::

    prune.l1_unstructured(layer, "weight", amount=0.5)
    prune.global_unstructured([(m1, "weight"), (m2, "weight")], pruning_method=prune.L1Unstructured, amount=0.8)
    prune.remove(layer, "weight")

The course's tools::

    prune.prune_model(model, 0.9, criterion=prune.Magnitude(), granularity=prune.Channel(0), scope="global")
    mc.train.fit(model, loader, opt, callbacks=[prune.Pruner(prune.AGP(0.0, 0.9, 0, 500, 50))])
    small = prune.thin(model)

Channel pruning that follows BatchNorms and residual adds (``dependencies.py``)::

    prune.prune_channels(cnn, 0.5, criterion=prune.Magnitude(2))   # whole channel groups
    small = prune.thin(cnn)                                          # a smaller dense CNN, same outputs

Attention heads (``heads.py``, Michel et al. 2019)::

    scores = prune.head_importance(model, val_loader)      # E |dL/dxi_h|, normalised per layer
    prune.mask_heads(model, scores, 0.5)                  # gate off the least important half, globally
    prune.remove_masked_heads(model)                      # remove them from the projections
"""
from .criteria import AccumulatedCriterion, Criterion, GradientMagnitude, Magnitude, Movement, Random
from .dependencies import ChannelGroup, channel_groups, prune_channels, pruned_channels
from .heads import (attention_modules, count_heads, head_importance, head_masks, mask_heads, prune_heads,
                    remove_masked_heads, set_head_masks)
from .granularity import NM, Block, Channel, Element, Granularity
from .methods import (
    BasePruningMethod, CustomFromMask, Identity, L1Unstructured, LnStructured, PruningContainer,
    RandomStructured, RandomUnstructured, custom_from_mask, global_unstructured, identity, is_pruned,
    l1_unstructured, ln_structured, pruned_parameters, pruned_tensor, random_structured,
    random_unstructured, remove, dense_parameters,
)
from .regrowth import SET
from .schedules import AGP, Iterative, OneShot, Pruner, Schedule
from .second_order import OBD, drop_one, hessian, hessian_diagonal, hessian_vector_product, obs_prune
from .scope import compute_masks, prunable_layers, prune_model, weight_sparsity
from .sensitivity import plot_sensitivity, sensitivity_scan
from .thinning import thin

__all__ = [
    "BasePruningMethod", "PruningContainer", "Identity", "RandomUnstructured", "L1Unstructured",
    "RandomStructured", "LnStructured", "CustomFromMask", "identity", "random_unstructured",
    "l1_unstructured", "random_structured", "ln_structured", "custom_from_mask", "global_unstructured",
    "remove", "is_pruned", "pruned_parameters", "pruned_tensor", "dense_parameters",
    "Criterion", "AccumulatedCriterion", "Magnitude", "Random", "GradientMagnitude", "Movement",
    "Granularity", "Element", "Channel", "Block", "NM",
    "prunable_layers", "compute_masks", "prune_model", "weight_sparsity",
    "ChannelGroup", "channel_groups", "prune_channels", "pruned_channels",
    "Schedule", "OneShot", "Iterative", "AGP", "Pruner", "SET", "thin",
    "sensitivity_scan", "plot_sensitivity",
    "attention_modules", "head_masks", "set_head_masks", "head_importance", "mask_heads", "prune_heads",
    "remove_masked_heads", "count_heads",
    "OBD", "obs_prune", "hessian", "hessian_diagonal", "hessian_vector_product", "drop_one",
]
