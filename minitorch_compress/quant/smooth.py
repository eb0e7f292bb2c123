"""SmoothQuant (Xiao, Lin, Seznec, Wu, Demouth & Han 2022, "SmoothQuant: Accurate and Efficient
Post-Training Quantization for Large Language Models", arXiv:2211.10438).

A few activation channels of a transformer can be far larger than the rest (outliers). With one
scale per tensor, int8 activations then spend their range on those channels and round the others
away. Weights are easy to quantize, so SmoothQuant migrates the difficulty: for a linear layer
Y = X W^T fed by a LayerNorm, it divides each input channel j by s_j and multiplies column j of W
by s_j, which leaves Y unchanged, (X diag(s)^-1)(W diag(s))^T = X W^T (their eq. 3), with

    s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)        (eq. 4; alpha = 0.5 by default)

where max|X_j| is channel j's absolute maximum over calibration data and max|W_j| the largest
|weight| in column j over every linear layer fed by that LayerNorm. The division is folded into
the LayerNorm (weight and bias divided by s), so nothing is added to the network. As the
authors' ``smooth_ln_fcs`` (github.com/mit-han-lab/smoothquant, smoothquant/smooth.py), the
weight maxima and the scales are clamped below at 1e-5.

``get_act_scales`` collects max|X_j| for the inputs of every ``nn.Linear`` and ``nn.MultiheadAttention``
(its query) over a loader; ``smooth_ln_fcs`` smooths one LayerNorm and the layers it feeds;
``smooth_model`` does it for every pre-norm ``TransformerEncoderLayer`` (norm1 -> self_attn's
in_proj, norm2 -> linear1), the authors' ``smooth_lm`` for our encoder.
"""
from collections import OrderedDict

import numpy as np

from ..nn import LayerNorm, Linear, Module, MultiheadAttention, Parameter, TransformerEncoderLayer
from ..tensor import Tensor, no_grad
from ..validation import check_number, is_int

_MIN = 1e-5


