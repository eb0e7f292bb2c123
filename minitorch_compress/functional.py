"""Neural-network operations on tensors (``import minitorch_compress.functional as F``).

Like ``torch.nn.functional``. The operations whose gradient has a short closed form that
is cheaper than the chain of primitive ops (softmax, cross entropy, linear, convolution,
pooling) get their own backward rule, written right after the forward.
"""
import numpy as np

from .backend import get_backend, matmul_arrays
from .kernels import batch_norm_grad_rows, centred_square_sums, channel_sums, col2im, conv_forward, conv_input_grad, conv_weight_grad
from .kernels import batch_norm_grad_scaled_rows, batch_norm_grad_sums
from .kernels import erfc, exp, im2col, log, max_pool, max_pool_backward, out_size, scale_shift_rows, windows
from .kernels import tanh as tanh_array
from .random import get_rng
from .tensor import Tensor, op_result, tensor
from .validation import as_pair, check_int, check_number


def _tensor(x, name="input"):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, float, int)):
        return tensor(x)
    raise TypeError(f"{name} must be a Tensor or array, got {type(x).__name__}")


def relu(x):
    return _tensor(x).relu()


def relu6(x):
    """min(max(x, 0), 6): MobileNet's activation, bounded so that low-precision ranges stay small."""
    return _tensor(x).clamp(0.0, 6.0)


def sigmoid(x):
    return _tensor(x).sigmoid()


def tanh(x):
    return _tensor(x).tanh()


# ----- softmax family ------------------------------------------------------------------------
def softmax(x, dim=-1):
    """softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x)  (shifted, so it never overflows)."""
    x = _tensor(x)
    e = exp(x.data - x.data.max(axis=dim, keepdims=True))
    out = e / e.sum(axis=dim, keepdims=True)

    def backward(g):  # Jacobian-vector product: s * (g - <g, s>)
        return (out * (g - (g * out).sum(axis=dim, keepdims=True)),)
    return op_result(out, (x,), backward)


def _log_softmax_array(z, dim):
    shifted = z - z.max(axis=dim, keepdims=True)
    return shifted - log(exp(shifted).sum(axis=dim, keepdims=True))


def log_softmax(x, dim=-1):
    """log softmax(x)_i = (x_i - m) - log sum_j exp(x_j - m), m = max x: stable for logits of ±1e4."""
    x = _tensor(x)
    out = _log_softmax_array(x.data, dim)

    def backward(g):
        return (g - exp(out) * g.sum(axis=dim, keepdims=True),)
    return op_result(out, (x,), backward)


