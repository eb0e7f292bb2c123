"""Weight sharing by k-means: each weight becomes one of 2^b shared values (Han, Mao & Dally, 2016,
"Deep Compression", Section 3).

The weights W of a layer are clustered into k = 2^b clusters (1-D k-means, Lloyd's algorithm,
centroids initialised linearly between min W and max W, which Han et al. found best because it
keeps the rare large weights). The layer then stores a b-bit cluster index per weight and a
codebook of k float32 centroids C::

    W_ij = C[I_ij]                                  (forward)
    dL/dC_k = sum over (i, j) with I_ij = k of dL/dW_ij   (backward: gradients summed per cluster)

so fine-tuning moves the shared values while the assignment stays fixed. Storage:
n * b bits + k * 32 bits instead of n * 32 bits.

Applied like a pruning method, with the pruning hook's mechanism (``prune.methods.ParameterHook``):
``kmeans_quantize(module, "weight", bits=4)`` replaces the parameter ``weight`` by the parameter
``weight_centroids`` and the buffer ``weight_indices``, and recomputes ``module.weight`` before
every forward. ``remove`` makes the shared weights a plain parameter again.
"""
import numpy as np

from ..autograd import Function
from ..nn import Parameter
from ..prune.methods import ParameterHook
from ..tensor import Tensor
from ..validation import check_int, check_positive


def kmeans_1d(values, k, max_iter=100):
    """Lloyd's k-means on a 1-D array with linear initialisation: (centroids float64 (k,), labels int64).

    Each step assigns every value to its nearest centroid (boundaries at midpoints, so a sorted
    search replaces n*k distances) and moves each centroid to the mean of its values; a cluster
    left empty keeps its centroid. Stops when no assignment changes.
    """
    x = np.asarray(values, np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("k-means needs at least one value")
    check_positive(k=k)
    centroids = np.linspace(x.min(), x.max(), k)
    labels = None
    for _ in range(max_iter):
        order = np.argsort(centroids, kind="stable")
        centroids = centroids[order]
        new_labels = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, x)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        sums = np.bincount(labels, weights=x, minlength=k)
        centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
    return centroids, labels


class _SharedWeights(Function):
    """W = C[I]; the gradient of centroid k is the sum of the gradients of the weights in cluster k."""

    @staticmethod
    def forward(ctx, centroids, indices, mask):
        ctx.save_for_backward(indices, mask, centroids.size)
        weight = centroids[indices]
        return weight if mask is None else weight * mask

    @staticmethod
    def backward(ctx, grad):
        indices, mask, k = ctx.saved_tensors
        g = grad if mask is None else grad * mask
        return np.bincount(indices.reshape(-1), weights=g.reshape(-1), minlength=k).astype(grad.dtype), None, None


class KMeansQuantization(ParameterHook):
    """Forward pre-hook that rebuilds ``module.<name>`` from its codebook and cluster indices."""
    STORED = ("_centroids", "_indices", "_mask")

    def __init__(self, name, bits, sparse):
        self._tensor_name, self.bits, self.sparse = name, bits, sparse

    @property
    def name(self):
        return self._tensor_name

    def compute_weight(self, module):
        centroids = getattr(module, self.name + "_centroids")
        indices = getattr(module, self.name + "_indices").data
        mask = getattr(module, self.name + "_mask").data if self.sparse else None
        return _SharedWeights.apply(centroids, indices, mask)

    @classmethod
    def apply(cls, module, name, bits, sparse=False, max_iter=100):
        check_int("bits", bits, 1, 16)
        if cls.find(module, name)[1] is not None:
            raise ValueError(f"{type(module).__name__}.{name} is already k-means quantized")
        param = dict(module.named_parameters(recurse=False)).get(name)
        if not isinstance(param, Parameter):
            raise ValueError(f"{type(module).__name__} has no parameter named {name!r}")
        w = param.data
        keep = w != 0 if sparse else np.ones(w.shape, bool)
        if not keep.any():
            raise ValueError(f"{type(module).__name__}.{name} has no nonzero weight to cluster")
        centroids, labels = kmeans_1d(w[keep], 2 ** bits, max_iter)
        indices = np.zeros(w.shape, np.uint8 if bits <= 8 else np.uint16)
        indices[keep] = labels
        method = cls(name, int(bits), sparse)
        delattr(module, name)
        module.register_parameter(name + "_centroids", Parameter(centroids.astype(w.dtype)))
        module.register_buffer(name + "_indices", Tensor(indices))
        if sparse:
            module.register_buffer(name + "_mask", Tensor(keep.astype(w.dtype)))
        method.register(module)
        return method


def kmeans_quantize(module, name="weight", bits=4, sparse=False, max_iter=100):
    """Share ``module.<name>`` among 2^bits values found by k-means; returns ``module``.

    With ``sparse=True`` (after pruning), only the nonzero weights are clustered and zeros stay
    zero, as Deep Compression does after its pruning stage.
    """
    KMeansQuantization.apply(module, name, bits, sparse, max_iter)
    return module


def is_kmeans_quantized(module):
    return bool(KMeansQuantization.hooks(module))


def remove(module, name="weight"):
    """Make the shared weights a plain parameter again (the values stay shared; the codebook goes)."""
    handle, method = KMeansQuantization.find(module, name)
    if method is None:
        raise ValueError(f"{type(module).__name__}.{name} is not k-means quantized")
    method.remove(module)
    handle.remove()
    return module
