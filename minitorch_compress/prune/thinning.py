"""Physical thinning: cut pruned neurons and filters out of a ``Sequential``, leaving a smaller dense model.

A mask does not make a model faster: the zeros are still multiplied. But when a whole neuron
(a row of a Linear weight) or filter (of a Conv2d) is gone, it can be removed together with the
inputs of the next layer that read it, and the result is an ordinary, smaller dense model that
computes the same function.

Take a hidden unit j between weight layers A and B (with only activations, dropout, max-pooling
or ``Flatten`` between them):

- if B does not read it (B's weights on j are all 0), it goes;
- if A's row j is 0, the unit outputs the same value c_j = act(b_j) for every input: it goes and
  B's bias absorbs it, b_B += c_j * (sum of B's weights on j). A Conv2d B with padding sees c_j
  only inside the image, so there only units with c_j = 0 go.

Removing units can empty further rows and columns (a unit only read by a removed unit), so this
repeats until nothing changes. The first layer's inputs and the last layer's outputs stay.

A model with BatchNorm or residual blocks is thinned by channel groups instead (``dependencies.py``):
a channel goes when every member of its group (the convolutions that write it, its BatchNorms)
has all-zero weights and bias on it, as ``prune_channels`` leaves it. Such a channel is 0
everywhere, so dropping it, with the columns of every layer that reads it, changes no output.
"""
import copy

import numpy as np

from ..blocks import BasicBlock, InvertedResidual
from ..nn import (BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Identity, Linear, MaxPool2d, Parameter, ReLU,
                  Sequential, Sigmoid, Tanh)
from ..tensor import Tensor, no_grad
from .dependencies import channel_groups, pruned_channels
from .methods import pruned_parameters, pruned_tensor, remove

ELEMENTWISE = (ReLU, Sigmoid, Tanh, Identity, Dropout)   # map a constant to a constant
SHAPE_ONLY = (MaxPool2d, Flatten)                        # keep a constant channel constant


class _Layer:
    """A Linear or Conv2d of the model, as arrays being cut down."""

    def __init__(self, index, module):
        self.index, self.module = index, module
        self.weight = pruned_tensor(module, "weight").copy()
        self.bias = None if module.bias is None else pruned_tensor(module, "bias").copy()

    @property
    def n_out(self):
        return self.weight.shape[0]


def thin(model):
    """A new ``Sequential`` without the removable units of ``model`` (see the module docstring).

    ``model`` is not changed; the copy carries no pruning re-parametrisation (its weights are the
    masked values). Its outputs equal ``model``'s up to float rounding. A model with BatchNorm or
    residual blocks is thinned by channel groups (module docstring).
    """
    if any(isinstance(m, (BatchNorm1d, BatchNorm2d, BasicBlock, InvertedResidual)) for m in model.modules()):
        return _thin_channel_groups(model)
    if not isinstance(model, Sequential):
        raise TypeError(f"thin works on an nn.Sequential, got {type(model).__name__}")
    children = list(model)
    layers = [_Layer(i, m) for i, m in enumerate(children) if isinstance(m, (Linear, Conv2d))]
    grouped = [layer.index for layer in layers if isinstance(layer.module, Conv2d)
               and (layer.module.groups != 1 or layer.module.dilation != (1, 1))]
    if grouped:
        raise ValueError(f"thin supports Conv2d layers with groups=1 and dilation=1; layers {grouped} are not")
    pairs = []
    for a, b in zip(layers, layers[1:]):
        between = children[a.index + 1:b.index]
        for m in between:
            if not isinstance(m, ELEMENTWISE + SHAPE_ONLY):
                raise ValueError(f"cannot thin through a {type(m).__name__} between layers {a.index} and {b.index}; "
                                 f"supported: {[t.__name__ for t in ELEMENTWISE + SHAPE_ONLY]}")
        if isinstance(a.module, Linear) and isinstance(b.module, Conv2d):
            raise ValueError(f"cannot thin from Linear layer {a.index} into Conv2d layer {b.index}")
        pairs.append((a, b, [m for m in between if isinstance(m, ELEMENTWISE)]))

    while any([_thin_pair(a, b, acts) for a, b, acts in pairs]):   # a list: every pair, every pass
        pass

    thinned = copy.deepcopy(model)
    for _, module, name in pruned_parameters(thinned):
        remove(module, name)
    for layer in layers:
        module = thinned[layer.index]
        module.weight = Parameter(layer.weight)
        if layer.bias is not None:
            module.bias = Parameter(layer.bias)
        if isinstance(module, Linear):
            module.out_features, module.in_features = layer.weight.shape
        else:
            module.out_channels, module.in_channels = layer.weight.shape[:2]
    return thinned


