"""Quantized layers that compute in integers: what ``convert`` and ``quantize_dynamic`` put in a model.

As ``torch.ao.nn.quantized`` (static) and ``torch.ao.nn.quantized.dynamic``. Each layer keeps
its weight as int8 codes, packed once for the int8 kernel (``kernels.pack_int8_weight``). With
``x = s_x (q_x - z_x)`` and ``W = s_w (q_W - z_w)`` the product is one integer matrix product
(int8 x int8 -> int32, exact) and one float rescale per output (Jacob et al., 2018, eq. 7)::

    y = s_x s_w [ (q_x - z_x)(q_W - z_w)^T + q_b ],   q_b = round(b / (s_x s_w))  (int32, zero point 0)

A static layer then requantizes y to its output scale and zero point (fixed at calibration);
a dynamic layer returns y as float and picks s_x, z_x from each batch's min and max.
"""
import numpy as np

from .. import functional as F
from ..kernels import int8_linear_dequant, int8_linear_requant, pack_int8_weight
from ..nn import Module
from ..tensor import Tensor
from .observers import default_weight_observer
from .qtensor import DTYPES, QTensor, dtype_range, quantize_array

_INT32_RANGE = (-2 ** 31, 2 ** 31 - 1)
SMALL_SCALE_THRESHOLD = 6.1e-5


def quantize_weight(weight, observer):
    """The weight as a qint8 QTensor, with ``observer``'s parameters and range (PyTorch's ``_quantize_weight``).

    Codes are clamped to the observer's [quant_min, quant_max], so a 4-bit observer gives 4-bit
    codes (PyTorch clamps only to the dtype's range).
    """
    if observer.dtype != "qint8":
        raise ValueError(f"weights are quantized to qint8, the weight observer has dtype {observer.dtype}")
    w = weight.data
    scale, zero_point = (t.data for t in observer.calculate_qparams())
    lo, hi = observer.quant_min, observer.quant_max
    if observer.qscheme.startswith("per_channel"):
        axis = observer.ch_axis % w.ndim
        shape = [1] * w.ndim
        shape[axis] = -1
        q = quantize_array(w, scale.reshape(shape), zero_point.reshape(shape), lo, hi)
        return QTensor(q.astype(np.int8), scale.astype(np.float64), zero_point, "qint8", axis)
    q = quantize_array(w, scale[0], zero_point[0], lo, hi)
    return QTensor(q.astype(np.int8), float(scale[0]), int(zero_point[0]), "qint8")


def _weight_params(qweight):
    """(scales, zero points) of a quantized weight, per output channel or as scalars."""
    if qweight.qscheme() == "per_tensor_affine":
        return qweight.q_scale(), qweight.q_zero_point()
    if qweight.q_per_channel_axis() != 0:
        raise ValueError(f"per-channel weights must be quantized along the output axis 0, "
                         f"got axis {qweight.q_per_channel_axis()}")
    return qweight.q_per_channel_scales().data, qweight.q_per_channel_zero_points().data


