"""Channel pruning across dependencies: which channels must be removed together.

Removing output channel c of a convolution is not a change to one layer. The BatchNorm after it
normalises channel c with its own gamma_c, beta_c and running statistics; the next convolution
reads channel c through its input weights W[:, c]; and when the channel reaches a residual add
(``out = f(x) + x``), channel c of the block's output is the sum of channel c of both branches,
so the layer that wrote x's channel c, the block's last convolution and every later reader of
the sum share it. These layers form one **channel group** (the dependency graph of
``torch-pruning``, Fang et al. 2023, in a small form):

- *producers* write the channels (rows of a Conv2d or Linear weight, and their biases);
- *channelwise* layers act on each channel alone (BatchNorm, a depthwise convolution);
- *consumers* read them (input columns of the next Conv2d or Linear; after ``Flatten``, each
  channel is a run of H*W consecutive columns).

``channel_groups(model)`` follows a model made of ``Sequential``, ``blocks.BasicBlock``,
``blocks.InvertedResidual`` and ``blocks.DepthwiseSeparable`` (and the layers in ``PASS_THROUGH``)
and returns its groups; anything else (a concatenation, a Sigmoid, whose f(0) != 0) is refused
with an error naming it. A residual
add merges the groups of its two branches. The model's input and output channels are fixed.

``prune_channels(model, amount, criterion)`` ranks each group's channels by the summed criterion
of its producers' filters (``Magnitude(2)``: the squared L2 norm of the channel across the
group) and masks the lowest ``round(amount * size)`` of every group in every member: producer
rows and biases, BatchNorm gamma and beta, consumer columns. A pruned channel is then exactly 0
everywhere (gamma = beta = 0 makes the BatchNorm output 0 whatever its statistics, and every
layer between members maps 0 to 0), so ``thin`` can cut it out and the smaller dense model
computes the same outputs. Masks are ``custom_from_mask``: they compound and survive fine-tuning.
"""
import numpy as np

from ..blocks import BasicBlock, DepthwiseSeparable, InvertedResidual
from ..nn import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, GELU, Identity,
                  Linear, MaxPool2d, ReLU, ReLU6, Sequential, Tanh)
from .criteria import Criterion, Magnitude
from .methods import custom_from_mask, pruned_tensor
from .scope import check_sparsity

PASS_THROUGH = (ReLU, ReLU6, GELU, Tanh, Identity, Dropout, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d)  # keep 0 at 0
CHANNELWISE = (BatchNorm1d, BatchNorm2d)
CHAINS = {DepthwiseSeparable: ("depthwise", "bn1", "relu", "pointwise", "bn2", "relu")}   # blocks that are a chain


class ChannelGroup:
    """Channels that must be pruned together: ``producers``, ``channelwise`` and ``consumers`` are
    lists of submodule names; ``fixed`` groups (the model's input and output) are never pruned."""

    def __init__(self, size, fixed=False):
        self.size, self.fixed = size, fixed
        self.producers, self.channelwise, self.consumers = [], [], []

    @property
    def name(self):
        """The first producer's name (``"input"`` for the model's input channels)."""
        return self.producers[0] if self.producers else "input"

    def scores(self, model, criterion=None):
        """One score per channel: ``criterion`` summed over each producer's filter, summed over
        producers; channels that every producer has already lost score -inf (masks only shrink)."""
        criterion = Magnitude(2) if criterion is None else criterion
        if not isinstance(criterion, Criterion):
            raise TypeError(f"criterion must be a prune.Criterion such as prune.Magnitude(2), got {criterion!r}")
        modules = dict(model.named_modules())
        total, alive = np.zeros(self.size), np.zeros(self.size, dtype=bool)
        for name in self.producers:
            total += criterion.scores(model, name).reshape(self.size, -1).sum(axis=1)
            alive |= _weight_mask(modules[name]).reshape(self.size, -1).any(axis=1)
        return np.where(alive, total, -np.inf)

    def __repr__(self):
        return (f"ChannelGroup({self.name!r}, size={self.size}, producers={self.producers}, "
                f"channelwise={self.channelwise}, consumers={self.consumers}{', fixed' if self.fixed else ''})")


