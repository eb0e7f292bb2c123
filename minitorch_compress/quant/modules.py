"""Quantized layers that compute in integers: what ``convert`` and ``quantize_dynamic`` put in a model.

As ``torch.ao.nn.quantized`` (static) and ``torch.ao.nn.quantized.dynamic``. Each layer keeps
its weight as int8 codes, packed once for the int8 kernel (``kernels.pack_int8_weight``). With
``x = s_x (q_x - z_x)`` and ``W = s_w (q_W - z_w)`` the product is one integer matrix product
(int8 x int8 -> int32, exact) and one float rescale per output (Jacob et al., 2018, eq. 7)::

    y = s_x s_w [ (q_x - z_x)(q_W - z_w)^T + q_b ],   q_b = round(b / (s_x s_w))  (int32, zero point 0)

A static layer (``Linear``, ``Conv2d`` through im2col) then requantizes y to its output scale and
zero point (fixed at calibration); a dynamic layer (``DynamicLinear``) returns y as float and picks
s_x, z_x from each batch's min and max (``DynamicMultiheadAttention``: four of them around float attention). ``ReLU``, ``MaxPool2d`` and ``Flatten`` work on the codes.
``LinearReLU`` and ``ConvReLU2d`` (from fused float modules, ``quant.fuse_modules``) apply the ReLU
as the lower clamp of the requantization: codes below the zero point (reals below 0) become it.

The state dict holds the weight as ``weight_int8`` (the codes), ``weight_scale`` and
``weight_zero_point`` (scalars, or 1-D per output channel), then ``bias`` and, for a static layer,
the output ``scale`` and ``zero_point``; loading repacks the weight from them.
"""
import numpy as np

from .. import functional as F
from .. import nn
from ..kernels import Epilogue, im2col, linear_epilogue, max_pool, out_size, pack_int8_weight, quantize_checked
from ..nn import Module
from ..tensor import Tensor, no_grad
from ..validation import as_pair, check_positive
from . import qat
from .fusion import fuse_conv_bn_weights
from .intrinsic import FusedModule
from .observers import code_range, default_weight_observer
from .qtensor import QTensor, check_scale, check_zero_point, dtype_range, quantize_array
from .stubs import OutputQParams

_INT32_RANGE = (-2 ** 31, 2 ** 31 - 1)
SMALL_SCALE_THRESHOLD = 6.1e-5


def quantize_weight(weight, observer):
    """The weight as a qint8 QTensor, with ``observer``'s parameters (PyTorch's ``_quantize_weight``).

    Codes are clamped to ``code_range(observer)``: qint8's -128..127 as in PyTorch, or a b-bit
    observer's [quant_min, quant_max] (``qconfig_for_bits``) for b-bit codes.
    """
    if observer.dtype != "qint8":
        raise ValueError(f"weights are quantized to qint8, the weight observer has dtype {observer.dtype}")
    w = weight.data
    scale, zero_point = (t.data for t in observer.calculate_qparams())
    lo, hi = code_range(observer)
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


