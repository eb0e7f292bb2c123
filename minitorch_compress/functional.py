"""Neural-network operations on tensors (``import minitorch_compress.functional as F``).

Like ``torch.nn.functional``. The operations whose gradient has a short closed form that
is cheaper than the chain of primitive ops (softmax, cross entropy, linear, convolution,
pooling) get their own backward rule, written right after the forward.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .backend import matmul_arrays
from .kernels.transcendental import exp, log
from .random import get_rng
from .tensor import Tensor, op_result, tensor
from .validation import as_pair


def _tensor(x, name="input"):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, float, int)):
        return tensor(x)
    raise TypeError(f"{name} must be a Tensor or array, got {type(x).__name__}")


def relu(x):
    return _tensor(x).relu()


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


def _windows(x, kh, kw, sh, sw):
    """All (kh, kw) patches of an NCHW array taken every (sh, sw): shape (N, C, Ho, Wo, kh, kw), a view."""
    return sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D cross-correlation by im2col: every patch becomes a row, then one matrix product.

    out[n, o, i, j] = b[o] + sum_{c, u, v} x_pad[n, c, i*s + u, j*s + v] * W[o, c, u, v]
    """
    x, weight = _tensor(x), _tensor(weight, "weight")
    if x.ndim != 4 or weight.ndim != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: input shape {x.shape} (N, C, H, W) does not fit weight shape {weight.shape} (O, C, kh, kw)")
    (sh, sw), (ph, pw) = as_pair(stride, "stride"), as_pair(padding, "padding")
    if sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"conv2d: stride {stride} must be >= 1 and padding {padding} >= 0")
    o, c, kh, kw = weight.shape
    xp = np.pad(x.data, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x.data
    if xp.shape[2] < kh or xp.shape[3] < kw:
        raise ValueError(f"conv2d: padded input {xp.shape[2:]} is smaller than the kernel {(kh, kw)}")
    patches = _windows(xp, kh, kw, sh, sw)
    n, _, ho, wo = patches.shape[:4]
    cols = patches.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)
    w2 = weight.data.reshape(o, -1)
    out = matmul_arrays(cols, w2.T)
    if bias is not None:
        out += bias.data
    out = out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)

    def col2im(g2):
        dcols = matmul_arrays(g2, w2).reshape(n, ho, wo, c, kh, kw)
        dxp = np.zeros(xp.shape, dtype=xp.dtype)
        for u in range(kh):  # one strided add per kernel offset, never per pixel
            for v in range(kw):
                dxp[:, :, u:u + sh * ho:sh, v:v + sw * wo:sw] += dcols[:, :, :, :, u, v].transpose(0, 3, 1, 2)
        return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]

    def backward(g):
        g2 = g.transpose(0, 2, 3, 1).reshape(-1, o)
        grads = (col2im(g2) if x.requires_grad else None,
                 matmul_arrays(g2.T, cols).reshape(weight.shape) if weight.requires_grad else None)
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
    patches = _windows(x.data, kh, kw, sh, sw)
    n, c, ho, wo = patches.shape[:4]
    flat = patches.reshape(n, c, ho, wo, kh * kw)
    arg = flat.argmax(axis=-1)
    out = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]

    def backward(g):
        dx = np.zeros_like(x.data)
        rows = np.arange(ho)[:, None] * sh + arg // kw
        cols = np.arange(wo)[None, :] * sw + arg % kw
        batch, channel = np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None]
        np.add.at(dx, (batch, channel, rows, cols), g)  # add.at: overlapping windows may share a maximum
        return (dx,)
    return op_result(out, (x,), backward)