def _weight_mask(module):
    mask = dict(module.named_buffers(recurse=False)).get("weight_mask")
    return np.ones(module.weight.shape, dtype=bool) if mask is None else mask.data != 0


class _Tracer:
    """Walks the model, keeping groups in a union-find (a residual add merges two groups)."""

    def __init__(self):
        self.parent = {}

    def new(self, size, fixed=False):
        group = ChannelGroup(size, fixed)
        self.parent[group] = group
        return group

    def find(self, group):
        while self.parent[group] is not group:
            group = self.parent[group]
        return group

    def merge(self, a, b, where):
        """One group from ``a`` and ``b`` (named after ``a``, the earlier)."""
        a, b = self.find(a), self.find(b)
        if a is b:
            return a
        if a.size is not None and b.size is not None and a.size != b.size:
            raise ValueError(f"the residual add in {where!r} adds {a.size} channels to {b.size}")
        a.size = a.size if a.size is not None else b.size
        a.fixed |= b.fixed
        for part in ("producers", "channelwise", "consumers"):
            getattr(a, part).extend(getattr(b, part))
        self.parent[b] = a
        return a

    def join(self, group, n, name, part):
        """Add ``name``, which sees ``n`` channels of ``group``, to the group's ``part`` list; the group."""
        group = self.find(group)
        if group.size is None:       # the model's input: its channel count is what the first layer reads
            group.size = n
        elif group.size != n:
            raise ValueError(f"{name!r} reads {n} channels from a group of {group.size}")
        getattr(group, part).append(name)
        return group

    def walk(self, name, module, source):
        """The (group, flattened) that ``module`` outputs, given what it reads."""
        group, flat = source
        kind = type(module)
        if kind is Sequential:
            for child, sub in module.named_children():
                source = self.walk(f"{name}.{child}" if name else child, sub, source)
            return source
        if kind in CHAINS:
            for child in CHAINS[kind]:
                source = self.walk(f"{name}.{child}", getattr(module, child), source)
            return source
        if kind is BasicBlock:
            out = source
            for child in ("conv1", "bn1", "relu", "conv2", "bn2"):
                out = self.walk(f"{name}.{child}", getattr(module, child), out)
            shortcut = self.walk(f"{name}.shortcut", module.shortcut, source)
            return self.merge(shortcut[0], out[0], name), False
        if kind is InvertedResidual:
            out = self.walk(f"{name}.layers", module.layers, source)
            return (self.merge(group, out[0], name), False) if module.use_residual else out
        if kind in PASS_THROUGH:
            return source
        if kind is Flatten:
            if module.start_dim != 1:
                raise ValueError(f"channel pruning follows Flatten(start_dim=1) only; {name!r} has "
                                 f"start_dim={module.start_dim}")
            return group, True
        if flat and kind is not Linear:
            raise ValueError(f"{kind.__name__} {name!r} after a Flatten: channel pruning cannot follow it")
        if kind in CHANNELWISE:
            if not module.affine:
                raise ValueError(f"{name!r} has affine=False: a pruned channel needs gamma = beta = 0")
            return self.join(group, module.num_features, name, "channelwise"), False
        if kind is Conv2d and module.groups != 1:
            if not module.groups == module.in_channels == module.out_channels:
                raise ValueError(f"channel pruning supports groups=1 and depthwise convolutions (groups = in = out "
                                 f"channels); {name!r} has groups={module.groups}, {module.in_channels} in, "
                                 f"{module.out_channels} out")
            return self.join(group, module.in_channels, name, "channelwise"), False
        if kind in (Conv2d, Linear):
            n_in = module.in_channels if kind is Conv2d else module.in_features
            if flat:
                size = self.find(group).size
                if size is None or n_in % size:
                    raise ValueError(f"{name!r} has {n_in} inputs, not a multiple of the {size} flattened channels")
                n_in = size
            self.join(group, n_in, name, "consumers")
            out = self.new(module.out_channels if kind is Conv2d else module.out_features)
            out.producers.append(name)
            return out, False
        supported = ["Sequential", "BasicBlock", "InvertedResidual", "Flatten", "Conv2d", "Linear"] + \
            [t.__name__ for t in CHAINS] + \
            [t.__name__ for t in CHANNELWISE + PASS_THROUGH]
        raise ValueError(f"channel pruning cannot follow channels through {kind.__name__} {name!r}; "
                         f"supported: {', '.join(supported)}")


