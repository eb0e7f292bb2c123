"""Sensitivity analysis: how much does each layer tolerate being pruned on its own?

For every layer and sparsity, a copy of the model has only that layer pruned and is evaluated
(Han et al., 2015, Fig. 5; Li et al., 2017). Layers whose accuracy holds up can take a larger
share of a global budget; the steep ones (often the first and the classifier) are the ones to
exclude or prune lightly.
"""
import copy

from ..metrics import Table
from .methods import custom_from_mask
from .scope import compute_masks, prunable_layers


def sensitivity_scan(model, layers, sparsities, eval_fn, criterion=None, granularity=None):
    """Table of ``(layer, sparsity, metric)``: ``eval_fn(pruned copy)`` with one layer pruned at a time.

    ``layers`` is a layer name, a list of names, or None for every prunable layer. ``model`` is
    not changed.
    """
    names = list(prunable_layers(model)) if layers is None else [layers] if isinstance(layers, str) else list(layers)
    sparsities = list(sparsities)
    if not names or not sparsities:
        raise ValueError(f"sensitivity_scan needs layers and sparsities, got {names} and {sparsities}")
    rows = []
    for name in names:
        for sparsity in sparsities:
            mask = compute_masks(model, {name: sparsity}, criterion, granularity)[name]
            pruned = copy.deepcopy(model)
            custom_from_mask(dict(pruned.named_modules())[name], "weight", mask)
            rows.append((name, sparsity, float(eval_fn(pruned))))
    return Table(["layer", "sparsity", "metric"], rows, {"sparsity": "{:.0%}"})


def plot_sensitivity(table, ax=None, ylabel="accuracy"):
    """One line per layer: the metric against the sparsity of that layer alone."""
    import matplotlib.pyplot as plt
    ax = plt.gca() if ax is None else ax
    for name in dict.fromkeys(table.column("layer")):
        points = [(r.sparsity, r.metric) for r in table if r.layer == name]
        ax.plot(*zip(*points), marker="o", label=f"layer {name}")
    ax.set_xlabel("sparsity of the layer")
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax
