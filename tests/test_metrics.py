"""Metrics on a hand-computed two-layer example (ShrinkBench's definitions)."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import metrics, nn, prune


def two_layer(pruned_by_mask):
    """Linear(3, 2) -> ReLU -> Linear(2, 1) with 2 of 6 and 1 of 2 weights zero; biases nonzero."""
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    model[0].weight.data[...] = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    model[0].bias.data[...] = [0.5, -0.5]
    model[2].weight.data[...] = [[7.0, 8.0]]
    model[2].bias.data[...] = [1.0]
    zero_first, zero_second = np.array([[0, 1, 1], [1, 0, 1]]), np.array([[1, 0]])
    if pruned_by_mask:
        prune.custom_from_mask(model[0], "weight", zero_first)
        prune.custom_from_mask(model[2], "weight", zero_second)
    else:
        model[0].weight.data[...] *= zero_first
        model[2].weight.data[...] *= zero_second
    return model


@pytest.mark.parametrize("pruned_by_mask", [False, True])
def test_counts_and_compression_ratio(pruned_by_mask):
    model = two_layer(pruned_by_mask)
    assert metrics.count_parameters(model) == 6 + 2 + 2 + 1          # masks are not parameters
    assert metrics.count_nonzero(model) == 4 + 2 + 1 + 1
    assert metrics.compression_ratio(model) == 11 / 8
    assert sorted(metrics.parameters(model)) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    np.testing.assert_array_equal(metrics.parameters(model)["0.weight"], [[0, 2, 3], [4, 0, 6]])


@pytest.mark.parametrize("pruned_by_mask", [False, True])
def test_flops_and_theoretical_speedup(pruned_by_mask):
    model = two_layer(pruned_by_mask)
    x = mc.tensor(np.ones((4, 3), np.float32))
    table = metrics.layer_flops(model, x)
    assert table.column("layer") == ["0", "2"]
    assert table.column("input") == [(3,), (2,)] and table.column("output") == [(2,), (1,)]
    assert table.column("dense_flops") == [6, 2] and table.column("nonzero_flops") == [4, 1]
    assert metrics.flops(model, x) == (8, 5)
    assert metrics.flops(model, x[:1]) == (8, 5)                       # per example
    assert metrics.theoretical_speedup(model, x) == 8 / 5


def test_conv_flops_use_the_output_size_seen():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = mc.randn(2, 2, 5, 5)
    assert metrics.flops(conv, x)[0] == 2 * 3 * 9 * 5 * 5
    strided = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    prune.l1_unstructured(strided, "weight", 27)                       # half of the 54 weights
    assert metrics.flops(strided, x) == (2 * 3 * 9 * 3 * 3, 27 * 3 * 3)
    assert metrics.layer_flops(strided, x)[0].layer == "Conv2d"         # a bare layer is named by type


@pytest.mark.parametrize("pruned_by_mask", [False, True])
def test_model_size_dense_and_csr(pruned_by_mask):
    model = two_layer(pruned_by_mask)
    assert metrics.model_size(model) == 11 * 4
    # CSR: 4 values + 4 int32 indices + 3 row pointers; 1 + 1 + 2; biases dense (3 floats)
    assert metrics.model_size(model, "csr") == (4 * 8 + 3 * 4) + (1 * 8 + 2 * 4) + 3 * 4


def test_size_after_thinning():
    model = two_layer(False)
    model[2].weight.data[...] = [[0.0, 8.0]]                           # layer 2 reads only unit 1
    small = prune.thin(model)
    assert metrics.model_size(small) == (3 + 1 + 1 + 1) * 4             # Linear(3, 1) and Linear(1, 1)


def test_sparsity_table_has_a_total_row():
    table = metrics.sparsity_table(two_layer(True))
    assert [r.parameter for r in table] == ["0.bias", "0.weight", "2.bias", "2.weight", "total"]
    assert table[1].shape == "2x3" and table[1].params == 6 and table[1].nonzero == 4
    assert table[-1].params == 11 and table[-1].nonzero == 8 and table[-1].sparsity == pytest.approx(3 / 11)
    text = repr(table)
    assert "33.3%" in text and "27.3%" in text and text.splitlines()[-1].startswith("total")


def test_latency_runs_warmup_plus_repeat_calls_in_eval_mode():
    calls = []
    model = nn.Sequential(nn.Dropout(0.5))
    model.forward = lambda x: calls.append(model.training) or x
    timing = metrics.latency(model, mc.ones(2), repeat=5, warmup=2)
    assert calls == [False] * 7 and model.training
    assert timing.repeat == 5 and timing.median >= timing.best > 0


def test_errors():
    empty = nn.Linear(2, 1)
    empty.weight.data[...] = 0
    empty.bias.data[...] = 0
    with pytest.raises(ValueError, match="no nonzero"):
        metrics.compression_ratio(empty)
    with pytest.raises(ValueError, match="'coo'"):
        metrics.model_size(empty, "coo")
    with pytest.raises(TypeError, match="Module"):
        metrics.count_parameters([1, 2])
    with pytest.raises(ValueError, match="repeat must be a positive int, got 0"):
        metrics.latency(empty, mc.ones(1, 2), repeat=0)
    with pytest.raises(ValueError, match="warmup must be a non-negative int, got True"):
        metrics.latency(empty, mc.ones(1, 2), warmup=True)
    assert metrics.latency(empty, mc.ones(1, 2), repeat=np.int64(2), warmup=np.uint8(0)).median >= 0


def test_table_rejects_column_names_that_cannot_name_a_field():
    from minitorch_compress.metrics import Table
    with pytest.raises(ValueError, match="'test acc'"):
        Table(["layer", "test acc"], [("fc1", 0.9)])
