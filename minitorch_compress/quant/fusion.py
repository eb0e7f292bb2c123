"""``fuse_modules``, as ``torch.ao.quantization.fuse_modules``: replace a layer and the ReLU after it
by one fused module, before ``prepare``.

Without fusion, ``prepare`` observes the layer's output *before* the ReLU, so its quantization
range spans negative values that the ReLU then sets to 0: about half the integer levels are
spent on them, and the codes after the ReLU use only the upper part of the range. Fused, the
observer sees the values after the ReLU, and the output codes fill the range. Usage, with the
names of the submodules (``named_modules``) to fuse, one list per group::

    fused = quant.fuse_modules(model, [["1", "2"]])   # model[1] Linear, model[2] ReLU
    # fused[1] is LinearReLU(Linear, ReLU); fused[2] is nn.Identity()

Supported groups: (Linear, ReLU), (Conv2d, ReLU), and in eval mode (Conv2d, BatchNorm2d),
(Conv2d, BatchNorm2d, ReLU) and (Linear, BatchNorm1d), whose BatchNorm is folded into the layer
(``fuse_conv_bn_eval``). As in PyTorch, the forward pre-hooks of the first module and the forward
hooks of the last move to the fused module.

For quantization-aware training, ``fuse_modules_qat`` (a model in training mode) keeps the
BatchNorm: (Conv2d, BatchNorm2d(, ReLU)) become ``intrinsic.ConvBn2d`` (``ConvBnReLU2d``), which
``prepare_qat`` turns into ``qat.ConvBn2d``: the BatchNorm keeps learning from batch statistics
while the weight is fake-quantized as it will be once folded, and ``convert`` folds it
(``fuse_conv_bn_weights``) into the int8 convolution.
"""
import copy

import numpy as np

from .. import nn
from .intrinsic import ConvBn2d, ConvBnReLU2d, ConvReLU2d, LinearReLU