def channel_groups(model):
    """The channel groups of ``model`` in the order their first producer appears (see the module
    docstring); the model's input and output groups are marked ``fixed``."""
    tracer = _Tracer()
    source = tracer.new(None, fixed=True)
    out, _ = tracer.walk("", model, (source, False))
    tracer.find(out).fixed = True
    groups = []
    for group in tracer.parent:
        root = tracer.find(group)
        if root not in groups:
            groups.append(root)
    return groups


def _group_masks(model, group, keep):
    """{(module name, parameter name): mask} keeping the channels ``keep`` of ``group`` in every member."""
    modules = dict(model.named_modules())
    masks = {}
    for name in group.producers + group.channelwise:
        module = modules[name]
        if isinstance(module, (Linear, Conv2d)):
            shape = module.weight.shape
            masks[name, "weight"] = np.broadcast_to(keep.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
        else:
            masks[name, "weight"] = keep
        if module.bias is not None:
            masks[name, "bias"] = keep
    for name in group.consumers:
        shape = modules[name].weight.shape
        columns = np.repeat(keep, shape[1] // group.size)       # a flattened channel: H*W columns
        masks[name, "weight"] = np.broadcast_to(columns.reshape((1, -1) + (1,) * (len(shape) - 2)), shape)
    return masks


def prune_channels(model, amount, criterion=None, exclude=()):
    """Mask the ``round(amount * size)`` lowest-scoring channels of every prunable group of ``model``
    in all the group's members (module docstring). ``amount`` is a fraction for every group, or a
    dict ``{group name: fraction}``; ``exclude`` lists group names to leave alone; ``criterion``
    defaults to ``Magnitude(2)`` (L2 norm). Returns ``model``."""
    groups = {g.name: g for g in channel_groups(model) if not g.fixed}
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    amounts = amount if isinstance(amount, dict) else {name: amount for name in groups if name not in exclude}
    unknown = [n for n in list(amounts) + list(exclude) if n not in groups]
    if unknown:
        raise ValueError(f"{unknown} are not prunable channel groups of the model; those are {list(groups)}")
    modules = dict(model.named_modules())
    for name, fraction in amounts.items():
        check_sparsity(fraction, f"amount for group {name!r}")
        group = groups[name]
        keep = np.ones(group.size, dtype=bool)
        keep[np.argsort(group.scores(model, criterion), kind="stable")[:round(fraction * group.size)]] = False
        for (module, parameter), mask in _group_masks(model, group, keep).items():
            custom_from_mask(modules[module], parameter, mask)
    return model


def pruned_channels(model, group):
    """Boolean per channel of ``group``: True where every member's weights and biases are 0, so the
    channel is 0 everywhere and ``thin`` may remove it."""
    modules = dict(model.named_modules())
    zero = np.ones(group.size, dtype=bool)
    for name in group.producers + group.channelwise:
        module = modules[name]
        for parameter in ("weight", "bias"):
            if getattr(module, parameter, None) is not None:
                zero &= ~pruned_tensor(module, parameter).reshape(group.size, -1).any(axis=1)
    return zero
