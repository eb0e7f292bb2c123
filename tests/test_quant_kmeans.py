"""quant.kmeans: Deep Compression's weight sharing; gradients summed per cluster."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn, prune
from minitorch_compress.gradcheck import gradcheck
from minitorch_compress.quant import kmeans


def test_kmeans_1d_by_hand():
    # linear init [0, 12]; midpoint 6 splits {0, 1, 2} from {10, 11, 12}; the means 1 and 11 are stable
    centroids, labels = kmeans.kmeans_1d([0, 1, 2, 10, 11, 12], 2)
    np.testing.assert_array_equal(centroids, [1, 11])
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1])
    # linear init [0, 2.5, 5]: nothing is near 2.5, so that cluster stays empty and keeps its centroid
    centroids, labels = kmeans.kmeans_1d([0.0, 0.1, 0.2, 1.0, 1.1, 5.0], 3)
    np.testing.assert_allclose(centroids, [0.48, 2.5, 5.0])
    np.testing.assert_array_equal(labels, [0, 0, 0, 0, 0, 2])


def test_kmeans_iterates_to_a_fixed_point():
    values = np.random.default_rng(0).standard_normal(2000)
    centroids, labels = kmeans.kmeans_1d(values, 8)
    nearest = np.abs(values[:, None] - centroids[None, :]).argmin(axis=1)
    np.testing.assert_array_equal(labels, nearest)  # every value sits at its nearest centroid
    for k in range(8):
        assert centroids[k] == pytest.approx(values[labels == k].mean())  # every centroid is its cluster's mean


def test_layer_shares_2_to_the_bits_values():
    mc.manual_seed(0)
    layer = kmeans.kmeans_quantize(nn.Linear(20, 10), "weight", bits=3)
    assert [n for n, _ in layer.named_parameters()] == ["bias", "weight_centroids"]
    assert layer.weight_centroids.shape == (8,) and layer.weight_indices.dtype == np.uint8
    assert len(np.unique(layer.weight.data)) <= 8 and kmeans.is_kmeans_quantized(layer)
    np.testing.assert_array_equal(layer.weight.data, layer.weight_centroids.data[layer.weight_indices.data])
    with pytest.raises(ValueError, match="already"):
        kmeans.kmeans_quantize(layer, "weight", 3)
    with pytest.raises(ValueError, match="'kernel'"):
        kmeans.kmeans_quantize(nn.Linear(2, 2), "kernel", 3)
    with pytest.raises(ValueError, match="bits must be an int from 1 to 16, got 0"):
        kmeans.kmeans_quantize(nn.Linear(2, 2), "weight", 0)
    with pytest.raises(ValueError, match="bits must be an int from 1 to 16, got True"):
        kmeans.kmeans_quantize(nn.Linear(2, 2), "weight", True)
    with pytest.raises(ValueError, match="k must be a positive int, got 0"):
        kmeans.kmeans_1d([1.0, 2.0], 0)


def test_centroid_gradient_is_the_sum_over_each_cluster():
    mc.manual_seed(0)
    layer = kmeans.kmeans_quantize(nn.Linear(5, 4), "weight", bits=2).double()
    x = mc.randn(3, 5, dtype=np.float64)
    gradcheck(lambda c: layer(x), [layer.weight_centroids])  # against finite differences in float64
    layer.zero_grad()
    layer(x).sum().backward()
    weight_grad = np.ones((3, 4)).T @ x.data  # d sum(x W^T + b) / dW
    expected = np.bincount(layer.weight_indices.data.ravel(), weights=weight_grad.ravel(), minlength=4)
    np.testing.assert_allclose(layer.weight_centroids.grad, expected)


def test_fine_tuning_moves_the_shared_values_only():
    mc.manual_seed(0)
    layer = kmeans.kmeans_quantize(nn.Linear(8, 4), "weight", bits=2)
    indices = layer.weight_indices.data.copy()
    optimizer = mc.optim.SGD([layer.weight_centroids], lr=0.1)
    before = layer.weight_centroids.data.copy()
    layer(mc.randn(6, 8)).sum().backward()
    optimizer.step()
    layer(mc.randn(1, 8))
    assert not np.array_equal(layer.weight_centroids.data, before)
    np.testing.assert_array_equal(layer.weight.data, layer.weight_centroids.data[indices])


def test_sparse_clusters_only_the_nonzeros():
    layer = nn.Linear(4, 2)
    layer.weight.data[...] = [[0.0, 1.0, 0.0, 3.0], [2.0, 0.0, 0.0, 4.0]]
    kmeans.kmeans_quantize(layer, "weight", bits=1, sparse=True)
    np.testing.assert_array_equal(layer.weight.data, [[0.0, 1.5, 0.0, 3.5], [1.5, 0.0, 0.0, 3.5]])
    layer(mc.randn(3, 4)).sum().backward()
    assert layer.weight_centroids.grad.shape == (2,)
    layer.weight_centroids.data += 1.0
    layer(mc.randn(1, 4))
    assert (layer.weight.data[[0, 0, 1], [0, 2, 1]] == 0).all()  # zeros stay zero


def test_remove_makes_a_plain_parameter_of_the_shared_weights():
    mc.manual_seed(0)
    layer = kmeans.kmeans_quantize(nn.Linear(6, 3), "weight", bits=2)
    shared = layer.weight.data.copy()
    kmeans.remove(layer, "weight")
    assert [n for n, _ in layer.named_parameters()] == ["bias", "weight"] and not list(layer.forward_pre_hooks())
    assert not kmeans.is_kmeans_quantized(layer) and not hasattr(layer, "weight_indices")
    np.testing.assert_array_equal(layer.weight.data, shared)
    with pytest.raises(ValueError, match="not k-means"):
        kmeans.remove(layer, "weight")


def test_kmeans_uses_the_pruning_hook_mechanism_and_each_finds_only_its_own():
    mc.manual_seed(0)
    layer = nn.Linear(6, 3)
    prune.l1_unstructured(layer, "bias", 1)
    kmeans.kmeans_quantize(layer, "weight", bits=2)
    handle, hook = kmeans.KMeansQuantization.find(layer, "weight")
    assert isinstance(hook, prune.methods.ParameterHook) and kmeans.KMeansQuantization.find(layer, "bias") == (None, None)
    assert prune.methods.BasePruningMethod.find(layer, "weight") == (None, None)
    assert [n for n, _, _ in prune.pruned_parameters(layer)] == ["bias"]
    kmeans.remove(layer, "weight")
    prune.remove(layer, "bias")
    assert sorted(n for n, _ in layer.named_parameters()) == ["bias", "weight"] and not list(layer.forward_pre_hooks())