def fuse_conv_bn_weights(weight, bias, running_mean, running_var, eps, gamma, beta):
    """(W', b') as Parameters: a convolution's (or Linear's) ``weight`` and ``bias`` (or None) with a
    BatchNorm's running statistics and affine ``gamma``, ``beta`` (None: 1 and 0) folded in, as
    ``torch.nn.utils.fusion.fuse_conv_bn_weights``; formula in ``fuse_conv_bn_eval``. Computed in float64."""
    w = weight.data.astype(np.float64)
    n = len(w)
    scale = np.ones(n) if gamma is None else gamma.data.astype(np.float64)
    scale = scale / np.sqrt(running_var.data.astype(np.float64) + eps)
    shift = np.zeros(n) if beta is None else beta.data.astype(np.float64)
    b = np.zeros(n) if bias is None else bias.data.astype(np.float64)
    return (nn.Parameter((w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(weight.dtype)),
            nn.Parameter(((b - running_mean.data) * scale + shift).astype(weight.dtype)))


def fuse_conv_bn_eval(layer, bn):
    """A copy of ``layer`` (Conv2d or Linear) with the eval-mode BatchNorm ``bn`` after it folded in
    (Jacob et al. 2018, section 3.2), as ``torch.nn.utils.fusion.fuse_conv_bn_eval``: with
    s = gamma / sqrt(running_var + eps) per output channel,

        W' = s W,    b' = s (b - running_mean) + beta,

    so that layer'(x) = bn(layer(x)) with the running statistics. Computed in float64."""
    if layer.training or bn.training:
        raise ValueError("fusing a BatchNorm needs eval mode (model.eval()): training uses batch statistics")
    if not bn.track_running_stats:
        raise ValueError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    fused = copy.deepcopy(layer)
    fused.weight, fused.bias = fuse_conv_bn_weights(layer.weight, layer.bias, bn.running_mean, bn.running_var, bn.eps,
                                                    bn.weight, bn.bias)
    return fused


def _check_qat_bn(layer, bn):
    if layer.training != bn.training:
        raise ValueError("the layer and its BatchNorm must be in the same mode (train or eval)")
    if not (bn.affine and bn.track_running_stats):
        raise ValueError("QAT fusion needs a BatchNorm with affine=True and track_running_stats=True")
    if isinstance(layer, nn.Linear):
        raise ValueError("QAT fusion of Linear and BatchNorm1d is not supported; fuse it in eval mode "
                         "(quant.fuse_modules) or train without that BatchNorm")


def fuse_conv_bn(is_qat, layer, bn):
    """QAT: ``intrinsic.ConvBn2d(conv, bn)``, the BatchNorm kept; else the eval-mode folding."""
    if is_qat:
        _check_qat_bn(layer, bn)
        return ConvBn2d(layer, bn)
    return fuse_conv_bn_eval(layer, bn)


def fuse_conv_bn_relu(is_qat, conv, bn, relu):
    """QAT: ``intrinsic.ConvBnReLU2d``; else the folded convolution and the ReLU as ``intrinsic.ConvReLU2d``."""
    if is_qat:
        _check_qat_bn(conv, bn)
        return ConvBnReLU2d(conv, bn, relu)
    return ConvReLU2d(fuse_conv_bn_eval(conv, bn), relu)


DEFAULT_OP_LIST_TO_FUSER_METHOD = {
    (nn.Linear, nn.ReLU): lambda is_qat, linear, relu: LinearReLU(linear, relu),
    (nn.Conv2d, nn.ReLU): lambda is_qat, conv, relu: ConvReLU2d(conv, relu),
    (nn.Conv2d, nn.BatchNorm2d): fuse_conv_bn,
    (nn.Linear, nn.BatchNorm1d): fuse_conv_bn,
    (nn.Conv2d, nn.BatchNorm2d, nn.ReLU): fuse_conv_bn_relu,
}


def fuse_known_modules(mod_list, is_qat=False):
    """The modules of one group, fused: ``[fused, nn.Identity(), ...]``, as long as ``mod_list``."""
    types = tuple(type(m) for m in mod_list)
    fuser = DEFAULT_OP_LIST_TO_FUSER_METHOD.get(types)
    if fuser is None:
        supported = "; ".join(", ".join(t.__name__ for t in key) for key in DEFAULT_OP_LIST_TO_FUSER_METHOD)
        raise ValueError(f"cannot fuse modules ({', '.join(t.__name__ for t in types)}); supported: {supported}")
    fused = fuser(is_qat, *mod_list)
    for hook in mod_list[0]._forward_pre_hooks.values():
        fused.register_forward_pre_hook(hook)
    mod_list[0]._forward_pre_hooks.clear()
    for hook in mod_list[-1]._forward_hooks.values():
        fused.register_forward_hook(hook)
    mod_list[-1]._forward_hooks.clear()
    identities = []
    for _ in mod_list[1:]:
        identity = nn.Identity()
        identity.training = mod_list[0].training
        identities.append(identity)
    return [fused] + identities


def _get_module(model, name):
    module = model
    for token in name.split("."):
        children = dict(module.named_children())
        if token not in children:
            raise ValueError(f"no submodule named {name!r} in the model (names as in named_modules(): "
                             f"{[n for n, _ in model.named_modules() if n][:12]})")
        module = children[token]
    return module


def _set_module(model, name, module):
    *path, last = name.split(".")
    parent = _get_module(model, ".".join(path)) if path else model
    setattr(parent, last, module)


def fuse_modules(model, modules_to_fuse, inplace=False, fuser_func=fuse_known_modules):
    """Fuse each group of submodules named in ``modules_to_fuse`` (a list of lists of names, or one
    list of names); returns the fused model, a copy unless ``inplace=True``.

    The first module of a group becomes the fused module and the others ``nn.Identity``, so the
    model's structure and names stay the same.
    """
    return _fuse_modules(model, modules_to_fuse, False, inplace, fuser_func)


def fuse_modules_qat(model, modules_to_fuse, inplace=False, fuser_func=fuse_known_modules):
    """``fuse_modules`` for quantization-aware training (``torch.ao.quantization.fuse_modules_qat``):
    a Conv2d's BatchNorm is kept, in ``intrinsic.ConvBn2d`` / ``ConvBnReLU2d``, for ``prepare_qat``."""
    return _fuse_modules(model, modules_to_fuse, True, inplace, fuser_func)


def _fuse_modules(model, modules_to_fuse, is_qat, inplace, fuser_func):
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    if not isinstance(modules_to_fuse, (list, tuple)):
        raise TypeError(f"modules_to_fuse must be a list of submodule names, or a list of such lists, "
                        f"got {modules_to_fuse!r}")
    if not modules_to_fuse:
        raise ValueError("modules_to_fuse is empty: give a non-empty list of lists of submodule names")
    groups = [modules_to_fuse] if all(isinstance(n, str) for n in modules_to_fuse) else modules_to_fuse
    for group in groups:
        if not isinstance(group, (list, tuple)) or not all(isinstance(n, str) for n in group):
            raise TypeError(f"each group to fuse must be a list of submodule names (str), got {group!r}")
    model = model if inplace else copy.deepcopy(model)
    for group in groups:
        mod_list = [_get_module(model, name) for name in group]
        for name, module in zip(group, fuser_func(mod_list, is_qat)):
            _set_module(model, name, module)
    return model
