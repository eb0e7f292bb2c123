"""Rewinding: putting a pruned network's surviving weights back to earlier values.

Frankle & Carbin (2019, "The Lottery Ticket Hypothesis", arXiv:1803.03635) reset the survivors
to their initial values theta_0; Frankle et al. (2020, "Linear Mode Connectivity and the Lottery
Ticket Hypothesis", arXiv:1912.05392) rewind to theta_k, the values after k training iterations,
which finds tickets where resetting to theta_0 does not. Rewinding sets, for every parameter,

    theta <- theta_k * m      (m = the pruning mask; m = 1 for unpruned parameters)

so pruned weights are 0 in ``<name>_orig`` as well as in the forward pass, and stay 0 through
retraining: the mask zeroes their gradient.
"""
import numpy as np

from ..nn import Module
from ..prune.methods import dense_parameters
from ..tensor import Tensor
from ..validation import check_int


def dense_state(model):
    """A copy of every parameter's values under its unpruned name (the weights to rewind to)."""
    if not isinstance(model, Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    return {name: p.data.copy() for name, p, _ in dense_parameters(model)}


def rewind(model, state):
    """Set every parameter of ``model`` to ``state`` (from ``dense_state``) times its pruning mask, in place."""
    if not isinstance(model, Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    params = {name: (p, mask) for name, p, mask in dense_parameters(model)}
    if set(params) != set(state):
        raise ValueError(f"rewind: the model's parameters {sorted(params)} differ from the state's {sorted(state)}")
    for name, (param, mask) in params.items():
        value = state[name].data if isinstance(state[name], Tensor) else np.asarray(state[name])
        if value.shape != param.shape:
            raise ValueError(f"rewind: {name!r} has shape {param.shape} in the model and {value.shape} in the state")
        np.copyto(param.data, value if mask is None else value * mask, casting="unsafe")


class RewindPoint:
    """A ``fit`` callback that records ``dense_state(model)`` after ``iteration`` optimizer steps
    (0: before training starts). ``state`` is None until then."""

    def __init__(self, iteration=0):
        self.iteration, self.state = check_int("rewind iteration", iteration, 0), None

    def on_train_begin(self, model):
        if self.iteration == 0:
            self.state = dense_state(model)

    def on_batch_end(self, model, step, loss):
        if step + 1 == self.iteration:
            self.state = dense_state(model)
