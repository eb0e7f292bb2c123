"""The eager-mode workflow, as ``torch.ao.quantization``: prepare, calibrate (or train), convert.

Post-training static quantization::

    model.qconfig = quant.default_qconfig
    prepared = quant.prepare(model)          # observers on the QuantStub and on each Linear's output
    for X, _ in calibration_loader:          # the observers record ranges
        prepared(X)
    qmodel = quant.convert(prepared)         # int8 layers with the observed scales

Quantization-aware training: ``quant.prepare_qat(model)`` (fake quantization of weights and
activations), train as usual, then ``quant.convert``. Dynamic quantization (weights only,
activation ranges per batch): ``quant.quantize_dynamic(model, {nn.Linear}, dtype="qint8")``.
``quantize`` and ``quantize_qat`` run a whole recipe given a calibration or training function.
Every function returns a new model and leaves its argument untouched unless ``inplace=True``.

Attention, as in PyTorch, stays float under ``quantize_dynamic(model, {nn.Linear})`` (its
``out_proj`` is a ``NonDynamicallyQuantizableLinear``); naming ``nn.MultiheadAttention`` in the spec
(``{nn.Linear, nn.MultiheadAttention}``) makes it a ``DynamicMultiheadAttention``, an extension.
"""
import copy

from .. import nn
from . import intrinsic, modules, qat
from .qconfig import default_dynamic_qconfig
from .stubs import DeQuantize, DeQuantStub, Quantize, QuantStub

DEFAULT_STATIC_QUANT_MODULE_MAPPINGS = {
    QuantStub: Quantize, DeQuantStub: DeQuantize, nn.Linear: modules.Linear, qat.Linear: modules.Linear,
    nn.Conv2d: modules.Conv2d, qat.Conv2d: modules.Conv2d, nn.ReLU: modules.ReLU,
    nn.MaxPool2d: modules.MaxPool2d, nn.Flatten: modules.Flatten,
    intrinsic.LinearReLU: modules.LinearReLU, intrinsic.ConvReLU2d: modules.ConvReLU2d,
    qat.ConvBn2d: modules.Conv2d, qat.ConvBnReLU2d: modules.ConvReLU2d,   # the BatchNorm folded (from_float)
}
DEFAULT_QAT_MODULE_MAPPINGS = {nn.Linear: qat.Linear, nn.Conv2d: qat.Conv2d, intrinsic.ConvBn2d: qat.ConvBn2d,
                               intrinsic.ConvBnReLU2d: qat.ConvBnReLU2d}
DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS = {nn.Linear: modules.DynamicLinear,
                                         nn.MultiheadAttention: modules.DynamicMultiheadAttention}
_OBSERVED = (QuantStub, nn.Linear, qat.Linear, nn.Conv2d, qat.Conv2d, qat.ConvBn2d, qat.ConvBnReLU2d)  # layers whose output scale convert needs


def _to_observe(module):
    """The modules ``prepare`` observes: QuantStubs, layers, and fused modules as a whole (not their insides)."""
    if type(module) in _OBSERVED or isinstance(module, intrinsic.FusedModule):
        return [module]
    return [m for child in module.children() for m in _to_observe(child)]


def _copy(model, inplace):
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    return model if inplace else copy.deepcopy(model)


def propagate_qconfig_(module, qconfig_dict=None, _parent=None, _prefix=""):
    """Give every submodule a ``qconfig`` attribute, in place.

    A module keeps its own ``qconfig`` if it has one (``None`` opts it out); otherwise it takes
    the entry for its name, else for its type, in ``qconfig_dict``, else its parent's.
    """
    qconfig_dict = qconfig_dict or {}
    qconfig = qconfig_dict.get(type(module), _parent)
    qconfig = qconfig_dict.get(_prefix, qconfig)
    qconfig = getattr(module, "qconfig", qconfig)
    module.qconfig = qconfig
    for name, child in module.named_children():
        propagate_qconfig_(child, qconfig_dict, qconfig, f"{_prefix}.{name}" if _prefix else name)


def _observer_forward_hook(module, args, output):
    """Runs the output through ``activation_post_process`` (an observer, or a fake quantizer in QAT)."""
    return module.activation_post_process(output)