def cross_entropy(logits, target):
    """Mean over the batch of -log softmax(logits)[target].

    ``target`` holds integer class indices in [0, C), shape (N,); or class probabilities of
    the same shape as ``logits`` (soft labels, as PyTorch accepts them; used by mixup).
    """
    logits = _tensor(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects logits of shape (N, C), got {logits.shape}")
    n, c = logits.shape
    target_data = target.data if isinstance(target, Tensor) else np.asarray(target)
    log_p = _log_softmax_array(logits.data, 1)

    if target_data.dtype.kind in "iu":
        if target_data.shape != (n,):
            raise ValueError(f"cross_entropy: target shape {target_data.shape} does not match logits shape {logits.shape}")
        bad = (target_data < 0) | (target_data >= c)
        if bad.any():
            raise ValueError(f"cross_entropy: class target {target_data[bad][0]} is outside [0, {c})")
        loss = -log_p[np.arange(n), target_data].mean()

        def backward(g):
            grad = exp(log_p)
            grad[np.arange(n), target_data] -= 1
            return (grad * (g / n),)
    else:
        if target_data.shape != logits.shape:
            raise ValueError(f"cross_entropy: soft target shape {target_data.shape} does not match logits shape {logits.shape}")
        loss = -(target_data * log_p).sum() / n

        def backward(g):
            grad = exp(log_p) * target_data.sum(axis=1, keepdims=True) - target_data
            return (grad * (g / n),)
    return op_result(np.asarray(loss, dtype=logits.dtype), (logits,), backward)


def mse_loss(input, target, reduction="mean"):
    input, target = _tensor(input), _tensor(target, "target")
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape {target.shape} differ")
    return _reduce((input - target) ** 2, reduction, "mse_loss")


def kl_div(input, target, reduction="batchmean"):
    """KL(target || q) from ``input`` = log q and ``target`` = p, as ``torch.nn.functional.kl_div``.

    Pointwise p * (log p - log q), with 0 where p = 0 (0 log 0 = 0). ``"batchmean"``
    divides the sum by the batch size: the true KL divergence per example.
    """
    input, target = _tensor(input), _tensor(target, "target")
    if input.shape != target.shape:
        raise ValueError(f"kl_div: input shape {input.shape} and target shape {target.shape} differ")
    p, log_q = target.data, input.data
    positive = p > 0
    log_p = log(np.where(positive, p, 1))
    pointwise = np.where(positive, p * (log_p - log_q), 0).astype(input.dtype)

    def backward(g):
        return -p * g, np.where(positive, (log_p + 1 - log_q) * g, 0)
    out = op_result(pointwise, (input, target), backward)
    return _reduce(out, reduction, "kl_div")


def _reduce(x, reduction, name):
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "batchmean":
        return x.sum() / x.shape[0]
    if reduction == "none":
        return x
    raise ValueError(f"{name}: unknown reduction {reduction!r}")


# ----- layers --------------------------------------------------------------------------------
def linear(x, weight, bias=None):
    """y = x W^T + b, with W of shape (out_features, in_features) as in PyTorch."""
    x, weight = _tensor(x), _tensor(weight, "weight")
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input shape {x.shape} does not fit weight shape {weight.shape}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape} does not fit weight shape {weight.shape}")
    x2 = x.data.reshape(-1, x.shape[-1])
    w = weight.data
    out = matmul_arrays(x2, w.T)
    if bias is not None:
        out += bias.data
    out = out.reshape(x.shape[:-1] + (w.shape[0],))

    def backward(g):
        g2 = g.reshape(-1, w.shape[0])
        # The input's gradient is skipped when nothing needs it (the data batch): a third of the work.
        gx = matmul_arrays(g2, w).reshape(x.shape) if x.requires_grad else None
        grads = (gx, matmul_arrays(g2.T, x2) if weight.requires_grad else None)
        return grads + ((g2.sum(axis=0),) if bias is not None else ())
    parents = (x, weight) if bias is None else (x, weight, bias)
    return op_result(out, parents, backward)


