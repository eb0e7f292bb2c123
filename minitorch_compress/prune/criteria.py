"""Pruning criteria: how important is each weight?

A criterion scores a parameter elementwise, higher meaning "keep": ``criterion.scores(model, layer)``
returns an array shaped like the weight of ``model``'s submodule named ``layer`` (``""`` is the
model itself; ``name=`` picks another parameter). Granularities (``granularity.py``) turn element
scores into scores of neurons, filters, blocks or N:M groups, and scopes (``scope.py``) rank them
per layer or over the whole network, so every criterion works with every granularity and scope.

- ``Magnitude(p)``: |w|^p (Han et al., 2015). Summed over a group this ranks groups by their L_p norm.
- ``Random()``: uniform noise, the baseline every criterion must beat.
- ``GradientMagnitude()``: |w * dL/dw| summed over batches, the first-order Taylor estimate of how
  much the loss changes when w is set to 0 (Molchanov et al., 2017; 2019).
- ``Movement()``: -sum_t w_t * dL/dw_t over fine-tuning steps: weights moving away from zero score
  high, whatever their size (Sanh et al., 2020).

The last two accumulate while training: pass them to a ``Pruner`` (which forwards
``on_after_backward``) or call ``accumulate(model, loader)``. Their sums are kept by parameter
name, so they apply to copies of the model too, and survive pruning. Weights are read as the
forward pass sees them (``orig * mask`` once pruned), so a pruned weight scores as a zero weight.
"""
from abc import ABC, abstractmethod

import numpy as np

from .. import functional as F
from ..random import get_rng
from ..validation import check_number
from .methods import dense_parameters, pruned_tensor


def _module(model, layer):
    modules = dict(model.named_modules())
    if layer not in modules:
        raise ValueError(f"the model has no submodule {layer!r}; it has {list(modules)}")
    return modules[layer]


class Criterion(ABC):
    @abstractmethod
    def scores(self, model, layer="", name="weight"):
        """One score per element of parameter ``name`` of submodule ``layer``; higher means more important."""


class Magnitude(Criterion):
    """|w|^p. With ``p=1`` and element granularity this is ``l1_unstructured``'s ranking."""

    def __init__(self, p=1):
        check_number("p", p, 0, low_open=True)
        self.p = p

    def scores(self, model, layer="", name="weight"):
        return np.abs(pruned_tensor(_module(model, layer), name)) ** self.p

    def __repr__(self):
        return f"Magnitude(p={self.p})"


class Random(Criterion):
    """Independent U[0, 1) scores from the package generator (``mc.manual_seed``)."""

    def scores(self, model, layer="", name="weight"):
        return get_rng().random(pruned_tensor(_module(model, layer), name).shape)

    def __repr__(self):
        return "Random()"


class AccumulatedCriterion(Criterion):
    """A score summed over training steps from each weight and its gradient, kept by parameter name."""

    def __init__(self):
        self._sums = {}

    @abstractmethod
    def term(self, w, g):
        """This step's contribution for weights ``w`` (masked) and gradients ``g`` of the loss."""

    def on_after_backward(self, model, step):
        for key, param, mask in dense_parameters(model):
            if param.grad is None:
                continue
            contribution = self.term(param.data if mask is None else param.data * mask, param.grad)
            self._sums[key] = contribution if key not in self._sums else self._sums[key] + contribution

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

    def scores(self, model, layer="", name="weight"):
        key = f"{layer}.{name}" if layer else name
        if key not in self._sums:
            raise ValueError(f"{type(self).__name__} has no gradients for parameter {key!r}: "
                             "call accumulate(model, loader) or train with a Pruner first")
        return self._sums[key]

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
