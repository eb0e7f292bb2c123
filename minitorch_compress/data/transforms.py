"""Label-preserving image augmentations for batches of digits, with torchvision's names.

Each transform maps a float array of images, ``(N, H, W)`` or ``(N, C, H, W)``, to a new array of
the same shape and dtype, drawing its random parameters once per image from the package generator
(``mc.manual_seed``): a whole batch at once, never a Python loop over pixels.
``Compose`` chains them; ``Augment(transform, shape)`` makes one a ``DataLoader`` batch transform for
flattened images::

    jitter = transforms.Compose([transforms.RandomAffine(degrees=10, translate=(0.1, 0.1)),
                                 transforms.GaussianNoise(sigma=0.05)])
    loader = DataLoader(train_set, batch_size=64, shuffle=True, transform=Augment(jitter, (28, 28)))

Geometric transforms move pixels by an affine map about the image centre and sample the input
bilinearly, with ``fill`` outside it, in one pass of a Numba kernel (``affine_sample``; the tests
compare it with the whole-array NumPy ``affine_sample_reference``, and ``benchmarks/augment.py``
times both in an epoch of training). Rotations use only +, -, *, / (a polynomial ``cos`` and
``sin``) and aspect ratios the engine's own ``exp``/``log``, so augmented batches have the same
bits on every CPU, as the rest of the engine.
"""
import math
import numbers

from numba import njit, prange
import numpy as np

from ..kernels import exp, log, threads
from ..random import get_rng
from ..tensor import Tensor, tensor
from ..validation import check_int, check_number


def _uniform(low, high, n):
    return get_rng().uniform(low, high, n)


def _log_uniform(low, high, n):
    """Ratios drawn uniformly in log scale (exp and log that give the same bits on every CPU)."""
    bounds = log(np.array([low, high], np.float64))
    return exp(_uniform(bounds[0], bounds[1], n))


def _range(value, name, around=0.0):
    """(low, high) from a number v (around - v, around + v) or a pair."""
    if isinstance(value, numbers.Real):
        value = check_number(name, value, low=0)
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


@njit(cache=True, parallel=True)
def _affine_sample(planes, matrix, fill, out):
    n, channels, h, w = planes.shape
    one = planes.dtype.type(1)
    for k in prange(n):
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                r = matrix[k, 0, 0] * i + matrix[k, 0, 1] * j + matrix[k, 0, 2]
                c = matrix[k, 1, 0] * i + matrix[k, 1, 1] * j + matrix[k, 1, 2]
                r0, c0 = np.floor(r), np.floor(c)
                fr, fc = planes.dtype.type(r - r0), planes.dtype.type(c - c0)
                inside_top, inside_bottom = 0 <= r0 < h, 0 <= r0 + 1 < h
                inside_left, inside_right = 0 <= c0 < w, 0 <= c0 + 1 < w
                ri, ci = int(min(max(r0, -1.0), h)), int(min(max(c0, -1.0), w))
                for ch in range(channels):
                    v00 = planes[k, ch, ri, ci] if inside_top and inside_left else fill
                    v01 = planes[k, ch, ri, ci + 1] if inside_top and inside_right else fill
                    v10 = planes[k, ch, ri + 1, ci] if inside_bottom and inside_left else fill
                    v11 = planes[k, ch, ri + 1, ci + 1] if inside_bottom and inside_right else fill
                    out[k, ch, i, j] = ((one - fr) * (one - fc) * v00 + (one - fr) * fc * v01
                                        + fr * (one - fc) * v10 + fr * fc * v11)


NS_PER_PIXEL = 5   # the kernel's cost per output pixel on one core, to decide whether to use two


