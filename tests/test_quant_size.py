"""quant.size: exact bytes of float32, b-bit, k-means and CSR + int8 models, counted by hand."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn, prune, quant
from minitorch_compress.quant import kmeans, size

WEIGHTS, BIASES = 784 * 100 + 100 * 10, 100 + 10


def mlp():
    mc.manual_seed(0)
    return nn.Sequential(quant.QuantStub(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10), quant.DeQuantStub())


def converted(model, qconfig):
    model.qconfig = qconfig
    prepared = quant.prepare(model)
    prepared(mc.rand(8, 784))
    return quant.convert(prepared)


def test_code_bits_and_packing():
    assert [size.code_bits(lo, hi) for lo, hi in [(-128, 127), (0, 255), (-8, 7), (-4, 3), (-32, 31), (0, 1)]] == [
        8, 8, 4, 3, 6, 1]
    assert size.packed_bytes(10, 3) == 4 and size.packed_bytes(8, 4) == 4 and size.packed_bytes(0, 8) == 0


def test_float32_model():
    assert quant.model_size_bytes(mlp()) == 4 * (WEIGHTS + BIASES) == 318_040


def test_int8_model_per_tensor_and_per_channel():
    qparams = 4 + 1  # a float32 scale and a 1-byte zero point
    # weights 1 byte each, a weight qparam pair and an output pair per layer, float32 biases, the input pair
    expected = WEIGHTS + 2 * qparams + 4 * BIASES + 2 * qparams + qparams
    assert quant.model_size_bytes(converted(mlp(), quant.default_qconfig)) == expected == 79_865
    per_channel = converted(mlp(), quant.default_per_channel_qconfig)
    assert quant.model_size_bytes(per_channel) == expected - 2 * qparams + (100 + 10) * qparams == 80_405


def test_4_bit_model_packs_two_codes_per_byte():
    qmodel = converted(mlp(), quant.qconfig_for_bits(4, 4))
    breakdown = dict(quant.size_breakdown(qmodel))
    assert breakdown["1.weight"] == 784 * 100 // 2 and breakdown["3.weight"] == 100 * 10 // 2
    assert quant.model_size_bytes(qmodel) == 79_865 - WEIGHTS // 2


def test_kmeans_model_counts_indices_and_codebook():
    model = mlp()
    for layer in (model[1], model[3]):
        kmeans.kmeans_quantize(layer, "weight", bits=4)
    # 4-bit indices, 16 float32 centroids per layer, float32 biases
    assert quant.model_size_bytes(model) == WEIGHTS // 2 + 2 * 16 * 4 + 4 * BIASES == 40_268


def test_pruned_int8_in_csr():
    model = mlp()
    prune.l1_unstructured(model[1], "weight", amount=0.9)
    prune.l1_unstructured(model[3], "weight", amount=0.5)
    nnz1, nnz3 = 7840, 500
    # float32 CSR: 4-byte values and int32 column indices, rows + 1 int32 row pointers
    float_csr = 8 * (nnz1 + nnz3) + 4 * (101 + 11) + 4 * BIASES
    assert quant.model_size_bytes(model, "csr") == float_csr
    assert quant.model_size_bytes(model) == 318_040  # dense storage keeps the zeros
    qmodel = converted(model, quant.default_qconfig)
    int8_csr = (1 + 4) * (nnz1 + nnz3) + 4 * (101 + 11) + 4 * BIASES + 5 * 5
    assert quant.model_size_bytes(qmodel, "csr") == int8_csr
    with pytest.raises(ValueError, match="'coo'"):
        quant.model_size_bytes(qmodel, "coo")


def test_sparse_kmeans_stores_indices_in_csr():
    layer = nn.Linear(4, 2)
    layer.weight.data[...] = np.array([[0.0, 1.0, 0.0, 3.0], [2.0, 0.0, 0.0, 4.0]])
    kmeans.kmeans_quantize(layer, "weight", bits=1, sparse=True)
    # 4 one-bit indices (1 byte) + 4 column indices + 3 row pointers; codebook 2 floats; bias 2 floats
    assert quant.model_size_bytes(layer) == 1 + 4 * 4 + 3 * 4 + 2 * 4 + 2 * 4
