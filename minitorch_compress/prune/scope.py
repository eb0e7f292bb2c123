"""Scope and budget: which layers are pruned, and how far.

``prune_model(model, sparsity, criterion, granularity, scope, exclude)`` prunes the ``weight`` of
every ``Linear`` and ``Conv2d`` in ``model`` (minus the ``exclude``\\ d names) so that a fraction
``sparsity`` of it is masked. ``sparsity`` is the total target, counting weights pruned before:
pruning to 0.5 and then to 0.8 leaves 80% of the weights masked, not 90%.

- ``scope="local"``: each layer is pruned to ``sparsity`` on its own; a dict
  ``{layer_name: sparsity}`` gives each listed layer its own budget (and leaves the others alone).
- ``scope="global"``: one ranking over the groups of all layers (group scores are means, so groups
  of different sizes compare), pruned lowest first until ``sparsity`` of all their weights is
  masked. Layers whose weights matter less lose more; for magnitude with element granularity this
  is ``global_unstructured`` with ``L1Unstructured`` (Blalock et al., 2020 find it beats local).

Masks are applied with ``custom_from_mask``, so the usual re-parametrisation (``weight_orig``,
``weight_mask``) results and masks compound: a weight pruned once stays pruned.
"""
from collections import OrderedDict

import numpy as np

from ..nn import Conv2d, Linear, Module
from ..validation import check_number
from .criteria import Criterion, Magnitude
from .granularity import NM, Element, Granularity, group_scores
from .methods import custom_from_mask, pruned_tensor

PRUNABLE = (Linear, Conv2d)
SCOPES = ("local", "global")


def prunable_layers(model, exclude=()):
    """The ``Linear`` and ``Conv2d`` modules of ``model`` by name, minus the names in ``exclude``."""
    if not isinstance(model, Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    layers = OrderedDict((n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE))
    unknown = [n for n in exclude if n not in layers]
    if unknown:
        raise ValueError(f"cannot exclude {unknown}: not prunable layers of the model; those are {list(layers)}")
    return OrderedDict((n, m) for n, m in layers.items() if n not in exclude)


def _alive(module):
    mask = dict(module.named_buffers(recurse=False)).get("weight_mask")
    return np.ones(module.weight.shape, dtype=bool) if mask is None else mask.data != 0


def check_sparsity(value, what="sparsity"):
    """A fraction of weights: a finite number in [0, 1] (``what`` names it in the error)."""
    check_number(what, value, 0, 1)


def compute_masks(model, sparsity, criterion=None, granularity=None, scope="local", exclude=()):
    """The boolean keep-masks ``prune_model`` would apply, by layer name (the model is not changed)."""
    criterion = Magnitude() if criterion is None else criterion
    granularity = Element() if granularity is None else granularity
    if not isinstance(criterion, Criterion):
        raise TypeError(f"criterion must be a prune.Criterion such as prune.Magnitude(), got {criterion!r}")
    if not isinstance(granularity, Granularity):
        raise TypeError(f"granularity must be a prune.Granularity such as prune.Element(), got {granularity!r}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")
    layers = prunable_layers(model, exclude)
    if not layers:
        raise ValueError(f"no Linear or Conv2d layers to prune in {type(model).__name__} (excluded: {exclude})")
    if isinstance(sparsity, dict):
        if scope == "global":
            raise ValueError("a per-layer sparsity dict is a local budget; use scope='local'")
        unknown = [n for n in sparsity if n not in layers]
        if unknown:
            raise ValueError(f"sparsity given for {unknown}, which are not prunable layers; those are {list(layers)}")
        targets = sparsity
    elif sparsity is None and not isinstance(granularity, NM):
        raise ValueError(f"sparsity is required with granularity {granularity!r}")
    else:
        targets = {name: sparsity for name in layers}
    for name, target in targets.items():
        if target is not None:
            check_sparsity(target, f"sparsity for layer {name!r}")

    if scope == "local":
        return OrderedDict((name, granularity.local_mask(criterion.scores(model, name), _alive(layers[name]), target))
                           for name, target in targets.items())
    if isinstance(granularity, NM):
        raise ValueError("N:M sparsity is a rule inside each group of m weights; use scope='local'")
    return _global_masks(model, layers, sparsity, criterion, granularity)


def _global_masks(model, layers, sparsity, criterion, granularity):
    ids, means, sizes = {}, [], []
    for name, module in layers.items():
        ids[name] = granularity.group_ids(module.weight.shape)
        m, s = group_scores(ids[name], criterion.scores(model, name), _alive(module))
        means.append(m)
        sizes.append(s)
    means, sizes = np.concatenate(means), np.concatenate(sizes)
    target = round(sparsity * sizes.sum())
    order = np.argsort(means, kind="stable")
    # the fewest lowest-ranked groups that together hold at least `target` weights
    n_groups = 0 if target == 0 else int(np.searchsorted(np.cumsum(sizes[order]), target)) + 1
    keep = np.ones(means.size, dtype=bool)
    keep[order[:n_groups]] = False
    masks, start = OrderedDict(), 0
    for name, group in ids.items():
        count = int(group.max()) + 1
        masks[name] = keep[start:start + count][group]
        start += count
    return masks


def prune_model(model, sparsity, criterion=None, granularity=None, scope="local", exclude=()):
    """Prune the weights of ``model``'s Linear/Conv2d layers to ``sparsity`` (see the module docstring).

    ``criterion`` defaults to ``Magnitude()``, ``granularity`` to ``Element()``. Returns ``model``.
    """
    masks = compute_masks(model, sparsity, criterion, granularity, scope, exclude)
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        custom_from_mask(modules[name], "weight", mask)
    return model


def weight_sparsity(model, exclude=()):
    """The fraction of zero weights over ``model``'s prunable layers (as the forward pass sees them)."""
    weights = [pruned_tensor(m, "weight") for m in prunable_layers(model, exclude).values()]
    total = sum(w.size for w in weights)
    if total == 0:
        raise ValueError("the model has no Linear or Conv2d weights")
    return sum(int((w == 0).sum()) for w in weights) / total