def prepare(model, inplace=False):
    """Attach an output observer (``qconfig.activation()``) to each QuantStub, Linear and Conv2d with a qconfig;
    a fused module (``fuse_modules``) gets one observer, on its output after the ReLU."""
    model = _copy(model, inplace)
    propagate_qconfig_(model)
    targets = [m for m in _to_observe(model) if m.qconfig is not None]
    if not targets:
        raise ValueError("prepare found nothing to observe: set model.qconfig (e.g. quant.default_qconfig) "
                         "on a model with a QuantStub and Linear or Conv2d layers")
    for module in targets:
        if module.qconfig.activation is None:
            raise ValueError(f"{type(module).__name__} has a qconfig without an activation observer "
                             f"(a dynamic qconfig? use quantize_dynamic)")
        if "activation_post_process" not in dict(module.named_children()):
            module.activation_post_process = module.qconfig.activation()
            module.register_forward_hook(_observer_forward_hook)
    return model


def _swap(module, mapping, _done=None):
    """Replace, depth first, every child whose exact type is in ``mapping`` and that has a qconfig.

    A module registered twice (``TransformerEncoderLayer.linear1`` is also ``feed_forward[0]``) is
    converted once, and both places get the same quantized module."""
    done = {} if _done is None else _done
    swapped = 0
    for name, child in list(module.named_children()):
        if id(child) in done:
            setattr(module, name, done[id(child)])
        elif type(child) in mapping and getattr(child, "qconfig", None) is not None:
            done[id(child)] = mapping[type(child)].from_float(child)
            setattr(module, name, done[id(child)])
            swapped += 1
        else:
            swapped += _swap(child, mapping, done)
    return swapped


def prepare_qat(model, mapping=None, inplace=False):
    """Swap Linear and Conv2d layers for QAT layers (fake-quantized weights) and attach fake-quantizing
    output observers."""
    if not model.training:
        raise ValueError("prepare_qat expects a model in training mode; call model.train() first")
    model = _copy(model, inplace)
    propagate_qconfig_(model)
    _swap(model, DEFAULT_QAT_MODULE_MAPPINGS if mapping is None else mapping)
    return prepare(model, inplace=True)


def convert(module, mapping=None, inplace=False):
    """Replace prepared (or QAT) layers by their quantized versions, which compute in integers.

    A model that is itself such a layer (a bare ``nn.Linear``) is replaced as a whole.
    """
    module = _copy(module, inplace)
    mapping = DEFAULT_STATIC_QUANT_MODULE_MAPPINGS if mapping is None else mapping
    if type(module) in mapping and getattr(module, "qconfig", None) is not None:
        return mapping[type(module)].from_float(module)
    if not _swap(module, mapping):
        raise ValueError("convert found nothing to convert: set model.qconfig and call prepare() "
                         "(or prepare_qat()) and calibrate first")
    return module


def quantize_dynamic(model, qconfig_spec=None, dtype="qint8", mapping=None, inplace=False):
    """A copy of ``model`` whose Linear layers (or the types/names in ``qconfig_spec``) are dynamic int8 layers.

    ``qconfig_spec`` is a set of module types or names (each gets ``default_dynamic_qconfig``) or a
    dict from type or name to QConfig. The copy is put in eval mode; ``model`` is left untouched.
    """
    if dtype != "qint8":
        raise ValueError(f"quantize_dynamic supports dtype 'qint8', got {dtype!r}")
    if qconfig_spec is None:
        qconfig_spec = {nn.Linear}
    if isinstance(qconfig_spec, (set, frozenset, list, tuple)):
        qconfig_spec = dict.fromkeys(qconfig_spec, default_dynamic_qconfig)
    model = _copy(model, inplace)
    model.eval()
    propagate_qconfig_(model, qconfig_spec)
    return convert(model, DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS if mapping is None else mapping, inplace=True)


def quantize(model, run_fn, run_args=(), mapping=None, inplace=False):
    """Post-training static quantization in one call: prepare, ``run_fn(prepared, *run_args)``, convert."""
    model = _copy(model, inplace)
    model.eval()
    prepare(model, inplace=True)
    run_fn(model, *run_args)
    return convert(model, mapping, inplace=True)


def quantize_qat(model, run_fn, run_args=(), inplace=False):
    """Quantization-aware training in one call: prepare_qat, ``run_fn(prepared, *run_args)`` (train), convert."""
    model = _copy(model, inplace)
    model.train()
    prepare_qat(model, inplace=True)
    run_fn(model, *run_args)
    return convert(model, inplace=True)
