"""Sensitivity analysis: how much does each layer tolerate being pruned on its own?

For every layer and sparsity, a copy of the model has only that layer pruned and is evaluated
(Han et al., 2015, Fig. 5; Li et al., 2017). Layers whose accuracy holds up can take a larger
share of a global budget; the steep ones (often the first and the classifier) are the ones to
exclude or prune lightly.
"""
import copy

from ..table import Table
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


def plot_sensitivity(table, ax=None, ylabel="accuracy (%)", scale=100):
    """One line per layer: the metric (times ``scale``) against the sparsity of that layer alone.

    The sparsity axis is spaced by -log10(1 - sparsity), so 90%, 99% and 99.9% stand evenly apart
    (where the interesting losses happen) instead of crowding at the right edge.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    ax = plt.gca() if ax is None else ax
    for name in dict.fromkeys(table.column("layer")):
        points = [(r.sparsity, r.metric * scale) for r in table if r.layer == name]
        ax.plot(*zip(*points), marker="o", label=f"layer {name}")
    floor = 1e-4   # sparsity 1 would be infinitely far: drawn at 99.99%
    ax.set_xscale("function", functions=(lambda s: -np.log10(np.maximum(1 - np.asarray(s), floor)),
                                         lambda y: 1 - 10.0 ** -np.asarray(y)))
    ticks = sorted(set(table.column("sparsity")))
    ax.set_xticks(ticks, [f"{s:.0%}" if s in (0, 1) or round(s, 2) == s else f"{s:.1%}" for s in ticks])
    ax.set_xlabel("sparsity of the layer (log-spaced: -log10(1 - s))")
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax
