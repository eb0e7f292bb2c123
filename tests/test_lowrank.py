"""Low-rank factorisation of Linear layers by truncated SVD."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import metrics, nn
from minitorch_compress.lowrank import energy_rank, factorize, factorize_model


def layer(out_features=12, in_features=20, bias=True):
    mc.manual_seed(0)
    return nn.Linear(in_features, out_features, bias=bias)


def test_full_rank_factorisation_reproduces_the_layer():
    for bias in (True, False):
        dense = layer(bias=bias)
        x = mc.tensor(np.random.default_rng(0).standard_normal((7, 20)))
        two = factorize(dense, rank=12)
        assert [m.weight.shape for m in two] == [(12, 20), (12, 12)]
        np.testing.assert_allclose(two(x).data, dense(x).data, rtol=1e-4, atol=1e-5)


def test_truncation_error_is_the_discarded_singular_energy():
    dense = layer()
    s = np.linalg.svd(dense.weight.data.astype(np.float64), compute_uv=False)
    for rank in (1, 4, 9):
        two = factorize(dense, rank=rank)
        w_r = two[1].weight.data.astype(np.float64) @ two[0].weight.data
        error = np.sum((dense.weight.data - w_r) ** 2)
        assert error == pytest.approx(np.sum(s[rank:] ** 2), rel=1e-4)   # Eckart-Young
        np.testing.assert_array_equal(two[1].bias.data, dense.bias.data)


def test_energy_rank_is_the_smallest_rank_keeping_the_energy():
    s = np.array([3.0, 2.0, 1.0, 1.0])             # energies 9, 4, 1, 1 of 15
    assert [energy_rank(s, e) for e in (0.5, 0.6, 0.6001, 13 / 15, 0.9, 1.0)] == [1, 1, 2, 2, 3, 4]
    for energy in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"energy must be a finite number in \(0, 1\], got {energy!r}"):
            energy_rank(s, energy)


def test_factorize_model_replaces_only_layers_where_it_saves_weights():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 3))
    u = np.linalg.qr(np.random.default_rng(0).standard_normal((30, 30)))[0]
    v = np.linalg.qr(np.random.default_rng(1).standard_normal((40, 40)))[0]
    model[0].weight.data = (u[:, :5] * [5, 4, 3, 2, 1]) @ v[:, :5].T     # rank 5
    model[0].weight.data = model[0].weight.data.astype(np.float32)
    small, table = factorize_model(model, energy=0.999)
    assert isinstance(small[0], nn.Sequential) and isinstance(small[2], nn.Linear)
    assert table.column("rank") == [5, energy_rank(np.linalg.svd(model[2].weight.data, compute_uv=False), 0.999)]
    assert table.column("weights_after") == [5 * (40 + 30), 30 * 3]
    assert metrics.count_parameters(small) == 5 * 70 + 30 + 93
    x = mc.tensor(np.random.default_rng(2).standard_normal((4, 40)))
    assert metrics.flops(small, x)[0] == 5 * 70 + 90                           # (dense, nonzero) multiply-adds
    np.testing.assert_allclose(small(x).data, model(x).data, rtol=1e-4, atol=1e-5)
    assert model[0].weight.shape == (30, 40)                                   # the original is untouched


def test_factorize_rejects_bad_arguments():
    dense = layer()
    with pytest.raises(ValueError, match="exactly one of rank and energy"):
        factorize(dense)
    with pytest.raises(ValueError, match="exactly one of rank and energy"):
        factorize(dense, rank=2, energy=0.9)
    with pytest.raises(ValueError, match=r"rank \(weight shape \(12, 20\)\) must be an int from 1 to 12, got 13"):
        factorize(dense, rank=13)
    with pytest.raises(TypeError, match="expects an nn.Linear, got ReLU"):
        factorize(nn.ReLU(), rank=1)