def dropout(x, p=0.5, training=True):
    """Inverted dropout: zero each element with probability p and scale survivors by 1/(1-p),
    so the expected activation is unchanged and evaluation needs no rescaling."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability p={p} is outside [0, 1]")
    x = _tensor(x)
    if not training or p == 0:
        return x
    keep = get_rng().random(x.shape) >= p
    mask = (keep / (1 - p)).astype(x.dtype) if p < 1 else np.zeros(x.shape, x.dtype)
    return x * Tensor(mask)


def _grouped(a, b, groups):
    """Per group g: a_g @ b_g, with a (M, G*K) and b (G*K, N/G) split into G column / row blocks,
    side by side in the result (M, N). One product when G = 1."""
    if groups == 1:
        return matmul_arrays(a, b)
    m, k = a.shape[0], a.shape[1] // groups
    a_g = a.reshape(m, groups, k).transpose(1, 0, 2)               # (G, M, K)
    b_g = b.reshape(groups, k, -1)                                 # (G, K, N/G)
    return matmul_arrays(a_g, b_g).transpose(1, 0, 2).reshape(m, -1)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation by im2col: every patch becomes a row, then one matrix product.

    out[n, o, i, j] = b[o] + sum_{c, u, v} x_pad[n, g*C/G + c, i*s + u*d, j*s + v*d] * W[o, c, u, v]

    with ``g = o // (O/G)``: with ``groups`` G, input and output channels split into G groups and
    each output channel sees only its group's C/G input channels (G = C: depthwise; O = k*C:
    depth multiplier k). ``dilation`` d spaces the kernel's taps. The weight is (O, C/G, kh, kw).
    """
    x, weight = _tensor(x), _tensor(weight, "weight")
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d: input shape {x.shape} must be (N, C, H, W) and weight shape {weight.shape} (O, C/groups, kh, kw)")
    groups = check_int("groups", groups, 1)
    o, cg, kh, kw = weight.shape
    c = x.shape[1]
    if c % groups or o % groups:
        raise ValueError(f"conv2d: input channels {c} (input shape {x.shape}) and output channels {o} (weight shape "
                         f"{weight.shape}) must be divisible by groups={groups}")
    if c // groups != cg:
        raise ValueError(f"conv2d: input shape {x.shape} (N, C, H, W) does not fit weight shape {weight.shape}: "
                         f"with groups={groups} its input channels must be C/groups = {c // groups}")
    (sh, sw), (ph, pw), (dh, dw) = as_pair(stride, "stride"), as_pair(padding, "padding"), as_pair(dilation, "dilation")
    if sh < 1 or sw < 1 or ph < 0 or pw < 0 or dh < 1 or dw < 1:
        raise ValueError(f"conv2d: stride {stride} and dilation {dilation} must be >= 1 and padding {padding} >= 0")
    xp = np.pad(x.data, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x.data
    if xp.shape[2] < (kh - 1) * dh + 1 or xp.shape[3] < (kw - 1) * dw + 1:
        raise ValueError(f"conv2d: padded input {xp.shape[2:]} is smaller than the kernel {(kh, kw)} with dilation {(dh, dw)}")
    n, ho, wo = x.shape[0], out_size(xp.shape[2], kh, sh, dh), out_size(xp.shape[3], kw, sw, dw)
    w2 = weight.data.reshape(o, -1)                                                 # group g: a block of rows
    # On our kernel, the products read their patches from xp itself (kernels/conv.py): the same
    # chains as im2col then matmul, without writing the patches out.
    tiled = (groups == 1 and get_backend() == "numba" and x.dtype == weight.dtype == np.float32
             and (bias is None or bias.dtype == np.float32))
    if tiled:
        cols = None
        out = conv_forward(xp, w2, None if bias is None else bias.data, kh, kw, (sh, sw), (dh, dw))
    else:
        cols = im2col(xp, kh, kw, (sh, sw), (dh, dw))                              # group g: a block of columns
        wt = w2.T if groups == 1 else w2.reshape(groups, o // groups, -1).transpose(0, 2, 1).reshape(-1, o // groups)
        out = _grouped(cols, wt, groups)
        if bias is not None:
            out += bias.data
    out = out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)

    def input_grad(g2):
        if groups == 1 and g2.dtype == w2.dtype == np.float32 and get_backend() == "numba":
            dxp = conv_input_grad(g2, w2, xp.shape, kh, kw, (sh, sw), (dh, dw))   # col2im's sums, no patch matrix
            return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]
        dxp = np.zeros(xp.shape, dtype=xp.dtype)
        # On our kernel W^T g2^T gives the bits of (g2 W)^T (one chain over o per element), laid
        # out for col2im to read along image rows; OpenBLAS may round the two differently.
        ours = groups == 1 and g2.dtype == np.float32 and get_backend() == "numba"
        dcols_t = matmul_arrays(w2.T, g2.T) if ours else _grouped(g2, w2, groups).T
        col2im(dcols_t, dxp, kh, kw, (sh, sw), (dh, dw), ho, wo)
        return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]

    def weight_grad(g2):
        if tiled and g2.dtype == np.float32:
            return conv_weight_grad(xp, g2, kh, kw, (sh, sw), (dh, dw)).reshape(weight.shape)
        patches = im2col(xp, kh, kw, (sh, sw), (dh, dw)) if cols is None else cols
        if groups == 1:
            return matmul_arrays(g2.T, patches).reshape(weight.shape)
        og, k = o // groups, cg * kh * kw
        g_g = g2.reshape(-1, groups, og).transpose(1, 2, 0)                           # (G, O/G, M)
        c_g = patches.reshape(-1, groups, k).transpose(1, 0, 2)                          # (G, M, K)
        return matmul_arrays(g_g, c_g).reshape(weight.shape)

    def backward(g):
        g2 = g.transpose(0, 2, 3, 1).reshape(-1, o)
        grads = (input_grad(g2) if x.requires_grad else None, weight_grad(g2) if weight.requires_grad else None)
        return grads + ((g2.sum(axis=0),) if bias is not None else ())
    parents = (x, weight) if bias is None else (x, weight, bias)
    return op_result(out, parents, backward)


def max_pool2d(x, kernel_size, stride=None):
    """Maximum over each (kh, kw) window; the gradient goes to the (first) maximum, as in PyTorch."""
    x = _tensor(x)
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects an NCHW input, got shape {x.shape}")
    kh, kw = as_pair(kernel_size, "kernel_size")
    sh, sw = as_pair(kernel_size if stride is None else stride, "stride")
    if x.shape[2] < kh or x.shape[3] < kw:
        raise ValueError(f"max_pool2d: input {x.shape[2:]} is smaller than the kernel {(kh, kw)}")
    out, arg = max_pool(x.data, kh, kw, sh, sw)

    def backward(g):
        dx = np.zeros_like(x.data)
        max_pool_backward(g, arg, dx, kh, kw, sh, sw)  # in window order: overlapping windows may share a maximum
        return (dx,)
    return op_result(out, (x,), backward)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over each (kh, kw) window (zero padding counted, as PyTorch's ``count_include_pad=True``);
    each input pixel's gradient is the sum of g / (kh kw) over the windows that hold it."""
    x = _tensor(x)
    if x.ndim != 4:
        raise ValueError(f"avg_pool2d expects an NCHW input, got shape {x.shape}")
    kh, kw = as_pair(kernel_size, "kernel_size")
    (sh, sw), (ph, pw) = as_pair(kernel_size if stride is None else stride, "stride"), as_pair(padding, "padding")
    if min(kh, kw, sh, sw) < 1 or ph < 0 or pw < 0 or ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"avg_pool2d: kernel {kernel_size} and stride {stride} must be >= 1, padding {padding} "
                         f"between 0 and half the kernel")
    xp = np.pad(x.data, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x.data
    if xp.shape[2] < kh or xp.shape[3] < kw:
        raise ValueError(f"avg_pool2d: input {x.shape[2:]} is smaller than the kernel {(kh, kw)}")
    patches = windows(xp, kh, kw, sh, sw)
    ho, wo = patches.shape[2:4]
    out = patches.mean(axis=(4, 5), dtype=x.dtype)

    def backward(g):
        dxp = np.zeros(xp.shape, dtype=x.dtype)
        share = g / (kh * kw)
        for u in range(kh):  # one strided add per window offset
            for v in range(kw):
                dxp[:, :, u:u + sh * ho:sh, v:v + sw * wo:sw] += share
        return (dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]],)
    return op_result(out, (x,), backward)


def adaptive_avg_pool2d(x, output_size):
    """Mean over an (oh, ow) grid of bins covering the image, as PyTorch: output cell (i, j) averages
    rows floor(i H / oh) .. ceil((i+1) H / oh) - 1 and the same for columns. ``output_size`` 1 is
    global average pooling."""
    x = _tensor(x)
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d expects an NCHW input, got shape {x.shape}")
    oh, ow = as_pair(output_size, "output_size")
    h, w = x.shape[2:]
    if min(oh, ow) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size {output_size} must be >= 1")
    rows = [(i * h // oh, -(-(i + 1) * h // oh)) for i in range(oh)]
    cols = [(j * w // ow, -(-(j + 1) * w // ow)) for j in range(ow)]
    out = np.empty(x.shape[:2] + (oh, ow), x.dtype)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            out[:, :, i, j] = x.data[:, :, r0:r1, c0:c1].mean(axis=(2, 3), dtype=x.dtype)

    def backward(g):
        dx = np.zeros_like(x.data)
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                dx[:, :, r0:r1, c0:c1] += (g[:, :, i, j] / ((r1 - r0) * (c1 - c0)))[:, :, None, None]
        return (dx,)
    return op_result(out, (x,), backward)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation (Ioffe & Szegedy 2015) over channel dim 1 of an (N, C), (N, C, L) or
    (N, C, H, W) input, as ``torch.nn.functional.batch_norm``:

        y = (x - mean) / sqrt(var + eps) * weight + bias

    Training uses the batch's mean and biased variance over all dims but 1, and updates the
    running estimates in place: ``running = (1 - momentum) * running + momentum * batch`` (with the
    *unbiased* variance, as PyTorch). Evaluation uses the running estimates. ``running_mean`` and
    ``running_var`` are arrays or Tensors, or None (then training statistics are always used).
    """
    x = _tensor(input)
    weight = None if weight is None else _tensor(weight, "weight")
    bias = None if bias is None else _tensor(bias, "bias")
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"batch_norm expects an (N, C), (N, C, L) or (N, C, H, W) input, got shape {x.shape}")
    c = x.shape[1]
    stats = [s.data if isinstance(s, Tensor) else s for s in (running_mean, running_var)]
    for name, s in zip(("running_mean", "running_var"), stats):
        if s is not None and s.shape != (c,):
            raise ValueError(f"batch_norm: {name} has shape {s.shape}, the input has {c} channels")
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, c) + (1,) * (x.ndim - 2)
    count = x.data.size // c
    if training or stats[0] is None:
        if training and count < 2:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input shape {x.shape}")
        rows = _channels_last_rows(x.data, axes)
        if rows is not None:   # a convolution's output: NumPy's sums in NumPy's order, in one pass each
            mean = _divide(channel_sums(rows), count)
            centred_rows, squares = centred_square_sums(rows, mean)
            centred = _like(x.data, centred_rows)     # x's layout, as NumPy's x - mean has
            var = _divide(squares, count)
        else:
            mean = x.data.mean(axis=axes, dtype=x.dtype)
            centred = x.data - mean.reshape(shape)
            var = (centred * centred).mean(axis=axes, dtype=x.dtype)
        if training and stats[0] is not None:
            stats[0] *= 1 - momentum
            stats[0] += momentum * mean
            stats[1] *= 1 - momentum
            stats[1] += momentum * var * (count / (count - 1))
    else:
        mean, var = stats[0].astype(x.dtype), stats[1].astype(x.dtype)
        centred = x.data - mean.reshape(shape)
    inv_std = (1 / np.sqrt(var + eps)).astype(x.dtype).reshape(shape)
    return _scale_and_shift(x, centred, inv_std, weight, bias, axes, shape, axes, training or stats[0] is None)


def _channels_last_rows(a, axes):
    """``a`` as (N*H*W, C) rows when it is a float32 (N, C, H, W) view of channels-last memory reduced
    over ``axes`` (0, 2, 3), as BatchNorm reduces a convolution's output; else None."""
    if axes != (0, 2, 3) or a.dtype != np.float32 or a.shape[1] < 2 or a.flags.c_contiguous:
        return None
    nhwc = a.transpose(0, 2, 3, 1)
    return nhwc.reshape(-1, a.shape[1]) if nhwc.flags.c_contiguous else None


def _like(view, rows):
    """(N*H*W, C) rows as an (N, C, H, W) view shaped and laid out like the channels-last ``view``."""
    n, c, h, w = view.shape
    return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def _divide(sums, count):
    """A sum over ``count`` values as ``ndarray.mean`` divides it (in float64, rounded once)."""
    return np.true_divide(sums, np.intp(count), out=sums, casting="unsafe")


def _stat_sum(a, axes, mean=False, keepdims=False):
    """``a.sum(axis=axes)`` (or ``.mean``) with the bits of NumPy's, by ``channel_sums`` for channels-last rows."""
    rows = _channels_last_rows(a, axes)
    if rows is None:
        return a.mean(axis=axes, keepdims=keepdims) if mean else a.sum(axis=axes, keepdims=keepdims)
    sums = channel_sums(rows)
    sums = _divide(sums, rows.shape[0]) if mean else sums
    return sums.reshape(1, -1, 1, 1) if keepdims else sums


def _scale_and_shift(x, centred, inv_std, weight, bias, stat_axes, param_shape, param_axes, batch_stats):
    """The normalisation layers' common end, y = x_hat * weight + bias with x_hat = centred * inv_std,
    and its backward. With g' = g * weight: dx = inv_std (g' - mean(g') - x_hat mean(g' x_hat)), means
    over ``stat_axes``, when the mean and variance were computed from x (``batch_stats``), else
    dx = g' inv_std; d weight = sum(g x_hat) and d bias = sum(g) over ``param_axes``."""
    scale = None if weight is None else weight.data.reshape(param_shape)
    rows = _channels_last_rows(centred, stat_axes)
    fused = rows is not None and weight is not None and bias is not None and weight.dtype == bias.dtype == np.float32
    if fused:
        # BatchNorm of a convolution's output: one pass, rounded as the NumPy lines below
        normed, out = (_like(centred, r) for r in scale_shift_rows(rows, inv_std.reshape(-1), weight.data, bias.data))
    else:
        normed = centred * inv_std
        out = normed * scale if scale is not None else normed.copy()
        if bias is not None:
            out += bias.data.reshape(param_shape)

    def backward(g):
        g_rows = _channels_last_rows(g, stat_axes) if fused and batch_stats and g.dtype == np.float32 else None
        if g_rows is not None:   # the lines below in two passes over channels-last rows, with their bits
            normed_rows = _channels_last_rows(normed, stat_axes)
            sums = batch_norm_grad_sums(g_rows, normed_rows, weight.data)
            mean_gn, mean_gn_normed = _divide(sums[1], g_rows.shape[0]), _divide(sums[2], g_rows.shape[0])
            gx = batch_norm_grad_scaled_rows(g_rows, weight.data, normed_rows, mean_gn, mean_gn_normed, inv_std.reshape(-1))
            return _like(g, gx), sums[3].copy(), sums[0].copy()
        gn = g * scale if scale is not None else g
        if batch_stats:   # the mean and variance depend on x too
            mean_gn = _stat_sum(gn, stat_axes, mean=True, keepdims=True)
            mean_gn_normed = _stat_sum(gn * normed, stat_axes, mean=True, keepdims=True)
            gn_rows, normed_rows = _channels_last_rows(gn, stat_axes), _channels_last_rows(normed, stat_axes)
            if gn_rows is not None and normed_rows is not None:
                gx = _like(gn, batch_norm_grad_rows(gn_rows, normed_rows, mean_gn.reshape(-1), mean_gn_normed.reshape(-1),
                                                    inv_std.reshape(-1)))
            else:
                gx = inv_std * (gn - mean_gn - normed * mean_gn_normed)
        else:
            gx = gn * inv_std
        grads = (gx,)
        if weight is not None:
            grads += (_stat_sum(g * normed, param_axes),)
        if bias is not None:
            grads += (_stat_sum(g, param_axes),)
        return grads
    return op_result(out, (x,) + tuple(p for p in (weight, bias) if p is not None), backward)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation (Ba et al. 2016) over the last ``len(normalized_shape)`` dims of each
    example, as ``torch.nn.functional.layer_norm``: y = (x - mean) / sqrt(var + eps) * weight + bias,
    with the biased variance; no running statistics, the same in training and evaluation."""
    x = _tensor(input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: input shape {x.shape} does not end in normalized_shape {shape}")
    weight = None if weight is None else _tensor(weight, "weight")
    bias = None if bias is None else _tensor(bias, "bias")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    centred = x.data - x.data.mean(axis=axes, keepdims=True, dtype=x.dtype)
    inv_std = (1 / np.sqrt((centred * centred).mean(axis=axes, keepdims=True, dtype=x.dtype) + eps)).astype(x.dtype)
    return _scale_and_shift(x, centred, inv_std, weight, bias, axes, shape, tuple(range(x.ndim - len(shape))), True)


def embedding(input, weight, padding_idx=None):
    """Rows of ``weight`` (num_embeddings, dim) picked by the integer ``input``; a row used several
    times gets the sum of their gradients, and the ``padding_idx`` row none, as PyTorch."""
    indices = np.asarray(input.data if isinstance(input, Tensor) else input)
    weight = _tensor(weight, "weight")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding indices must be integers, got dtype {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= weight.shape[0]):
        raise ValueError(f"embedding indices must lie in [0, {weight.shape[0]}), got [{indices.min()}, {indices.max()}]")

    def backward(g):
        grad = np.zeros_like(weight.data)
        np.add.at(grad, indices, g)   # add.at: repeated indices accumulate
        if padding_idx is not None:
            grad[padding_idx] = 0
        return (grad,)
    return op_result(weight.data[indices], (weight,), backward)


def gelu(input, approximate="none"):
    """GELU (Hendrycks & Gimpel 2016), as PyTorch: x Phi(x) with Phi the normal CDF
    (``approximate="none"``: 0.5 x erfc(-x / sqrt 2)), or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    (``"tanh"``)."""
    x = _tensor(input)
    xd = x.data.astype(np.float64)
    if approximate == "none":
        cdf = 0.5 * erfc(-xd / np.sqrt(2))

        def slope(xd):
            return cdf + xd * exp(-0.5 * xd * xd) / np.sqrt(2 * np.pi)
    elif approximate == "tanh":
        c = np.sqrt(2 / np.pi)
        t = tanh_array(c * (xd + 0.044715 * (xd * xd * xd)))   # not xd ** 3: NumPy's power varies by CPU
        cdf = 0.5 * (1 + t)

        def slope(xd):
            return cdf + 0.5 * xd * (1 - t * t) * c * (1 + 3 * 0.044715 * xd * xd)
    else:
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")

    def backward(g):   # the slope only when a backward pass asks for it: evaluation skips its exp
        return (g * slope(x.data.astype(np.float64)).astype(x.dtype),)
    return op_result((xd * cdf).astype(x.dtype), (x,), backward)


def attention(query, key, value, attn_mask=None, dropout_p=0.0, scale=None):
    """(softmax(Q K^T * scale + M) V, the weights) over the last two dims (Vaswani et al. 2017):
    what ``scaled_dot_product_attention`` computes, with the weights that ``nn.MultiheadAttention``
    also returns. ``attn_mask`` is boolean, True where a query may attend, or a float added to the
    scores; ``scale`` defaults to 1/sqrt(d); dropout with probability ``dropout_p`` acts on the
    weights. A query that may attend to no key gets weights of 0 and an output of 0 (PyTorch's
    "safe softmax" in ``scaled_dot_product_attention``), not NaN."""
    q, k, v = _tensor(query), _tensor(key, "key"), _tensor(value, "value")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention: query {q.shape}, key {k.shape} and value {v.shape} do not fit")
    scale = 1.0 / float(np.sqrt(q.shape[-1])) if scale is None else check_number("scale", scale)
    scores = (q @ k.transpose(-1, -2)) * scale
    if attn_mask is None:
        weights = softmax(scores, dim=-1)
    else:
        mask = np.asarray(attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask)
        add = np.where(mask, 0.0, -np.inf) if mask.dtype == bool else mask
        empty = np.broadcast_to(np.isneginf(add).all(axis=-1, keepdims=True), scores.shape[:-1] + (1,))
        any_empty = empty.any()
        if any_empty:   # rows with no allowed key: finite scores, then weights multiplied by 0
            add = np.where(empty, 0.0, add)
        weights = softmax(scores + Tensor(add.astype(scores.dtype)), dim=-1)
        if any_empty:
            weights = weights * Tensor((~empty).astype(scores.dtype))
    if dropout_p:
        weights = dropout(weights, dropout_p)
    return weights @ v, weights


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """``torch.nn.functional.scaled_dot_product_attention``: softmax(Q K^T * scale + M) V over the
    last two dims, ``scale`` 1/sqrt(d) by default. ``attn_mask`` is boolean, True where a query may
    attend (PyTorch's convention here, the opposite of ``nn.MultiheadAttention``'s), or a float added
    to the scores; ``is_causal=True`` lets query i attend to keys 0..i (no ``attn_mask`` then); dropout
    ``dropout_p`` applies whenever it is not 0 (pass 0 in evaluation, as PyTorch). Returns the output;
    ``attention`` also returns the weights."""
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, not both")
        attn_mask = np.tril(np.ones((_tensor(query).shape[-2], _tensor(key, "key").shape[-2]), bool))
    return attention(query, key, value, attn_mask, dropout_p, scale)[0]
