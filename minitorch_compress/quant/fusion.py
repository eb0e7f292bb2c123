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
"""
import copy

import numpy as np

from .. import nn
from .intrinsic import ConvReLU2d, LinearReLU


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
    w = layer.weight.data.astype(np.float64)
    scale = bn.weight.data.astype(np.float64) if bn.affine else np.ones(bn.num_features)
    scale = scale / np.sqrt(bn.running_var.data.astype(np.float64) + bn.eps)
    shift = bn.bias.data.astype(np.float64) if bn.affine else np.zeros(bn.num_features)
    bias = layer.bias.data.astype(np.float64) if layer.bias is not None else np.zeros(len(w))
    fused.weight = nn.Parameter((w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(layer.weight.dtype))
    fused.bias = nn.Parameter(((bias - bn.running_mean.data) * scale + shift).astype(layer.weight.dtype))
    return fused


def _fuse_bn(is_qat, layer, bn):
    if is_qat:
        raise ValueError("QAT fusion with BatchNorm (ConvBn2d) is not supported; fuse in eval mode, or "
                         "train without BatchNorm")
    return fuse_conv_bn_eval(layer, bn)


DEFAULT_OP_LIST_TO_FUSER_METHOD = {
    (nn.Linear, nn.ReLU): lambda is_qat, linear, relu: LinearReLU(linear, relu),
    (nn.Conv2d, nn.ReLU): lambda is_qat, conv, relu: ConvReLU2d(conv, relu),
    (nn.Conv2d, nn.BatchNorm2d): _fuse_bn,
    (nn.Linear, nn.BatchNorm1d): _fuse_bn,
    (nn.Conv2d, nn.BatchNorm2d, nn.ReLU): lambda is_qat, conv, bn, relu: ConvReLU2d(_fuse_bn(is_qat, conv, bn), relu),
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
        for name, module in zip(group, fuser_func(mod_list, False)):
            _set_module(model, name, module)
    return model