class PackedLayer(Module):
    """An int8 weight packed once for the kernel as an (out, fan_in) matrix, and a float32 bias."""

    def _init_weight(self, weight_shape, bias):
        self.weight_quant_range = dtype_range("qint8")  # the codes' range: how many bits they need
        zeros = QTensor(np.zeros(weight_shape, np.int8), 1.0, 0, "qint8")
        self.set_weight_bias(zeros, np.zeros(weight_shape[0], np.float32) if bias else None)

    def set_weight_bias(self, qweight, bias):
        if not isinstance(qweight, QTensor) or qweight.dtype != "qint8":
            raise TypeError(f"weight must be a qint8 QTensor, got {qweight!r:.80}")
        expected = getattr(self, "_qweight", qweight).shape
        if qweight.shape != expected:
            raise ValueError(f"weight shape {qweight.shape} does not match the layer's {expected}")
        self._qweight = qweight
        self._w_scale, self._w_zero_point = _weight_params(qweight)
        codes = qweight.int_repr().data
        self._packed = pack_int8_weight(codes.reshape(codes.shape[0], -1))
        bias = None if bias is None else np.asarray(bias.data if isinstance(bias, Tensor) else bias, np.float32)
        if bias is not None and bias.shape != qweight.shape[:1]:
            raise ValueError(f"bias shape {bias.shape} does not match the weight's output channels {qweight.shape[:1]}")
        self._bias = bias
        # scales, zero points and bias checked and converted once, not on every call
        self._epilogue = Epilogue(qweight.shape[0], self._w_scale, self._w_zero_point, bias)
        self._epilogue_for = (None, None)  # (input scale, its epilogue), see StaticLayer

    def _save_to_state_dict(self, destination, prefix):
        super()._save_to_state_dict(destination, prefix)
        destination[prefix + "weight_int8"] = self._qweight.int_repr()
        destination[prefix + "weight_scale"] = Tensor(np.asarray(self._w_scale, np.float64))
        destination[prefix + "weight_zero_point"] = Tensor(np.asarray(self._w_zero_point, np.int64))
        if self._bias is not None:
            destination[prefix + "bias"] = Tensor(self._bias)

    def _load_from_state_dict(self, state, prefix):
        load_rest = super()._load_from_state_dict(state, prefix)
        entries = self._state_entries(state, prefix)
        codes = entries["weight_int8"]
        if codes.dtype != np.int8:
            raise ValueError(f"{prefix}weight_int8: checkpoint dtype {codes.dtype} vs model int8")
        scale = check_scale(entries["weight_scale"], prefix + "weight_scale")
        zero_point = check_zero_point(entries["weight_zero_point"], *dtype_range("qint8"), prefix + "weight_zero_point")
        qweight = (QTensor(codes.copy(), float(scale), int(zero_point), "qint8") if scale.ndim == 0
                   else QTensor(codes.copy(), scale, zero_point, "qint8", 0))
        bias = entries.get("bias")

        def load():
            load_rest()
            self.set_weight_bias(qweight, None if bias is None else bias.copy())
        return load

    def weight(self):
        return self._qweight

    def bias(self):
        return None if self._bias is None else Tensor(self._bias)

    def _quantize_from(self, mod, weight_observer):
        """Take ``mod``'s weight (quantized with ``weight_observer``'s parameters and range) and bias."""
        self.set_weight_bias(quantize_weight(mod.weight, weight_observer), mod.bias)
        self.weight_quant_range = code_range(weight_observer)