def affine_sample(images, matrix, size=None, fill=0.0):
    """Bilinear samples of each image at the real coordinates an affine map gives each output pixel
    ``(i, j)`` of ``size`` (default: the input's): ``row = m00 i + m01 j + m02``, ``col = m10 i +
    m11 j + m12`` for ``matrix[n] = m`` (2, 3); ``fill`` outside the image. One pass of a Numba
    kernel, each output pixel computed by one thread: the same bits as ``affine_sample_reference``."""
    images = _images(images)
    n, h, w = images.shape[0], images.shape[-2], images.shape[-1]
    matrix = np.ascontiguousarray(matrix, np.float64)
    if matrix.shape != (n, 2, 3):
        raise ValueError(f"matrix must have shape ({n}, 2, 3) for {n} images, got {matrix.shape}")
    ho, wo = (h, w) if size is None else size
    planes = np.ascontiguousarray(images).reshape(n, -1, h, w)
    out = np.empty(planes.shape[:2] + (ho, wo), images.dtype)
    threads.run(_affine_sample, out.size * NS_PER_PIXEL, planes, matrix, images.dtype.type(fill), out)
    return out.reshape(images.shape[:-2] + (ho, wo))


def affine_sample_reference(images, matrix, size=None, fill=0.0):
    """``affine_sample`` in whole-array NumPy operations (what the tests compare the kernel with)."""
    images = _images(images)
    n, h, w = images.shape[0], images.shape[-2], images.shape[-1]
    ho, wo = (h, w) if size is None else size
    m = np.asarray(matrix, np.float64)[:, :, :, None, None]
    i, j = np.arange(ho)[:, None], np.arange(wo)[None, :]
    rows, cols = m[:, 0, 0] * i + m[:, 0, 1] * j + m[:, 0, 2], m[:, 1, 0] * i + m[:, 1, 1] * j + m[:, 1, 2]
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = (rows - r0).astype(images.dtype), (cols - c0).astype(images.dtype)
    planes = images.reshape(n, -1, h * w)
    out = None
    for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        r, c = r0 + dr, c0 + dc
        inside = ((r >= 0) & (r < h) & (c >= 0) & (c < w)).reshape(n, 1, -1)
        index = (np.clip(r, 0, h - 1) * w + np.clip(c, 0, w - 1)).astype(np.int64).reshape(n, 1, -1)
        values = np.take_along_axis(planes, np.broadcast_to(index, (n, planes.shape[1], index.shape[2])), axis=2)
        term = weight.reshape(n, 1, -1) * np.where(inside, values, images.dtype.type(fill))
        out = term if out is None else out + term
    return out.reshape(images.shape[:-2] + (ho, wo))


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
        # output pixel (i, j) shows the input at the inverse map: undo the shift, then the rotation
        # and scale about the centre (ty > 0 moves content down): row = ci - (-sin x + cos y),
        # col = cj + cos x + sin y, with x = (j - cj - tx) / s to the right, y = (ci - i + ty) / s up
        ci, cj = (h - 1) / 2, (w - 1) / 2
        u, v = cj + tx, ci + ty
        matrix = np.empty((n, 2, 3))
        matrix[:, 0] = np.stack([cos / s, sin / s, ci - (sin * u + cos * v) / s], axis=1)
        matrix[:, 1] = np.stack([-sin / s, cos / s, cj - (cos * u - sin * v) / s], axis=1)
        return affine_sample(images, matrix, fill=self.fill)

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
        # output pixel centres spread over the box: row = top + (i + 0.5) bh / oh - 0.5
        matrix = np.zeros((n, 2, 3))
        matrix[:, 0, 0], matrix[:, 0, 2] = bh / oh, top + 0.5 * bh / oh - 0.5
        matrix[:, 1, 1], matrix[:, 1, 2] = bw / ow, left + 0.5 * bw / ow - 0.5
        return affine_sample(images, matrix, size=(oh, ow))

    def __repr__(self):
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class GaussianNoise:
    """``x + N(mean, sigma^2)`` per pixel, clipped to [0, 1] if ``clip`` (torchvision v2's)."""

    def __init__(self, mean=0.0, sigma=0.1, clip=True):
        self.mean, self.sigma, self.clip = check_number("mean", mean), check_number("sigma", sigma, low=0), clip

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
        self.p, self.scale, self.ratio, self.value = check_number("p", p, 0, 1), scale, ratio, value

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
