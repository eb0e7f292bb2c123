"""Label-preserving image augmentations for batches of digits, with torchvision's names.

Each transform maps a float array of images, ``(N, H, W)`` or ``(N, C, H, W)``, to a new array of
the same shape and dtype, drawing its random parameters once per image from the package generator
(``mc.manual_seed``): a whole batch in a few NumPy operations, never a Python loop over pixels.
``Compose`` chains them; ``Augment(transform, shape)`` makes one a ``DataLoader`` batch transform for
flattened images::

    jitter = transforms.Compose([transforms.RandomAffine(degrees=10, translate=(0.1, 0.1)),
                                 transforms.GaussianNoise(sigma=0.05)])
    loader = DataLoader(train_set, batch_size=64, shuffle=True, transform=Augment(jitter, (28, 28)))

Geometric transforms move pixels by an affine map about the image centre and sample the input
bilinearly, with ``fill`` outside it. Rotations use only +, -, *, / (a polynomial ``cos`` and
``sin``) and aspect ratios the engine's own ``exp``/``log``, so augmented batches have the same
bits on every CPU, as the rest of the engine.
"""
import math

import numpy as np

from ..kernels.transcendental import exp, log
from ..random import get_rng
from ..tensor import Tensor, tensor
from ..validation import check_int


def _uniform(low, high, n):
    return get_rng().uniform(low, high, n)


def _log_uniform(low, high, n):
    """Ratios drawn uniformly in log scale (exp and log that give the same bits on every CPU)."""
    bounds = log(np.array([low, high], np.float64))
    return exp(_uniform(bounds[0], bounds[1], n))


def _range(value, name, around=0.0):
    """(low, high) from a number v (around - v, around + v) or a pair."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value!r}")
        return around - value, around + value
    low, high = value
    if low > high:
        raise ValueError(f"{name} range {value!r} is not ordered")
    return float(low), float(high)


def cos_sin(degrees):
    """cos and sin of angles in degrees, by argument reduction to |r| <= pi/4 and Taylor series
    (error below 1e-16): the same bits on every CPU, unlike libm's or NumPy's SIMD ``cos``."""
    x = np.asarray(degrees, np.float64) * (math.pi / 180)
    quadrant = np.rint(x / (math.pi / 2))
    r = x - quadrant * (math.pi / 2)
    r2 = r * r
    cos, sin = np.ones_like(r), np.ones_like(r)
    for n in range(16, 0, -2):          # Horner: 1 - r^2/2! (1 - r^2/(3*4) (1 - ...))
        cos = 1 - r2 / (n * (n - 1)) * cos
        sin = 1 - r2 / ((n + 1) * n) * sin
    sin = r * sin
    q = quadrant.astype(np.int64) % 4
    return (np.choose(q, [cos, -sin, -cos, sin]), np.choose(q, [sin, cos, -sin, -cos]))


def _images(x):
    x = np.asarray(x)
    if x.ndim not in (3, 4) or x.dtype.kind != "f":
        raise ValueError(f"transforms take float images (N, H, W) or (N, C, H, W), got {x.dtype} {x.shape}")
    return x


def sample(images, rows, cols, fill=0.0):
    """Bilinear samples of each image at real coordinates ``rows``, ``cols`` (N, Ho, Wo), ``fill``
    outside it: ``out[n, ..., i, j] = images[n, ..., rows[n, i, j], cols[n, i, j]]``."""
    images = _images(images)
    n, h, w = images.shape[0], images.shape[-2], images.shape[-1]
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = (rows - r0).astype(images.dtype), (cols - c0).astype(images.dtype)
    flat = images.reshape(n, -1, h * w)
    out = 0
    for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        r, c = (r0 + dr).astype(np.int64), (c0 + dc).astype(np.int64)
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        index = (np.clip(r, 0, h - 1) * w + np.clip(c, 0, w - 1)).reshape(n, 1, -1)
        values = np.take_along_axis(flat, np.broadcast_to(index, (n, flat.shape[1], index.shape[2])), axis=2)
        values = np.where(inside.reshape(n, 1, -1), values, images.dtype.type(fill))
        out = out + weight.reshape(n, 1, -1) * values
    return out.reshape(images.shape[:-2] + rows.shape[1:]).astype(images.dtype)


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, images):
        for t in self.transforms:
            images = t(images)
        return images

    def __repr__(self):
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"


class RandomAffine:
    """Rotate by an angle in ``degrees`` (counter-clockwise positive; a number d means [-d, d]),
    shift by up to ``translate = (a, b)`` of the width and height, scale by a factor in
    ``scale = (lo, hi)``, about the centre; as ``torchvision.transforms.RandomAffine``."""

    def __init__(self, degrees, translate=None, scale=None, fill=0.0):
        self.degrees = _range(degrees, "degrees")
        if translate is not None and not all(0 <= t <= 1 for t in translate):
            raise ValueError(f"translate fractions must lie in [0, 1], got {translate!r}")
        if scale is not None and not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be an ordered pair of positive factors, got {scale!r}")
        self.translate, self.scale, self.fill = translate, scale, fill

    def __call__(self, images):
        images = _images(images)
        n, h, w = images.shape[0], images.shape[-2], images.shape[-1]
        cos, sin = cos_sin(_uniform(*self.degrees, n))
        tx, ty = ((_uniform(-self.translate[0] * w, self.translate[0] * w, n),
                   _uniform(-self.translate[1] * h, self.translate[1] * h, n)) if self.translate else (0.0, 0.0))
        s = _uniform(*self.scale, n) if self.scale else np.ones(n)
        # output pixel (i, j) shows the input at the inverse map: undo the shift, then the rotation and scale
        ci, cj = (h - 1) / 2, (w - 1) / 2
        i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        x = (j[None] - cj - np.reshape(tx, (-1, 1, 1))) / s[:, None, None]     # right
        y = (ci - i[None] + np.reshape(ty, (-1, 1, 1))) / s[:, None, None]     # up (ty > 0 moves content down)
        cos, sin = cos[:, None, None], sin[:, None, None]
        cols = cj + cos * x + sin * y
        rows = ci - (-sin * x + cos * y)
        return sample(images, rows, cols, self.fill)

    def __repr__(self):
        return f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale})"


class RandomRotation(RandomAffine):
    def __init__(self, degrees, fill=0.0):
        super().__init__(degrees, fill=fill)


class RandomShift:
    """Shift each image by a whole number of pixels, up to ``max_shift`` each way, zeros coming in:
    the cheapest label-preserving jitter for centred digits."""

    def __init__(self, max_shift):
        self.max_shift = check_int("max_shift", max_shift, 0)

    def __call__(self, images):
        images = _images(images)
        n, h, w = images.shape[0], images.shape[-2], images.shape[-1]
        m = self.max_shift
        dr, dc = get_rng().integers(-m, m + 1, (2, n))
        padded = np.zeros(images.shape[:-2] + (h + 2 * m, w + 2 * m), images.dtype)
        padded[..., m:m + h, m:m + w] = images
        out = np.empty_like(images)
        for k in range(n):   # one slice per image
            out[k] = padded[k, ..., m - dr[k]:m - dr[k] + h, m - dc[k]:m - dc[k] + w]
        return out

    def __repr__(self):
        return f"RandomShift({self.max_shift})"


class RandomResizedCrop:
    """Crop a random box (area fraction in ``scale``, aspect ratio w/h in ``ratio``, log-uniform)
    and resize it to ``size`` (bilinear), as ``torchvision.transforms.RandomResizedCrop``."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if not (0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f"scale {scale!r} must be ordered in (0, 1] and ratio {ratio!r} ordered and positive")
        self.scale, self.ratio = scale, ratio

    def __call__(self, images):
        images = _images(images)
        n, h, w = images.shape[0], images.shape[-2], images.shape[-1]
        area = _uniform(*self.scale, n) * h * w
        aspect = _log_uniform(*self.ratio, n)
        bw, bh = np.minimum(np.sqrt(area * aspect), w), np.minimum(np.sqrt(area / aspect), h)
        top, left = _uniform(0, 1, n) * (h - bh), _uniform(0, 1, n) * (w - bw)
        oh, ow = self.size
        # pixel centres of the output spread over the box
        rows = top[:, None, None] + (np.arange(oh)[None, :, None] + 0.5) * (bh / oh)[:, None, None] - 0.5
        cols = left[:, None, None] + (np.arange(ow)[None, None, :] + 0.5) * (bw / ow)[:, None, None] - 0.5
        return sample(images, np.broadcast_to(rows, (n, oh, ow)), np.broadcast_to(cols, (n, oh, ow)))

    def __repr__(self):
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class GaussianNoise:
    """``x + N(mean, sigma^2)`` per pixel, clipped to [0, 1] if ``clip`` (torchvision v2's)."""

    def __init__(self, mean=0.0, sigma=0.1, clip=True):
        if sigma < 0:
            raise ValueError(f"sigma must be non-negative, got {sigma!r}")
        self.mean, self.sigma, self.clip = mean, sigma, clip

    def __call__(self, images):
        images = _images(images)
        out = images + (self.mean + self.sigma * get_rng().standard_normal(images.shape)).astype(images.dtype)
        return np.clip(out, 0, 1) if self.clip else out

    def __repr__(self):
        return f"GaussianNoise(mean={self.mean}, sigma={self.sigma}, clip={self.clip})"


class RandomErasing:
    """With probability ``p``, set a random box (area fraction in ``scale``, aspect ratio in
    ``ratio``) to ``value``; as ``torchvision.transforms.RandomErasing``."""

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
        if not 0 <= p <= 1:
            raise ValueError(f"p must lie in [0, 1], got {p!r}")
        self.p, self.scale, self.ratio, self.value = p, scale, ratio, value

    def __call__(self, images):
        images = _images(images)
        n, h, w = images.shape[0], images.shape[-2], images.shape[-1]
        erase = _uniform(0, 1, n) < self.p
        area = _uniform(*self.scale, n) * h * w
        aspect = _log_uniform(*self.ratio, n)
        bh = np.clip(np.round(np.sqrt(area / aspect)), 1, h).astype(np.int64)
        bw = np.clip(np.round(np.sqrt(area * aspect)), 1, w).astype(np.int64)
        top = (_uniform(0, 1, n) * (h - bh + 1)).astype(np.int64)
        left = (_uniform(0, 1, n) * (w - bw + 1)).astype(np.int64)
        i, j = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
        box = ((i >= top[:, None, None]) & (i < (top + bh)[:, None, None])
               & (j >= left[:, None, None]) & (j < (left + bw)[:, None, None]) & erase[:, None, None])
        box = box.reshape((n,) + (1,) * (images.ndim - 3) + (h, w))
        return np.where(box, images.dtype.type(self.value), images)

    def __repr__(self):
        return f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, value={self.value})"


class Augment:
    """A ``DataLoader`` batch transform: reshape the batch's X to ``(N,) + shape``, apply
    ``transform``, and flatten back; labels pass through."""

    def __init__(self, transform, shape):
        self.transform, self.shape = transform, tuple(shape)

    def __call__(self, X, y):
        data = X.data if isinstance(X, Tensor) else np.asarray(X)
        out = self.transform(data.reshape((len(data),) + self.shape)).reshape(data.shape)
        return tensor(out), y

    def __repr__(self):
        return f"Augment({self.transform!r}, shape={self.shape})"