class StaticLayer(OutputQParams, PackedLayer):
    """QTensor (quint8) in, QTensor (quint8) out: the output's scale and zero point were fixed at
    calibration, by the observer that watched the float layer's output; outputs are clamped to
    ``code_range`` of that observer (quint8's 0..255 as in PyTorch, or a b-bit range)."""

    def _init_output(self):
        self.scale, self.zero_point = 1.0, 0
        self.quant_min, self.quant_max = dtype_range("quint8")

    @classmethod
    def from_float(cls, mod):
        """From a prepared and calibrated float layer, or its QAT version, or a fused layer and ReLU
        (whose observer watched the output after the ReLU)."""
        if not hasattr(mod, "activation_post_process"):
            raise ValueError(f"{type(mod).__name__} has no output observer: call prepare() (or prepare_qat()) "
                             f"and run calibration data through the model before convert()")
        output_observer = mod.activation_post_process
        if not output_observer.calibrated:
            raise ValueError(f"{type(mod).__name__}'s output observer has seen no data: "
                             f"run calibration batches through the prepared model before convert()")
        if output_observer.dtype != "quint8":
            raise ValueError(f"quantized layers output quint8; the output observer has dtype {output_observer.dtype}")
        if isinstance(mod, FusedModule):  # as PyTorch: the pair's output observer, the first module's weight
            mod = mod[0]
        if isinstance(mod, qat.ConvBn2d):  # QAT Conv+BN: the BatchNorm folded into weight and bias first, as PyTorch
            mod.weight, mod.bias = fuse_conv_bn_weights(mod.weight, mod.bias, mod.bn.running_mean, mod.bn.running_var,
                                                        mod.bn.eps, mod.bn.weight, mod.bn.bias)
        # QAT: the fake quantizer that watched the weight all along sees the final weight once more
        # (unless its observer was frozen), as in PyTorch's from_float
        weight_observer = mod.weight_fake_quant if hasattr(mod, "weight_fake_quant") else mod.qconfig.weight()
        with no_grad():
            weight_observer(mod.weight)
        layer = cls._like(mod)
        layer._quantize_from(mod, weight_observer)
        scale, zero_point = output_observer.calculate_qparams()
        layer.scale, layer.zero_point = float(scale.data[0]), int(zero_point.data[0])
        layer.quant_min, layer.quant_max = code_range(output_observer)
        return layer

    def _epilogue_at(self, x_scale):
        """The epilogue for inputs of scale s_x, with b requantized as int32 with scale s_x * s_w and
        zero point 0 (as float32 q_b * s_x * s_w).

        Kept for the last input scale seen: in a static model it never changes.
        """
        if self._epilogue_for[0] != x_scale:
            q_bias = None
            if self._bias is not None:
                bias_scale = np.float32(x_scale) * np.asarray(self._w_scale, np.float32)
                q_bias = quantize_array(self._bias, bias_scale, 0, *_INT32_RANGE) * bias_scale
            self._epilogue_for = (x_scale, self._epilogue.at(x_scale, q_bias))
        return self._epilogue_for[1]

    def _check_qtensor(self, x):
        if not isinstance(x, QTensor) or x.dtype != "quint8" or x.qscheme() != "per_tensor_affine":
            raise TypeError(f"quantized {type(self).__name__} expects a per-tensor quint8 QTensor "
                            f"(put a QuantStub before it), got {x!r:.80}")

    def _requantized_product(self, x, rows):
        """Output codes of ``rows`` (codes of x, one row per output position) times the weight, on the int8 kernel."""
        # clamped straight to [quant_min, quant_max]: quint8's, or a b-bit observer's inside it
        return linear_epilogue(rows, x.q_zero_point(), self._packed, self._epilogue_at(x.q_scale()), np.uint8,
                               self.scale, self.zero_point, self._output_min(), self.quant_max)

    def _output_min(self):
        return self.quant_min

    def extra_repr(self):
        return f"qscheme={self._qweight.qscheme()}, scale={self.scale:.6g}, zero_point={self.zero_point}"


class Linear(StaticLayer):
    """Static int8 Linear: y = x W^T + b with quint8 x and y, int8 W, int32 accumulation."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_weight((out_features, in_features), bias)
        self._init_output()

    @classmethod
    def _like(cls, mod):
        return cls(mod.in_features, mod.out_features, mod.bias is not None)

    def forward(self, x):
        self._check_qtensor(x)
        _check_features(self, x.shape)
        q = self._requantized_product(x, x.int_repr().data.reshape(-1, self.in_features))
        return QTensor(q.reshape(x.shape[:-1] + (self.out_features,)), self.scale, self.zero_point, "quint8")

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " + super().extra_repr()


def _check_features(layer, shape):
    if len(shape) == 0 or shape[-1] != layer.in_features:
        raise ValueError(f"{type(layer).__name__}: input shape {shape} does not fit in_features={layer.in_features}")


class Conv2d(StaticLayer):
    """Static int8 convolution (NCHW): every patch of the integer input becomes a row (im2col,
    padding with the zero point, which stands for 0), then one int8 product with the packed
    (out_channels, in_channels * kh * kw) weight, as ``F.conv2d`` does in float."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (as_pair(kernel_size, "kernel_size"), as_pair(stride, "stride"),
                                                       as_pair(padding, "padding"))
        self._init_weight((out_channels, in_channels) + self.kernel_size, bias)
        self._init_output()

    @classmethod
    def _like(cls, mod):
        if mod.groups != 1 or mod.dilation != (1, 1):
            raise ValueError(f"quantized Conv2d supports groups=1 and dilation=1, got groups={mod.groups} and "
                             f"dilation={mod.dilation}")
        return cls(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding, mod.bias is not None)

    def forward(self, x):
        self._check_qtensor(x)
        if len(x.shape) != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"quantized Conv2d: input shape {x.shape} is not (N, {self.in_channels}, H, W)")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        q = np.pad(x.int_repr().data, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=x.q_zero_point())
        n, ho, wo = q.shape[0], out_size(q.shape[2], kh, sh, 1), out_size(q.shape[3], kw, sw, 1)
        rows = im2col(q, kh, kw, (sh, sw), (1, 1))   # padded with the zero point: the code of 0.0
        out = self._requantized_product(x, rows).reshape(n, ho, wo, self.out_channels).transpose(0, 3, 1, 2)
        return QTensor(np.ascontiguousarray(out), self.scale, self.zero_point, "quint8")

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, " + super().extra_repr())


