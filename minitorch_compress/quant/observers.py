"""Observers: watch the values a tensor takes and choose its scale and zero point.

As ``torch.ao.quantization.observer``. Each observer is a module: calling it on a tensor
records statistics (and returns the tensor unchanged); ``calculate_qparams()`` turns them
into ``(scale, zero_point)`` with PyTorch's formulas (``_calculate_qparams``), for the
integer range [qmin, qmax]::

    min_neg = min(x_min, 0),  max_pos = max(x_max, 0)          # the range always holds 0
    affine:     scale = max(( max_pos - min_neg) / (qmax - qmin), eps)
                zero_point = clamp(qmin - round(min_neg / scale), qmin, qmax)
    symmetric:  scale = max(max(-min_neg, max_pos) / ((qmax - qmin) / 2), eps)
                zero_point = 0 (qint8), 128 (quint8) or (qmin + qmax) // 2 for a custom quint8 range

``eps`` is float32's machine epsilon, so an all-zero tensor gets a tiny scale instead of 0.
Arithmetic is float32, as in PyTorch.

[qmin, qmax] chooses the scale; the converted model clamps its codes to the dtype's whole range
(``code_range``), as PyTorch does: an input beyond the calibrated range of PyTorch's x86 defaults
(0..127) gets codes up to 255. ``clamp_to_quant_range=True`` (beyond PyTorch; what
``qconfig_for_bits`` sets) clamps them to [qmin, qmax] instead, so that b bits give b-bit codes.
"""
import functools
import warnings

import numpy as np

from ..nn import Module
from ..tensor import Tensor
from ..validation import check_number, check_positive
from .qtensor import check_dtype, dtype_range

QSCHEMES = ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric")
EPS = float(np.finfo(np.float32).eps)


class _Constructor(functools.partial):
    """A class with some constructor arguments filled in; ``with_args`` fills in more."""

    def with_args(self, **kwargs):
        return _Constructor(self.func, *self.args, **{**self.keywords, **kwargs})


def with_args(cls, **kwargs):
    """``Observer.with_args(dtype="qint8")``: a constructor to put in a ``QConfig``, as in PyTorch."""
    return _Constructor(cls, **kwargs)


def _values(x):
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if data.dtype.kind != "f":
        raise TypeError(f"observers watch float tensors, got dtype {data.dtype}")
    return data.astype(np.float32, copy=False)


def _f32(value):
    """A float32 ndarray (NumPy turns 0-d results into scalars; buffers hold arrays)."""
    return np.asarray(value, np.float32)


