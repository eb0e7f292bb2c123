"""ALBERT-style cross-layer parameter sharing."""
import copy

import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import metrics, nn
from minitorch_compress.sharing import SharedLayers


def block():
    return nn.Sequential(nn.Linear(6, 6), nn.Tanh())


def test_layers_map_to_groups_as_in_albert():
    mc.manual_seed(0)
    assert [SharedLayers(block, 6, 1).block_of(i) for i in range(6)] == [0] * 6
    assert [SharedLayers(block, 6, 2).block_of(i) for i in range(6)] == [0, 0, 0, 1, 1, 1]
    assert [SharedLayers(block, 6, 3).block_of(i) for i in range(6)] == [0, 0, 1, 1, 2, 2]
    assert [SharedLayers(block, 6, 6).block_of(i) for i in range(6)] == [0, 1, 2, 3, 4, 5]


def test_parameter_count_shrinks_by_layers_over_groups():
    mc.manual_seed(0)
    per_block = 6 * 6 + 6
    for groups in (1, 2, 3, 6):
        assert metrics.count_parameters(SharedLayers(block, 6, groups)) == groups * per_block


def test_forward_applies_the_shared_block_at_every_layer():
    mc.manual_seed(0)
    shared = SharedLayers(block, 4, 2)
    x = mc.tensor(np.random.default_rng(0).standard_normal((3, 6)))
    expected = x.data
    for b in (0, 0, 1, 1):
        layer = shared.blocks[b][0]
        expected = np.tanh(expected @ layer.weight.data.T + layer.bias.data)
    np.testing.assert_allclose(shared(x).data, expected, rtol=1e-5)


def test_shared_gradient_is_the_sum_over_the_layers_using_it():
    mc.manual_seed(0)
    shared = SharedLayers(block, 3, 1).double()
    untied = nn.Sequential(*(copy.deepcopy(shared.blocks[0]) for _ in range(3)))
    x = mc.tensor(np.random.default_rng(1).standard_normal((5, 6)), dtype=np.float64)
    (shared(x) ** 2).sum().backward()
    (untied(x) ** 2).sum().backward()
    np.testing.assert_allclose(shared.blocks[0][0].weight.grad, sum(untied[i][0].weight.grad for i in range(3)),
                               rtol=1e-10)


@pytest.mark.parametrize("layers, groups, message", [(0, 1, "num_layers must be a positive int, got 0"),
                                                     (4, 0, "num_groups must be a positive int, got 0"),
                                                     (2, 3, "num_groups=3 cannot exceed num_layers=2"),
                                                     (2.0, 1, "num_layers must be a positive int, got 2.0")])
def test_shared_layers_reject_bad_sizes(layers, groups, message):
    with pytest.raises(ValueError, match=message):
        SharedLayers(block, layers, groups)
