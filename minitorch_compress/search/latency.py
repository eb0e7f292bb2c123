"""Predicting a network's latency from a table of its layers' latencies.

Searching over thousands of candidate networks cannot time each one; the layers they are built
from are few. ``LatencyTable.measure`` times every leaf module of a network at the input shape it
sees there (``metrics.latency``, best of repeats) and stores it under a key naming the layer's
type, its configuration and that shape; ``predict`` sums the table's entries over a network's leaf
modules (a layer not in the table is an error that names it). Elementwise work outside modules
(a residual add, the concatenation in a fire module) is not counted; compare predictions with
measured whole-network latency. ``measure_space`` times every layer any architecture of an
``ArchSpace`` can contain, so that ``predict`` answers for all of them.

A table is measured on one CPU. The course commits one (measured once by a script) so that a
search finds the same network on every machine; re-measure on yours and search again.
"""
import json

import numpy as np

from ..files import write_text_atomic
from ..metrics import latency
from ..nn import Module, Sequential
from ..tensor import Tensor, no_grad
from .nas import head_layers, stage_layers, stem_layers

_CONFIG = ("in_features", "out_features", "in_channels", "out_channels", "kernel_size", "stride", "padding",
           "dilation", "groups", "num_features", "output_size", "start_dim")


def layer_key(module, input_shape):
    """``Type(config)@shape``, e.g. ``Conv2d(in_channels=8,out_channels=16,...)@(1,8,14,14)``."""
    config = ",".join(f"{name}={getattr(module, name)}" for name in _CONFIG if hasattr(module, name))
    return f"{type(module).__name__}({config})@{tuple(int(d) for d in input_shape)}"


def _leaf_inputs(model, input_shape):
    """[(module, input shape)] for every leaf module, in the order a forward pass calls them."""
    calls, handles = [], []
    for module in model.modules():
        if not any(True for _ in module.children()):
            handles.append(module.register_forward_hook(
                lambda m, args, out: calls.append((m, tuple(args[0].shape)))))
    try:
        with no_grad():
            model.eval()(Tensor(np.zeros(input_shape, np.float32)))
    finally:
        for handle in handles:
            handle.remove()
    return calls


def time_layer(module, input_shape, repeat=20):
    """Seconds of one forward pass of ``module`` on zeros of ``input_shape``: the best of ``repeat``
    runs, the one least disturbed by other processes (time whole networks the same way to compare)."""
    x = Tensor(np.zeros(input_shape, np.float32))
    with no_grad():
        return latency(module, x, repeat=repeat).best


class LatencyTable:
    def __init__(self, entries=None):
        self.entries = dict(entries or {})

    def measure(self, model, input_shape, timer=time_layer):
        """Time each leaf layer of ``model`` not yet in the table (``timer(module, shape)`` -> seconds)."""
        if not isinstance(model, Module):
            raise TypeError(f"measure takes a Module, got {type(model).__name__}")
        for module, shape in _leaf_inputs(model, input_shape):
            key = layer_key(module, shape)
            if key not in self.entries:
                self.entries[key] = float(timer(module, shape))
        return self

    def measure_space(self, space, input_shape, classes=10, timer=time_layer):
        """Time every layer of every architecture in ``space`` (an ``ArchSpace``) for images of
        ``input_shape`` (C, H, W): the stem; each stage option at every (width, resolution) the stages
        before it can leave; the head after every depth the space allows."""
        channels, height, width = input_shape
        self.measure(Sequential(*stem_layers(channels, space.stem)), (1, channels, height, width), timer)
        states = {(space.stem, height, width)}
        for depth in range(1, max(space.depths) + 1):
            reached = set()
            for c, h, w in sorted(states):
                for stage in space.stage_options():
                    block = Sequential(*stage_layers(stage, c))
                    self.measure(block, (1, c, h, w), timer)
                    with no_grad():
                        out = block.eval()(Tensor(np.zeros((1, c, h, w), np.float32))).shape
                    reached.add(tuple(int(d) for d in out[1:]))
            states = reached
            if depth in space.depths:
                for c, h, w in sorted(states):
                    self.measure(Sequential(*head_layers(c, classes)), (1, c, h, w), timer)
        return self

    def predict(self, model, input_shape):
        """Predicted seconds of one forward pass: the sum over the leaf layers."""
        total = 0.0
        for module, shape in _leaf_inputs(model, input_shape):
            key = layer_key(module, shape)
            if key not in self.entries:
                raise KeyError(f"no latency for {key}: measure a network with this layer first")
            total += self.entries[key]
        return total

    def save(self, path):
        write_text_atomic(path, json.dumps(self.entries, indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path):
        with open(path) as f:
            entries = json.load(f)   # data only: nothing in the file is executed
        if not isinstance(entries, dict) or not all(isinstance(v, (int, float)) for v in entries.values()):
            raise ValueError(f"{path} is not a latency table (a JSON object of layer keys to seconds)")
        return cls(entries)

    def __len__(self):
        return len(self.entries)