def _array(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def get_act_scales(model, loader, max_batches=None):
    """{name: max over the loader's batches and tokens of |x_j|, per input channel j} for the input of
    every ``nn.Linear`` and ``nn.MultiheadAttention`` (its query) in ``model``; batches are (x, y) or x."""
    if not isinstance(model, Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    if max_batches is not None and (not is_int(max_batches) or max_batches < 1):
        raise ValueError(f"max_batches must be a positive int or None, got {max_batches!r}")
    scales = OrderedDict()

    def recorder(name):
        def hook(module, args):
            x = np.abs(_array(args[0]))
            channel_max = x.reshape(-1, x.shape[-1]).max(axis=0).astype(np.float64)
            scales[name] = channel_max if name not in scales else np.maximum(scales[name], channel_max)
        return hook

    handles = [m.register_forward_pre_hook(recorder(name)) for name, m in model.named_modules()
               if isinstance(m, (Linear, MultiheadAttention))]
    was_training, batches = model.training, 0
    try:
        model.eval()
        with no_grad():
            for batch in loader:
                model(batch[0] if isinstance(batch, (tuple, list)) else batch)
                batches += 1
                if max_batches is not None and batches >= max_batches:
                    break
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if batches == 0:
        raise ValueError("get_act_scales got an empty loader")
    return scales


def _input_weight(layer):
    """The float weight whose input columns smoothing scales (TypeError for any other layer, a quantized one too)."""
    if isinstance(layer, MultiheadAttention):
        weight = getattr(layer, "in_proj_weight", None)    # a DynamicMultiheadAttention has none
    else:
        weight = layer.weight if isinstance(layer, Linear) else None
    if not isinstance(weight, Parameter):
        raise TypeError(f"smooth_ln_fcs smooths float nn.Linear and nn.MultiheadAttention layers (smooth before "
                        f"quantizing), got {type(layer).__name__}")
    return weight


def smoothing_scales(act_scales, weights, alpha=0.5):
    """s_j = max|X_j|^alpha / max|W_j|^(1 - alpha), with max|W_j| over the columns j of all ``weights``
    ((out, in) arrays or Tensors) and both it and s clamped below at 1e-5, as the authors' code."""
    check_number("alpha", alpha, 0, 1)
    act = np.asarray(_array(act_scales), np.float64)
    weights = [_array(w) for w in weights]
    if not weights or any(w.ndim != 2 or w.shape[0] == 0 for w in weights):
        raise ValueError(f"smoothing needs (out, in) weights with at least one row, got shapes "
                         f"{[w.shape for w in weights]}")
    w_max = np.max([np.abs(w).max(axis=0) for w in weights], axis=0)
    if act.shape != w_max.shape:
        raise ValueError(f"activation scales of shape {act.shape} do not fit weights with {w_max.shape[0]} "
                         f"input columns")
    bad = np.flatnonzero(~np.isfinite(act) | (act < 0))
    if bad.size:
        raise ValueError(f"activation scales (shape {act.shape}) must be finite maxima of |x|, >= 0: entry "
                         f"{bad[0]} is {act[bad[0]]}")
    w_max = np.maximum(w_max.astype(np.float64), _MIN)
    return np.maximum(act ** alpha / w_max ** (1 - alpha), _MIN)


def smooth_ln_fcs(ln, fcs, act_scales, alpha=0.5):
    """Fold s (``smoothing_scales``) into ``ln`` (weight and bias divided by s) and the layers ``fcs``
    it feeds (``nn.Linear`` weight columns, or a ``MultiheadAttention``'s in_proj_weight columns,
    multiplied by s), in place. Returns s."""
    if not isinstance(ln, LayerNorm):
        raise TypeError(f"smooth_ln_fcs expects an nn.LayerNorm, got {type(ln).__name__}")
    if ln.weight is None or len(ln.normalized_shape) != 1:
        raise ValueError("smooth_ln_fcs needs a LayerNorm over the last dimension with a weight")
    fcs = list(fcs) if isinstance(fcs, (list, tuple)) else [fcs]
    if not fcs:
        raise ValueError("smooth_ln_fcs needs at least one layer to smooth into")
    weights = [_input_weight(fc) for fc in fcs]
    for w in weights:
        if w.shape[1] != ln.weight.shape[0]:
            raise ValueError(f"a layer with {w.shape[1]} inputs is not fed by a LayerNorm of {ln.weight.shape[0]}")
    s = smoothing_scales(act_scales, weights, alpha)
    ln.weight.data[...] = ln.weight.data / s
    if ln.bias is not None:
        ln.bias.data[...] = ln.bias.data / s
    for w in weights:
        w.data[...] = w.data * s
    return s


def smooth_model(model, act_scales, alpha=0.5):
    """``smooth_ln_fcs`` on every pre-norm ``TransformerEncoderLayer`` of ``model``, in place: norm1
    into self_attn (query, key and value), norm2 into linear1, with the scales ``get_act_scales``
    recorded for self_attn and linear1 (an attention without heads is skipped). Returns ``model``.
    (A post-norm layer's norms do not feed its linears directly: ValueError. A quantized layer has
    no float weight to scale: TypeError, smooth before quantizing.)"""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, TransformerEncoderLayer)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no TransformerEncoderLayer to smooth")
    for name, layer in layers:   # every layer checked before any is changed
        if not layer.norm_first:
            raise ValueError(f"{name} is post-norm (norm_first=False): its LayerNorms do not feed its linears")
        for fc in (layer.self_attn, layer.linear1):
            if not isinstance(getattr(fc, "in_proj_weight", getattr(fc, "weight", None)), Parameter):
                raise TypeError(f"{name}'s {type(fc).__name__} is quantized: smooth before quantizing")
        prefix = f"{name}." if name else ""
        for key in (prefix + "self_attn", prefix + "linear1"):
            if key not in act_scales:
                raise ValueError(f"no activation scales for {key!r}: run get_act_scales on this model")
    for name, layer in layers:
        prefix = f"{name}." if name else ""
        if layer.self_attn.num_heads:   # an attention whose heads were all pruned uses no input
            smooth_ln_fcs(layer.norm1, [layer.self_attn], act_scales[prefix + "self_attn"], alpha)
        smooth_ln_fcs(layer.norm2, [layer.linear1], act_scales[prefix + "linear1"], alpha)
    return model
