"""Where a model crosses from float to quantized and back.

``QuantStub`` and ``DeQuantStub`` (as in ``torch.ao.quantization``) mark the borders in a float
model and do nothing there. ``prepare`` gives the ``QuantStub`` an observer for the input's
range; ``convert`` replaces the stubs by ``Quantize`` (float -> QTensor with the observed scale
and zero point) and ``DeQuantize`` (QTensor -> float).
"""
import numpy as np

from ..kernels import quantize_checked
from ..nn import Module
from ..tensor import Tensor
from .observers import code_range
from .qtensor import DTYPES, QTensor, check_scale, check_zero_point, dtype_range


class _Stub(Module):
    def __init__(self, qconfig=None):
        super().__init__()
        if qconfig is not None:
            self.qconfig = qconfig

    def forward(self, x):
        return x


class QuantStub(_Stub):
    """Identity in the float model; becomes ``Quantize`` after ``convert``."""


class DeQuantStub(_Stub):
    """Identity in the float model; becomes ``DeQuantize`` after ``convert``."""


class OutputQParams:
    """Keeps the output ``scale`` and ``zero_point`` (float64 and int64 scalars) in the state dict, as
    PyTorch's ``Quantize`` and quantized layers do: calibration chose them. The range
    [quant_min, quant_max] and the dtype come with the module, as its qconfig set them."""

    def _save_to_state_dict(self, destination, prefix):
        super()._save_to_state_dict(destination, prefix)
        destination[prefix + "scale"] = Tensor(np.float64(self.scale))
        destination[prefix + "zero_point"] = Tensor(np.int64(self.zero_point))

    def _load_from_state_dict(self, state, prefix):
        load_rest = super()._load_from_state_dict(state, prefix)
        entries = self._state_entries(state, prefix)
        scale = float(check_scale(entries["scale"], prefix + "scale"))
        zero_point = int(check_zero_point(entries["zero_point"], self.quant_min, self.quant_max, prefix + "zero_point"))

        def load():
            load_rest()
            self.scale, self.zero_point = scale, zero_point
        return load


class Quantize(OutputQParams, Module):
    """Float Tensor -> QTensor with a fixed scale and zero point, clamped to [quant_min, quant_max].

    The range defaults to the dtype's (as ``torch.quantize_per_tensor``); a narrower one (from an
    observer with ``clamp_to_quant_range``, see ``observers.code_range``) keeps b-bit codes.
    """

    def __init__(self, scale, zero_point, dtype="quint8", quant_min=None, quant_max=None):
        super().__init__()
        lo, hi = dtype_range(dtype)
        self.quant_min = lo if quant_min is None else quant_min
        self.quant_max = hi if quant_max is None else quant_max
        self.scale = float(check_scale(scale).reshape(()))
        self.zero_point = int(check_zero_point(zero_point, self.quant_min, self.quant_max).reshape(()))
        self.dtype = dtype

    @classmethod
    def from_float(cls, stub):
        """From a prepared ``QuantStub``: its observer's scale and zero point, and ``code_range``."""
        observer = getattr(stub, "activation_post_process", None)
        if observer is None or not observer.calibrated:
            raise ValueError("the QuantStub has no calibrated observer: call prepare() (or prepare_qat()) and run "
                             "calibration data through the model before convert()")
        scale, zero_point = observer.calculate_qparams()
        return cls(scale.data, zero_point.data, observer.dtype, *code_range(observer))

    def forward(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"Quantize expects a float Tensor, got {type(x).__name__}")
        q = quantize_checked(x.data, self.scale, self.zero_point, self.quant_min, self.quant_max, DTYPES[self.dtype])
        return QTensor(q, self.scale, self.zero_point, self.dtype)

    def extra_repr(self):
        return f"scale={self.scale:.6g}, zero_point={self.zero_point}, dtype={self.dtype}"


class DeQuantize(Module):
    """QTensor -> float Tensor."""

    @classmethod
    def from_float(cls, stub):
        return cls()

    def forward(self, x):
        if not isinstance(x, QTensor):
            raise TypeError(f"DeQuantize expects a QTensor, got {type(x).__name__}")
        return x.dequantize()