def calculate_qmin_qmax(quant_min, quant_max, dtype, reduce_range):
    """The integer range: the dtype's (halved by ``reduce_range``) or a custom one containing 0."""
    lo, hi = dtype_range(dtype)
    if quant_min is None and quant_max is None:
        return dtype_range(dtype, reduce_range)
    if quant_min is None or quant_max is None:
        raise ValueError(f"give both quant_min and quant_max or neither, "
                         f"got quant_min={quant_min}, quant_max={quant_max}")
    if not quant_min <= 0 <= quant_max or quant_min >= quant_max:
        raise ValueError(f"quant range [{quant_min}, {quant_max}] must contain 0 and have quant_min < quant_max")
    if quant_min < lo or quant_max > hi:
        raise ValueError(f"quant range [{quant_min}, {quant_max}] does not fit in {dtype} [{lo}, {hi}]")
    return (quant_min // 2, quant_max // 2) if reduce_range else (quant_min, quant_max)


def code_range(observer):
    """The [min, max] a converted model clamps codes to: the dtype's (PyTorch's ``quantize_per_tensor``
    and quantized layers), or the observer's [quant_min, quant_max] if it has ``clamp_to_quant_range``."""
    if getattr(observer, "clamp_to_quant_range", False):
        return observer.quant_min, observer.quant_max
    return dtype_range(observer.dtype)


class ObserverBase(Module):
    """Records statistics in ``forward`` and computes ``(scale, zero_point)`` in ``calculate_qparams``."""

    with_args = classmethod(with_args)

    def __init__(self, dtype="quint8", qscheme="per_tensor_affine", reduce_range=False,
                 quant_min=None, quant_max=None, eps=EPS,
                 clamp_to_quant_range=False):
        super().__init__()
        self.dtype = check_dtype(dtype)
        if qscheme not in QSCHEMES:
            raise ValueError(f"unknown qscheme {qscheme!r}; expected one of {QSCHEMES}")
        if qscheme.endswith("symmetric") and reduce_range and dtype == "quint8":
            raise ValueError("reduce_range is not supported for symmetric quint8 quantization (as in PyTorch)")
        check_number("eps", eps, 0, low_open=True)
        self.qscheme, self.reduce_range, self.eps = qscheme, reduce_range, np.float32(eps)
        self.has_customized_qrange = quant_min is not None and quant_max is not None
        self.quant_min, self.quant_max = calculate_qmin_qmax(quant_min, quant_max, dtype, reduce_range)
        self.clamp_to_quant_range = bool(clamp_to_quant_range)

    def _calculate_qparams(self, min_val, max_val):
        """PyTorch's ``_calculate_qparams``: float32 scale and int64 zero point, one per channel."""
        min_val = np.asarray(min_val, np.float32).reshape(-1)
        max_val = np.asarray(max_val, np.float32).reshape(-1)
        if (min_val > max_val).any():
            raise ValueError(f"observed min {min_val} exceeds max {max_val}")
        qmin, qmax = self.quant_min, self.quant_max
        min_neg = np.minimum(min_val, np.float32(0))
        max_pos = np.maximum(max_val, np.float32(0))
        if self.qscheme.endswith("symmetric"):
            scale = np.maximum(np.maximum(-min_neg, max_pos) / np.float32((qmax - qmin) / 2), self.eps)
            middle = (qmin + qmax) // 2 if self.has_customized_qrange else 128
            zero_point = np.full(scale.shape, middle if self.dtype == "quint8" else 0, np.int64)
        else:
            scale = np.maximum((max_pos - min_neg) / np.float32(qmax - qmin), self.eps)
            zero_point = np.clip(qmin - np.rint(min_neg / scale).astype(np.int64), qmin, qmax)
        return Tensor(scale.astype(np.float32)), Tensor(zero_point)

    def forward(self, x):
        data = _values(x)
        if data.size:
            self._update(*self._min_max(data))
        return x

    def _range(self):
        """The [min, max] to quantize: what was seen (the histogram observer searches a narrower one)."""
        return self.min_val.data, self.max_val.data

    def calculate_qparams(self):
        if not self.calibrated:  # PyTorch's answer before any data: scale 1, zero point 0, and a warning
            warnings.warn(f"{type(self).__name__} has seen no data: returning scale 1.0 and zero point 0", stacklevel=2)
            return Tensor(np.ones(1, np.float32)), Tensor(np.zeros(1, np.int64))
        return self._calculate_qparams(*self._range())

    def extra_repr(self):
        return (f"dtype={self.dtype}, qscheme={self.qscheme}, quant_min={self.quant_min}, "
                f"quant_max={self.quant_max}, min_val={self.min_val.data}, max_val={self.max_val.data}")


class MinMaxObserver(ObserverBase):
    """Running minimum and maximum of everything seen: x_min = min(x_min, min X), x_max likewise."""

    def __init__(self, dtype="quint8", qscheme="per_tensor_affine", reduce_range=False,
                 quant_min=None, quant_max=None, eps=EPS,
                 clamp_to_quant_range=False):
        if qscheme.startswith("per_channel"):
            raise ValueError(f"{type(self).__name__} is per tensor; use PerChannelMinMaxObserver for {qscheme!r}")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, eps, clamp_to_quant_range)
        self.register_buffer("min_val", Tensor(np.array(np.inf, np.float32)))
        self.register_buffer("max_val", Tensor(np.array(-np.inf, np.float32)))

    @property
    def calibrated(self):
        return bool(np.isfinite(self.min_val.data).all() and self.min_val.data.size > 0)

    def _min_max(self, data):
        return data.min(), data.max()

    def _update(self, lo, hi):
        self.min_val.data = _f32(np.minimum(self.min_val.data, lo))
        self.max_val.data = _f32(np.maximum(self.max_val.data, hi))

    def reset_min_max_vals(self):
        self.min_val.data = np.array(np.inf, np.float32)
        self.max_val.data = np.array(-np.inf, np.float32)