class _ReLUOutput:
    """A static layer followed by ReLU: max(y, 0) is max(q, zero point) on the codes, applied in the clamp."""

    def _output_min(self):
        return max(self.quant_min, self.zero_point)


class LinearReLU(_ReLUOutput, Linear):
    """Static int8 ``relu(x W^T + b)``, from a fused ``intrinsic.LinearReLU`` (as ``torch.ao.nn.intrinsic.quantized``)."""


class ConvReLU2d(_ReLUOutput, Conv2d):
    """Static int8 ``relu(conv2d(x))``, from a fused ``intrinsic.ConvReLU2d``."""


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


class DynamicLinear(PackedLayer):
    """Dynamic int8 Linear: float in, float out; int8 weights, activations quantized per batch.

    Each call quantizes the batch to quint8 with ``choose_qparams`` (over 0..127 with
    ``reduce_range``, PyTorch's default on x86), runs the int8 kernel and rescales:
    y = s_x s_w (q_x - z_x) q_W^T + b, with the float bias added after (as FBGEMM does).
    """

    def __init__(self, in_features, out_features, bias=True, reduce_range=True):
        super().__init__()
        self.in_features, self.out_features, self.reduce_range = in_features, out_features, reduce_range
        self._init_weight((out_features, in_features), bias)

    @classmethod
    def from_float(cls, mod):
        """From an ``nn.Linear``: weights observed and quantized once, with ``mod.qconfig.weight``
        (default: symmetric per-tensor qint8)."""
        qconfig = getattr(mod, "qconfig", None)
        weight_observer = (qconfig.weight if qconfig is not None and qconfig.weight is not None
                           else default_weight_observer)()
        weight_observer(mod.weight)
        qlinear = cls(mod.in_features, mod.out_features, mod.bias is not None)
        qlinear._quantize_from(mod, weight_observer)
        return qlinear

    def forward(self, x):
        if not isinstance(x, Tensor) or x.dtype.kind != "f":
            raise TypeError(f"dynamic quantized Linear expects a float Tensor, got {x!r:.80}")
        _check_features(self, x.shape)
        x2 = x.data.reshape(-1, self.in_features)
        out_shape = x.shape[:-1] + (self.out_features,)
        if x2.shape[0] == 0:
            return Tensor(np.zeros(out_shape, np.float32))
        lo, hi = dtype_range("quint8", self.reduce_range)
        scale, zero_point = choose_qparams(x2.min(), x2.max(), 0, 255, self.reduce_range)
        x_q = quantize_checked(x2, scale, zero_point, lo, hi, np.uint8)   # choose_qparams gives valid ones
        y = linear_epilogue(x_q, zero_point, self._packed, self._epilogue.at(scale))
        return Tensor(y.reshape(out_shape))

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"qscheme={self._qweight.qscheme()}, reduce_range={self.reduce_range}")


