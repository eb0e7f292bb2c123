"""Pruning criteria: how important is each weight?

A criterion scores a parameter elementwise, higher meaning "keep": ``criterion.scores(module, name)``
returns an array shaped like ``module.<name>``. Granularities (``granularity.py``) turn element
scores into scores of neurons, filters, blocks or N:M groups, and scopes (``scope.py``) rank them
per layer or over the whole network, so every criterion works with every granularity and scope.

- ``Magnitude(p)``: |w|^p (Han et al., 2015). Summed over a group this ranks groups by their L_p norm.
- ``Random()``: uniform noise, the baseline every criterion must beat.
- ``GradientMagnitude()``: |w * dL/dw| summed over batches, the first-order Taylor estimate of how
  much the loss changes when w is set to 0 (Molchanov et al., 2017; 2019).
- ``Movement()``: -sum_t w_t * dL/dw_t over fine-tuning steps: weights moving away from zero score
  high, whatever their size (Sanh et al., 2020).

The last two accumulate while training: pass them to a ``Pruner`` (which forwards
``on_after_backward``) or call ``accumulate(model, loader)``. Weights are read as the forward pass
sees them (``orig * mask`` once pruned), so a pruned weight scores as a zero weight.
"""
from abc import ABC, abstractmethod

import numpy as np

from .. import functional as F
from ..random import get_rng
from .methods import pruned_tensor


class Criterion(ABC):
    @abstractmethod
    def scores(self, module, name):
        """One score per element of ``module.<name>``; higher means more important."""


class Magnitude(Criterion):
    """|w|^p. With ``p=1`` and element granularity this is ``l1_unstructured``'s ranking."""

    def __init__(self, p=1):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < np.inf:
            raise ValueError(f"p={p!r} must be a positive finite number")
        self.p = p

    def scores(self, module, name):
        return np.abs(pruned_tensor(module, name)) ** self.p

    def __repr__(self):
        return f"Magnitude(p={self.p})"


class Random(Criterion):
    """Independent U[0, 1) scores from the package generator (``mc.manual_seed``)."""

    def scores(self, module, name):
        return get_rng().random(pruned_tensor(module, name).shape)

    def __repr__(self):
        return "Random()"


class AccumulatedCriterion(Criterion):
    """A score summed over training steps from each weight and its gradient.

    Sums are kept per parameter object, which pruning preserves (``<name>_orig`` is the same
    ``Parameter``), so scores survive a pruning step in the middle of training.
    """

    def __init__(self):
        self._sums = {}

    @abstractmethod
    def term(self, w, g):
        """This step's contribution for weights ``w`` (masked) and gradients ``g`` of the loss."""

    def on_after_backward(self, model, step):
        for module in model.modules():
            masks = dict(module.named_buffers(recurse=False))
            for pname, param in module.named_parameters(recurse=False):
                if param.grad is None:
                    continue
                pruned = pname.endswith("_orig") and pname[:-5] + "_mask" in masks
                name = pname[:-5] if pruned else pname
                contribution = self.term(pruned_tensor(module, name), param.grad)
                total = self._sums.get(id(param))
                self._sums[id(param)] = contribution if total is None else total + contribution

    def accumulate(self, model, loader, loss_fn=F.cross_entropy, batches=None):
        """Add the terms of up to ``batches`` batches of ``loader`` (forward and backward, no update)."""
        was_training = model.training
        model.train()
        for step, (X, y) in enumerate(loader):
            if batches is not None and step >= batches:
                break
            model.zero_grad()
            loss_fn(model(X), y).backward()
            self.on_after_backward(model, step)
        model.zero_grad()
        model.train(was_training)
        return self

    def reset(self):
        self._sums.clear()

    def scores(self, module, name):
        params = dict(module.named_parameters(recurse=False))
        param = params.get(name + "_orig", params.get(name))
        if param is None:
            raise ValueError(f"{type(module).__name__} has no parameter {name!r}")
        if id(param) not in self._sums:
            raise ValueError(f"{type(self).__name__} has no gradients for parameter {name!r} of "
                             f"{type(module).__name__}: call accumulate(model, loader) or train with a Pruner first")
        return self._sums[id(param)]

    def __repr__(self):
        return f"{type(self).__name__}()"


class GradientMagnitude(AccumulatedCriterion):
    """sum over batches of |w * dL/dw| (first-order Taylor saliency; Molchanov et al., 2017)."""

    def term(self, w, g):
        return np.abs(w * g)


class Movement(AccumulatedCriterion):
    """S = -sum over steps of w * dL/dw (movement pruning; Sanh et al., 2020).

    Gradient descent moves w by -lr * dL/dw, so S > 0 when a weight is growing in magnitude.
    """

    def term(self, w, g):
        return -(w * g)