class MovingAverageMinMaxObserver(MinMaxObserver):
    """Exponential moving average of each batch's min and max: x_min += c * (min X - x_min).

    The first batch sets the values directly. ``c = averaging_constant`` (PyTorch's default 0.01).
    """

    def __init__(self, averaging_constant=0.01, dtype="quint8", qscheme="per_tensor_affine", reduce_range=False,
                 quant_min=None, quant_max=None, eps=EPS,
                 clamp_to_quant_range=False):
        check_number("averaging_constant", averaging_constant, 0, 1, low_open=True)
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, eps, clamp_to_quant_range)
        self.averaging_constant = averaging_constant

    def _update(self, lo, hi):
        if not self.calibrated:
            self.min_val.data, self.max_val.data = _f32(lo), _f32(hi)
            return
        c = np.float32(self.averaging_constant)
        self.min_val.data = _f32(self.min_val.data + c * (lo - self.min_val.data))
        self.max_val.data = _f32(self.max_val.data + c * (hi - self.max_val.data))


class PerChannelMinMaxObserver(ObserverBase):
    """Running min and max of each slice along ``ch_axis`` (e.g. each output row of a weight)."""

    def __init__(self, ch_axis=0, dtype="quint8", qscheme="per_channel_affine", reduce_range=False,
                 quant_min=None, quant_max=None, eps=EPS,
                 clamp_to_quant_range=False):
        if not qscheme.startswith("per_channel"):
            raise ValueError(f"{type(self).__name__} is per channel; use MinMaxObserver for {qscheme!r}")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, eps, clamp_to_quant_range)
        self.ch_axis = ch_axis
        self.register_buffer("min_val", Tensor(np.zeros(0, np.float32)))
        self.register_buffer("max_val", Tensor(np.zeros(0, np.float32)))

    @property
    def calibrated(self):
        return self.min_val.data.size > 0

    def _min_max(self, data):
        if not -data.ndim <= self.ch_axis < data.ndim:
            raise ValueError(f"ch_axis={self.ch_axis} is not a dimension of a tensor of shape {data.shape}")
        rows = np.moveaxis(data, self.ch_axis, 0).reshape(data.shape[self.ch_axis], -1)
        lo, hi = rows.min(axis=1), rows.max(axis=1)
        if self.calibrated and lo.shape != self.min_val.shape:
            raise ValueError(f"{type(self).__name__} saw {self.min_val.shape[0]} channels before, now {lo.shape[0]}")
        return lo, hi

    def _update(self, lo, hi):
        if not self.calibrated:
            self.min_val.data, self.max_val.data = lo, hi
        else:
            self.min_val.data = np.minimum(self.min_val.data, lo)
            self.max_val.data = np.maximum(self.max_val.data, hi)

    def reset_min_max_vals(self):
        self.min_val.data = np.zeros(0, np.float32)
        self.max_val.data = np.zeros(0, np.float32)


class MovingAveragePerChannelMinMaxObserver(PerChannelMinMaxObserver):
    """Per-channel moving averages of min and max (what PyTorch's per-channel QAT weights use)."""

    def __init__(self, averaging_constant=0.01, ch_axis=0, dtype="quint8", qscheme="per_channel_affine",
                 reduce_range=False, quant_min=None, quant_max=None, eps=EPS,
                 clamp_to_quant_range=False):
        check_number("averaging_constant", averaging_constant, 0, 1, low_open=True)
        super().__init__(ch_axis, dtype, qscheme, reduce_range, quant_min, quant_max, eps, clamp_to_quant_range)
        self.averaging_constant = averaging_constant

    def _update(self, lo, hi):
        if not self.calibrated:
            self.min_val.data, self.max_val.data = lo, hi
            return
        c = np.float32(self.averaging_constant)
        self.min_val.data = self.min_val.data + c * (lo - self.min_val.data)
        self.max_val.data = self.max_val.data + c * (hi - self.max_val.data)