def _dynamic_linear(weight, bias, qconfig):
    """A ``DynamicLinear`` from a float (out, in) weight and a bias (or None), observed with ``qconfig``."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias is not None)
    linear.weight.data = weight.astype(np.float32)
    if bias is not None:
        linear.bias.data = bias.astype(np.float32)
    linear.qconfig = qconfig
    return DynamicLinear.from_float(linear)


class DynamicMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` with its four projections as ``DynamicLinear`` layers (int8 weights,
    activations quantized per batch), from ``quantize_dynamic(model, {nn.Linear, nn.MultiheadAttention})``.

    An extension of PyTorch: its dynamic quantization leaves attention in float (``out_proj`` is a
    ``NonDynamicallyQuantizableLinear``, and ``in_proj_weight`` is no Linear), and in torch 2.13
    ``quantize_dynamic(m, {nn.MultiheadAttention})`` swaps only ``out_proj`` for a dynamic Linear,
    after which the module's forward fails (it reads ``out_proj.weight`` as a tensor). Here, as in
    PyTorch's quantizable attention (``torch.ao.nn.quantizable.MultiheadAttention``), the query, key
    and value blocks of ``in_proj_weight``/``in_proj_bias`` become ``linear_Q``, ``linear_K``,
    ``linear_V`` (each block with its own weight scale), and ``out_proj``, all ``DynamicLinear``;
    the attention itself (Q K^T, softmax, times V) stays in float, as in that module when its
    matmuls are not quantized. ``head_mask`` is kept. A module whose heads were all pruned has no
    weights left and stays as it is.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False, head_dim=None):
        Module.__init__(self)
        check_positive(embed_dim=embed_dim, num_heads=num_heads)
        if head_dim is None:
            if embed_dim % num_heads:
                raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
            head_dim = embed_dim // num_heads
        check_positive(head_dim=head_dim)
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        self.dropout, self.batch_first = dropout, batch_first
        inner = num_heads * head_dim
        self.linear_Q, self.linear_K, self.linear_V = (DynamicLinear(embed_dim, inner, bias) for _ in range(3))
        self.out_proj = DynamicLinear(inner, embed_dim, bias)
        self.register_buffer("head_mask", None, persistent=False)

    @classmethod
    def from_float(cls, mod):
        """From an ``nn.MultiheadAttention`` (pruned or not): each projection's weight observed and
        quantized with ``mod.qconfig.weight`` (default: symmetric per-tensor qint8)."""
        if mod.num_heads == 0:   # every head pruned: no weight left to quantize, the float module stays
            return mod
        inner = mod.num_heads * mod.head_dim
        qmod = cls(mod.embed_dim, mod.num_heads, mod.dropout, mod.in_proj_bias is not None, mod.batch_first,
                   mod.head_dim)
        qconfig, w, b = getattr(mod, "qconfig", None), mod.in_proj_weight.data, mod.in_proj_bias
        for i, name in enumerate(("linear_Q", "linear_K", "linear_V")):
            rows = slice(i * inner, (i + 1) * inner)
            setattr(qmod, name, _dynamic_linear(w[rows], None if b is None else b.data[rows], qconfig))
        bias = mod.out_proj.bias
        qmod.out_proj = _dynamic_linear(mod.out_proj.weight.data, None if bias is None else bias.data,
                                        getattr(mod.out_proj, "qconfig", qconfig))
        if mod.head_mask is not None:
            qmod.head_mask = Tensor(np.array(mod.head_mask.data, np.float32))
        return qmod.train(mod.training)

    def in_projections(self, query, key, value):
        """(linear_Q(query), linear_K(key), linear_V(value))."""
        return self.linear_Q(query), self.linear_K(key), self.linear_V(value)


class ReLU(nn.ReLU):
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


class MaxPool2d(nn.MaxPool2d):
    """Max pooling; on a QTensor, the maximum of the integer codes (the map q -> s (q - z) keeps order)."""

    @classmethod
    def from_float(cls, mod):
        return cls(mod.kernel_size, mod.stride)

    def forward(self, x):
        if not isinstance(x, QTensor):
            return F.max_pool2d(x, self.kernel_size, self.stride)
        (kh, kw) = as_pair(self.kernel_size, "kernel_size")
        (sh, sw) = as_pair(self.kernel_size if self.stride is None else self.stride, "stride")
        return x.with_int_repr(max_pool(np.ascontiguousarray(x.int_repr().data), kh, kw, sh, sw)[0])


class Flatten(nn.Flatten):
    """Flattens dimensions start_dim.. of each example; a QTensor keeps its scale and zero point."""

    @classmethod
    def from_float(cls, mod):
        return cls(mod.start_dim)

    def forward(self, x):
        if not isinstance(x, QTensor):
            return x.flatten(self.start_dim)
        return x.with_int_repr(x.int_repr().data.reshape(x.shape[:self.start_dim] + (-1,)))