class _PackedLinear(Module):
    """What both quantized Linears share: an int8 weight packed for the kernel, and a float bias."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        zeros = np.zeros((out_features, in_features), np.int8)
        self.set_weight_bias(QTensor(zeros, 1.0, 0, "qint8"), np.zeros(out_features, np.float32) if bias else None)
        self.weight_quant_range = dtype_range("qint8")  # the codes' range: how many bits they need

    def set_weight_bias(self, qweight, bias):
        if not isinstance(qweight, QTensor) or qweight.dtype != "qint8":
            raise TypeError(f"weight must be a qint8 QTensor, got {qweight!r:.80}")
        if qweight.shape != (self.out_features, self.in_features):
            raise ValueError(f"weight shape {qweight.shape} does not match "
                             f"(out_features, in_features) = {(self.out_features, self.in_features)}")
        self._qweight = qweight
        self._w_scale, self._w_zero_point = _weight_params(qweight)
        self._packed = pack_int8_weight(qweight.int_repr().data)
        self._bias = None if bias is None else np.asarray(bias.data if isinstance(bias, Tensor) else bias, np.float32)

    def weight(self):
        return self._qweight

    def bias(self):
        return None if self._bias is None else Tensor(self._bias)

    def _check_input(self, shape):
        if len(shape) == 0 or shape[-1] != self.in_features:
            raise ValueError(f"{type(self).__name__}: input shape {shape} does not fit in_features={self.in_features}")

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"qscheme={self._qweight.qscheme()}")


class Linear(_PackedLinear):
    """Static int8 Linear: QTensor (quint8) in, QTensor (quint8) out, int32 accumulation.

    ``scale``/``zero_point`` are the output's, from the observer that watched the float
    layer's output during calibration; outputs are clamped to [quant_min, quant_max].
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__(in_features, out_features, bias)
        self.scale, self.zero_point = 1.0, 0
        self.quant_min, self.quant_max = dtype_range("quint8")

    @classmethod
    def from_float(cls, mod):
        """From a prepared and calibrated ``nn.Linear`` or a QAT ``qat.Linear``."""
        if not hasattr(mod, "activation_post_process"):
            raise ValueError(f"{type(mod).__name__} has no output observer: call prepare() (or prepare_qat()) "
                             f"and run calibration data through the model before convert()")
        output_observer = mod.activation_post_process
        if not output_observer.calibrated:
            raise ValueError(f"{type(mod).__name__}'s output observer has seen no data: "
                             f"run calibration batches through the prepared model before convert()")
        if hasattr(mod, "weight_fake_quant"):  # QAT: the fake quantizer has watched the weight all along
            weight_observer = mod.weight_fake_quant
        else:
            weight_observer = mod.qconfig.weight()
            weight_observer(mod.weight)
        qlinear = cls(mod.in_features, mod.out_features, mod.bias is not None)
        qlinear.set_weight_bias(quantize_weight(mod.weight, weight_observer), mod.bias)
        qlinear.weight_quant_range = (weight_observer.quant_min, weight_observer.quant_max)
        scale, zero_point = output_observer.calculate_qparams()
        if output_observer.dtype != "quint8":
            raise ValueError(f"quantized Linear outputs quint8; the output observer has dtype {output_observer.dtype}")
        qlinear.scale, qlinear.zero_point = float(scale.data[0]), int(zero_point.data[0])
        qlinear.quant_min, qlinear.quant_max = output_observer.quant_min, output_observer.quant_max
        return qlinear

    def _quantized_bias(self, x_scale):
        """b requantized as int32 with scale s_x * s_w and zero point 0, returned as float32 q_b * s_x * s_w."""
        if self._bias is None:
            return None
        bias_scale = np.float32(x_scale) * np.asarray(self._w_scale, np.float32)
        q_bias = quantize_array(self._bias, bias_scale, 0, *_INT32_RANGE)
        return q_bias.astype(np.float32) * bias_scale

    def forward(self, x):
        if not isinstance(x, QTensor) or x.dtype != "quint8" or x.qscheme() != "per_tensor_affine":
            raise TypeError(f"quantized Linear expects a per-tensor quint8 QTensor (put a QuantStub before it), "
                            f"got {x!r:.80}")
        self._check_input(x.shape)
        x_q = x.int_repr().data.reshape(-1, self.in_features)
        q = int8_linear_requant(x_q, x.q_scale(), x.q_zero_point(), self._packed, self._w_scale,
                                self.scale, self.zero_point, self._w_zero_point,
                                self._quantized_bias(x.q_scale()), "quint8")
        q = np.clip(q, self.quant_min, self.quant_max)
        return QTensor(q.reshape(x.shape[:-1] + (self.out_features,)), self.scale, self.zero_point, "quint8")

    def extra_repr(self):
        return super().extra_repr() + f", scale={self.scale:.6g}, zero_point={self.zero_point}"