def _histc(x, bins, lo, hi):
    """``torch.histc``: ``bins`` equal bins over [lo, hi], values outside ignored, hi in the last bin."""
    lo, hi = float(lo), float(hi)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    x = x[(x >= lo) & (x <= hi)]
    pos = ((x - np.float32(lo)) * np.float32(bins) / np.float32(hi - lo)).astype(np.int64)
    return np.bincount(np.minimum(pos, bins - 1), minlength=bins).astype(np.float32)


class HistogramObserver(ObserverBase):
    """A running histogram, then the [min, max] that minimises the L2 quantization error.

    As PyTorch's ``HistogramObserver`` (after Caffe2's ``NormMinimization``): ``bins`` bins over
    the range seen so far (an older histogram is spread onto a wider range through a 16x finer
    grid); ``calculate_qparams`` narrows the range bin by bin from whichever side holds less
    probability mass and stops when the estimated error of quantizing to 2^8 levels grows.
    Clipping a few outliers buys a finer scale for everything else.
    """

    def __init__(self, bins=2048, dtype="quint8", qscheme="per_tensor_affine", reduce_range=False,
                 quant_min=None, quant_max=None, eps=EPS,
                 clamp_to_quant_range=False):
        if qscheme.startswith("per_channel"):
            raise ValueError(f"HistogramObserver is per tensor, got qscheme {qscheme!r}")
        check_positive(bins=bins)
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, eps, clamp_to_quant_range)
        self.bins, self.upsample_rate, self.dst_nbins = bins, 16, 2 ** 8
        self.register_buffer("histogram", Tensor(np.zeros(bins, np.float32)))
        self.register_buffer("min_val", Tensor(np.array(np.inf, np.float32)))
        self.register_buffer("max_val", Tensor(np.array(-np.inf, np.float32)))

    @property
    def calibrated(self):
        return bool(np.isfinite(self.min_val.data))

    def forward(self, x):
        data = _values(x).reshape(-1)
        data = data[np.isfinite(data)]  # infinities would make the range infinite; PyTorch drops them too
        if not data.size:
            return x
        lo, hi = data.min(), data.max()
        if not self.calibrated:
            self.min_val.data, self.max_val.data = _f32(lo), _f32(hi)
            self.histogram.data = _histc(data, self.bins, lo, hi)
            return x
        cur_lo, cur_hi = self.min_val.data, self.max_val.data
        new_lo, new_hi = np.minimum(cur_lo, lo), np.maximum(cur_hi, hi)
        update = _histc(data, self.bins, new_lo, new_hi)
        if new_lo == cur_lo and new_hi == cur_hi:
            self.histogram.data = self.histogram.data + update
        else:
            self.histogram.data = update + self._rebin(self.histogram.data, cur_lo, cur_hi, new_lo, new_hi)
            self.min_val.data, self.max_val.data = _f32(new_lo), _f32(new_hi)
        return x

    def _rebin(self, hist, lo, hi, new_lo, new_hi):
        """The old histogram over [lo, hi] moved onto ``bins`` bins over the wider [new_lo, new_hi].

        PyTorch's ``_upscale_histogram``: each bin is split into ``upsample_rate`` equal parts,
        and each part's count goes to the new bin holding its midpoint.
        """
        if lo == hi:
            return _histc(np.array([lo], np.float32), self.bins, new_lo, new_hi) * hist.sum()
        n = self.bins * self.upsample_rate
        fine = np.repeat(hist, self.upsample_rate) / np.float32(self.upsample_rate)
        mids = np.linspace(lo, hi, n + 1, dtype=np.float32)[:-1] + np.float32(0.5) * ((hi - lo) / np.float32(n))
        edges = np.linspace(new_lo, new_hi, self.bins + 1, dtype=np.float32)
        buckets = np.clip(np.searchsorted(edges, mids, side="right") - 1, 0, self.bins - 1)
        return np.bincount(buckets, weights=fine, minlength=self.bins).astype(np.float32)

    def _compute_quantization_error(self, next_start_bin, next_end_bin):
        """L2 error of quantizing the histogram to ``dst_nbins`` levels over bins start..end.

        Each source bin's mass is taken as uniform; the squared distance to the centre of the
        destination bin integrates to density * (end^3 - begin^3) / 3. Values beyond the range
        are charged as clipped to the outermost destination bin.
        """
        bin_width = (float(self.max_val.data) - float(self.min_val.data)) / self.bins
        dst_bin_width = bin_width * (next_end_bin - next_start_bin + 1) / self.dst_nbins
        if dst_bin_width == 0.0:
            return 0.0
        f32 = np.float32
        src_begin = ((np.arange(self.bins) - next_start_bin) * bin_width).astype(f32)
        src_end = src_begin + f32(bin_width)
        dst_of_begin = np.clip(np.floor(src_begin / f32(dst_bin_width)), 0, self.dst_nbins - 1)
        dst_of_end = np.clip(np.floor(src_end / f32(dst_bin_width)), 0, self.dst_nbins - 1)
        density = self.histogram.data / f32(bin_width)
        half = f32(dst_bin_width / 2)

        def norm(begin, end):
            return density * (end * end * end - begin * begin * begin) / f32(3)

        err = norm(src_begin - (dst_of_begin + f32(0.5)) * f32(dst_bin_width), half)
        err += (dst_of_end - dst_of_begin - 1) * norm(-half, half)
        err += norm(-half, src_end - (dst_of_end * f32(dst_bin_width) + half))
        return float(err.sum(dtype=f32))

    def _range(self):
        return self._non_linear_param_search()

    def _non_linear_param_search(self):
        """PyTorch's search: move whichever end of [start_bin, end_bin] cuts off less mass, in
        quantile steps of 1e-5, while the quantization error keeps falling."""
        bin_width = (self.max_val.data - self.min_val.data) / np.float32(self.bins)
        total = float(self.histogram.data.sum())
        csum = np.cumsum(self.histogram.data, dtype=np.float32).tolist()
        stepsize, alpha, beta = 1e-5, 0.0, 1.0
        start_bin, end_bin = 0, self.bins - 1
        norm_min = float("inf")
        while alpha < beta:
            next_alpha, next_beta = alpha + stepsize, beta - stepsize
            left, right = start_bin, end_bin
            while left < end_bin and csum[left] < next_alpha * total:
                left += 1
            while right > start_bin and csum[right] > next_beta * total:
                right -= 1
            next_start_bin, next_end_bin = start_bin, end_bin
            if (left - start_bin) > (end_bin - right):
                next_start_bin, alpha = left, next_alpha
            else:
                next_end_bin, beta = right, next_beta
            if next_start_bin == start_bin and next_end_bin == end_bin:
                continue
            norm = self._compute_quantization_error(next_start_bin, next_end_bin)
            if norm > norm_min:
                break
            norm_min, start_bin, end_bin = norm, next_start_bin, next_end_bin
        new_min = self.min_val.data + bin_width * np.float32(start_bin)
        new_max = self.min_val.data + bin_width * np.float32(end_bin + 1)
        return new_min, new_max

    def reset_min_max_vals(self):
        self.min_val.data = np.array(np.inf, np.float32)
        self.max_val.data = np.array(-np.inf, np.float32)
        self.histogram.data = np.zeros(self.bins, np.float32)


default_observer = MinMaxObserver.with_args(quant_min=0, quant_max=127)
"""PyTorch's default activation observer: quint8 with the reduced range 0..127."""
default_weight_observer = MinMaxObserver.with_args(dtype="qint8", qscheme="per_tensor_symmetric")
"""PyTorch's default weight observer: qint8, symmetric, one scale per tensor."""
default_per_channel_weight_observer = PerChannelMinMaxObserver.with_args(dtype="qint8",
                                                                         qscheme="per_channel_symmetric")
"""qint8, symmetric, one scale per output channel."""
default_histogram_observer = HistogramObserver.with_args(quant_min=0, quant_max=127)