def _thin_pair(a, b, activations):
    """Remove the removable units between layers ``a`` and ``b``; True if any went."""
    if b.weight.shape[1] % a.n_out:
        raise ValueError(f"layer {b.index} has {b.weight.shape[1]} inputs, not a multiple of the "
                         f"{a.n_out} outputs of layer {a.index}")
    # B's weights grouped by the unit of A they read: (out_B, n_out_A, inputs per unit)
    reads = b.weight.reshape(b.weight.shape[0], a.n_out, -1)
    unused = ~reads.any(axis=(0, 2))
    dead = ~a.weight.reshape(a.n_out, -1).any(axis=1)
    constant = _constant_outputs(a, activations)
    folds = reads.sum(axis=2) * constant                  # (out_B, n_out_A): what each unit adds to B
    padded = isinstance(b.module, Conv2d) and any(b.module.padding)
    can_fold = (constant == 0) | (b.bias is not None and not padded)
    drop = unused | (dead & can_fold)
    if not drop.any():
        return False
    if b.bias is not None:
        b.bias = (b.bias + folds[:, drop].sum(axis=1)).astype(b.bias.dtype)
    keep = ~drop
    a.weight, b.weight = a.weight[keep], reads[:, keep].reshape((b.weight.shape[0], -1) + b.weight.shape[2:])
    if a.bias is not None:
        a.bias = a.bias[keep]
    return True


def _constant_outputs(a, activations):
    """c_j: what unit j of ``a`` outputs (after the activations) when its weights are all 0."""
    c = Tensor(np.zeros(a.n_out, a.weight.dtype) if a.bias is None else a.bias)
    with no_grad():
        for m in activations:
            was_training = m.training
            c = m.eval()(c)
            m.train(was_training)
    return c.data


def _thin_channel_groups(model):
    """A copy of ``model`` without the channels that ``pruned_channels`` finds zero in every group."""
    cuts = [(group, ~pruned_channels(model, group)) for group in channel_groups(model) if not group.fixed]
    thinned = copy.deepcopy(model)
    for _, module, name in pruned_parameters(thinned):
        remove(module, name)
    modules = dict(thinned.named_modules())
    for group, keep in cuts:
        if keep.all():
            continue
        for name in group.producers + group.channelwise:
            _keep_outputs(modules[name], keep)
        for name in group.consumers:
            _keep_inputs(modules[name], np.repeat(keep, modules[name].weight.shape[1] // group.size))
    return thinned


def _keep_outputs(module, keep):
    """Cut ``module`` (Conv2d, Linear, depthwise Conv2d or BatchNorm) down to its channels ``keep``."""
    module.weight = Parameter(module.weight.data[keep])
    if module.bias is not None:
        module.bias = Parameter(module.bias.data[keep])
    n = int(keep.sum())
    if isinstance(module, Linear):
        module.out_features = n
    elif isinstance(module, Conv2d):
        module.out_channels = n
        if module.groups != 1:   # depthwise: one filter per channel
            module.in_channels = module.groups = n
    else:
        module.num_features = n
        if module.track_running_stats:
            module.running_mean = module.running_mean.data[keep]
            module.running_var = module.running_var.data[keep]


def _keep_inputs(module, columns):
    module.weight = Parameter(module.weight.data[:, columns])
    if isinstance(module, Linear):
        module.in_features = int(columns.sum())
    else:
        module.in_channels = int(columns.sum())
