"""Measuring a model: parameters, nonzeros, FLOPs, bytes and latency.

The definitions are ShrinkBench's (Blalock et al., 2020, "What is the state of neural network
pruning?"), so that numbers compare across papers:

- compression ratio = total parameters / nonzero parameters (weights and biases);
- FLOPs = multiply-adds per example of the ``Linear`` and ``Conv2d`` layers, from the shapes the
  model actually sees: in * out for a Linear, (in / groups) * out * kh * kw * H_out * W_out for a
  Conv2d (a depthwise convolution does kh * kw per output value).
  A layer whose weight has nonzero fraction d does d of its dense FLOPs;
- theoretical speedup = dense FLOPs / nonzero FLOPs (what perfect sparse kernels would give; the
  measured speedup, from ``latency``, is usually far less).

Every function takes any ``nn.Module``. A pruned parameter counts as ``<name>_orig * <name>_mask``
under its own name (the mask buffer is training bookkeeping, not part of the model's size).
"""
from collections import OrderedDict, namedtuple
import statistics
import time

import numpy as np

from .nn import Conv2d, Linear, Module
from .prune.methods import dense_parameters
from .sparse import csr_bytes
from .table import Table  # noqa: F401  (metrics.Table, as the lessons print their results)
from .tensor import Tensor, no_grad
from .validation import check_non_negative, check_positive



def _check_model(model):
    if not isinstance(model, Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")


def parameters(model):
    """Every parameter as the forward pass uses it, by dotted name (pruned ones as orig * mask)."""
    _check_model(model)
    return OrderedDict((name, param.data if mask is None else param.data * mask)
                       for name, param, mask in dense_parameters(model))


def count_parameters(model):
    return sum(int(v.size) for v in parameters(model).values())


def count_nonzero(model):
    return sum(int(np.count_nonzero(v)) for v in parameters(model).values())


def compression_ratio(model):
    """Total parameters / nonzero parameters (1.0 for a dense model)."""
    nonzero = count_nonzero(model)
    if nonzero == 0:
        raise ValueError("the model has no nonzero parameters; its compression ratio is undefined")
    return count_parameters(model) / nonzero


def sparsity_table(model):
    """Per parameter: shape, count, nonzeros and sparsity; then a ``total`` row."""
    rows, total, nonzero = [], 0, 0
    for name, value in parameters(model).items():
        nnz = int(np.count_nonzero(value))
        rows.append((name, "x".join(map(str, value.shape)), int(value.size), nnz, 1 - nnz / max(value.size, 1)))
        total, nonzero = total + value.size, nonzero + nnz
    rows.append(("total", "", int(total), nonzero, 1 - nonzero / max(total, 1)))
    return Table(["parameter", "shape", "params", "nonzero", "sparsity"], rows, {"sparsity": "{:.1%}"})


def layer_flops(model, x):
    """Per ``Linear``/``Conv2d`` layer: input and output shapes seen on ``x``, dense and nonzero FLOPs.

    FLOPs are multiply-adds per example; the model runs once on ``x`` (eval mode, no graph).
    """
    _check_model(model)
    rows, handles = [], []

    def record(name):
        def hook(module, args, output):
            weight = module.weight.data
            if isinstance(module, Conv2d):
                positions = int(np.prod(output.shape[2:]))             # H_out * W_out
            else:
                positions = int(np.prod(args[0].shape[1:-1]))          # 1 for (N, in) inputs
            rows.append((name or type(module).__name__, type(module).__name__,
                         tuple(args[0].shape[1:]), tuple(output.shape[1:]),
                         weight.size * positions, int(np.count_nonzero(weight)) * positions))
        return hook

    for name, module in model.named_modules():
        if isinstance(module, (Linear, Conv2d)):
            handles.append(module.register_forward_hook(record(name)))
    was_training = model.training
    try:
        with no_grad():
            model.eval()(x if isinstance(x, Tensor) else Tensor(np.asarray(x, np.float32)))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return Table(["layer", "type", "input", "output", "dense_flops", "nonzero_flops"], rows)


def flops(model, x):
    """(dense FLOPs, nonzero FLOPs) per example, summed over the layers."""
    table = layer_flops(model, x)
    return sum(table.column("dense_flops")), sum(table.column("nonzero_flops"))


def theoretical_speedup(model, x):
    """Dense FLOPs / nonzero FLOPs."""
    dense, nonzero = flops(model, x)
    if nonzero == 0:
        raise ValueError("the model's Linear/Conv2d layers have no nonzero weights; the speedup is undefined")
    return dense / nonzero


def model_size(model, format="dense"):
    """Bytes to store the parameters: ``"dense"`` arrays, or ``"csr"`` for every matrix.

    CSR stores each weight as a (rows, rest) matrix: its nonzero values, one int32 column index per
    value and rows + 1 int32 row pointers; vectors (biases) stay dense. For the size after
    physical thinning, measure the thinned model (``prune.thin(model)``).
    """
    if format not in ("dense", "csr"):
        raise ValueError(f"unknown format {format!r}; expected 'dense' or 'csr'")
    size = 0
    for value in parameters(model).values():
        if format == "csr" and value.ndim >= 2:
            size += csr_bytes(value != 0, 8 * value.itemsize)
        else:
            size += value.nbytes
    return size


Timing = namedtuple("Timing", ["median", "best", "repeat"])


def latency(fn, *inputs, repeat=20, warmup=3):
    """Wall-clock seconds of ``fn(*inputs)``: median and best of ``repeat`` runs after ``warmup``.

    A Module runs in eval mode without a graph. Time on a quiet machine and compare two models
    in the same run: absolute numbers depend on the machine and its load.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    check_positive(repeat=repeat)
    check_non_negative(warmup=warmup)
    was_training = fn.training if isinstance(fn, Module) else None
    if was_training is not None:
        fn.eval()
    times = []
    try:
        with no_grad():
            for i in range(warmup + repeat):
                start = time.perf_counter()
                fn(*inputs)
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        if was_training is not None:
            fn.train(was_training)
    return Timing(statistics.median(times), min(times), repeat)