def choose_qparams(min_val, max_val, qmin=0, qmax=255, reduce_range=False):
    """(scale, zero_point) for a batch, as PyTorch's dynamic layers choose them (FBGEMM's
    ``ChooseQuantizationParams``): the range widened to hold 0, a double-precision scale, scales
    below float16's smallest normal (6.1e-5) raised to it, and the zero point computed from
    whichever end gives the smaller rounding error, then rounded to an integer in [qmin, qmax].
    """
    if reduce_range:
        qmin, qmax = int(qmin / 2), int(qmax / 2)  # C++ integer division truncates toward 0
    lo = min(float(np.float32(min_val)), 0.0)
    hi = max(float(np.float32(max_val)), 0.0)
    scale = (hi - lo) / (qmax - qmin)
    if np.float32(scale) == 0 or np.isinf(np.float32(1.0) / np.float32(scale)):
        scale = 0.1
    if scale < np.float32(SMALL_SCALE_THRESHOLD):
        amplifier = np.float32(SMALL_SCALE_THRESHOLD) / np.float32(scale)
        scale = float(np.float32(SMALL_SCALE_THRESHOLD))
        if lo == 0:
            hi = scale * (qmax - qmin)
        elif hi == 0:
            lo = -scale * (qmax - qmin)
        else:
            lo, hi = float(np.float32(lo) * amplifier), float(np.float32(hi) * amplifier)
    from_min, from_max = qmin - lo / scale, qmax - hi / scale
    from_min_error, from_max_error = abs(qmin) - abs(lo / scale), abs(qmax) - abs(hi / scale)
    initial = from_min if from_min_error < from_max_error else from_max
    zero_point = qmin if initial < qmin else qmax if initial > qmax else int(np.rint(initial))
    return scale, zero_point


class DynamicLinear(_PackedLinear):
    """Dynamic int8 Linear: float in, float out; int8 weights, activations quantized per batch.

    Each call quantizes the batch to quint8 with ``choose_qparams`` (over 0..127 with
    ``reduce_range``, PyTorch's default on x86), runs the int8 kernel and rescales:
    y = s_x s_w (q_x - z_x) q_W^T + b, with the float bias added after (as FBGEMM does).
    """

    def __init__(self, in_features, out_features, bias=True, reduce_range=True):
        super().__init__(in_features, out_features, bias)
        self.reduce_range = reduce_range

    @classmethod
    def from_float(cls, mod):
        """From an ``nn.Linear``: weights observed and quantized once, with ``mod.qconfig.weight``
        (default: symmetric per-tensor qint8)."""
        qconfig = getattr(mod, "qconfig", None)
        weight_observer = (qconfig.weight if qconfig is not None and qconfig.weight is not None
                           else default_weight_observer)()
        weight_observer(mod.weight)
        qlinear = cls(mod.in_features, mod.out_features, mod.bias is not None)
        qlinear.set_weight_bias(quantize_weight(mod.weight, weight_observer), mod.bias)
        qlinear.weight_quant_range = (weight_observer.quant_min, weight_observer.quant_max)
        return qlinear

    def forward(self, x):
        if not isinstance(x, Tensor) or x.dtype.kind != "f":
            raise TypeError(f"dynamic quantized Linear expects a float Tensor, got {x!r:.80}")
        self._check_input(x.shape)
        x2 = x.data.reshape(-1, self.in_features)
        out_shape = x.shape[:-1] + (self.out_features,)
        if x2.shape[0] == 0:
            return Tensor(np.zeros(out_shape, np.float32))
        lo, hi = dtype_range("quint8", self.reduce_range)
        scale, zero_point = choose_qparams(x2.min(), x2.max(), 0, 255, self.reduce_range)
        x_q = quantize_array(x2, scale, zero_point, lo, hi).astype(DTYPES["quint8"])
        y = int8_linear_dequant(x_q, scale, zero_point, self._packed, self._w_scale, self._w_zero_point, self._bias)
        return Tensor(y.reshape(out_shape))

    def extra_repr(self):
        return super().extra_repr() + f", reduce_range={self.reduce_range}"


class ReLU(Module):
    """max(x, 0). On a QTensor: max(q, zero_point) on the integers, keeping scale and zero point."""

    @classmethod
    def from_float(cls, mod):
        return cls()

    def forward(self, x):
        if not isinstance(x, QTensor):
            return F.relu(x)
        if x.qscheme() != "per_tensor_affine":
            raise ValueError("quantized ReLU needs a per-tensor QTensor")
        q = x.int_repr().data
        return x.with_int_repr(np.maximum(q, np.asarray(x.q_zero_point(), q.dtype)))
