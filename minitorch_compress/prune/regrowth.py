"""Regrowth: keep the sparsity, move the connections (Sparse Evolutionary Training).

SET (Mocanu et al., 2018) trains a sparse network from the start and rewires it as it goes: every
``every`` steps, in each pruned weight, it drops the fraction ``zeta`` of the active weights
(mask 1) with the smallest magnitude and grows as many new connections at random among the
positions that were inactive. New weights start at 0, so a rewiring step changes the function only
through what was dropped; training then decides whether a new connection earns its place. The
number of active weights, and so the sparsity, never changes.

(RigL, Evci et al., 2020, grows where the dense gradient is largest; with the ``orig * mask``
re-parametrisation pruned positions get no gradient, so random growth is the honest choice here.)
"""
import numpy as np

from ..random import get_rng
from ..validation import check_number, check_positive
from .methods import pruned_parameters


class SET:
    """A ``fit`` callback rewiring every pruned parameter of the model (see the module docstring).

    ``until_step`` (exclusive) stops the rewiring so the last connections can settle.
    """

    def __init__(self, zeta=0.3, every=100, until_step=None):
        check_number("zeta", zeta, 0, 1)
        check_positive(every=every)
        self.zeta, self.every, self.until_step = zeta, every, until_step
        self.moved = 0   # connections moved so far

    def on_batch_end(self, model, step, loss):
        if (step + 1) % self.every == 0 and (self.until_step is None or step < self.until_step):
            self.rewire(model)

    def rewire(self, model):
        """One SET step on every pruned parameter of ``model``."""
        pruned = pruned_parameters(model)
        if not pruned:
            raise ValueError("SET needs a pruned model: prune it first (e.g. prune_model or l1_unstructured)")
        for _, module, name in pruned:
            mask = getattr(module, name + "_mask").data
            orig = getattr(module, name + "_orig").data
            active, inactive = np.flatnonzero(mask), np.flatnonzero(mask == 0)
            k = min(round(self.zeta * active.size), inactive.size)
            if k == 0:
                continue
            drop = active[np.argsort(np.abs(orig.reshape(-1)[active]), kind="stable")[:k]]
            grow = get_rng().choice(inactive, size=k, replace=False)
            mask[np.unravel_index(drop, mask.shape)] = 0
            mask[np.unravel_index(grow, mask.shape)] = 1
            orig[np.unravel_index(grow, orig.shape)] = 0
            self.moved += k
