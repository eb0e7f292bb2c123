"""Reproduced results on the course MLP (784-100-10) trained on MNIST-5k: what quantization costs."""
import copy

import pytest

import minitorch_compress as mc
from minitorch_compress import nn, optim, quant
from minitorch_compress.data import DataLoader, load_digits, load_mnist_5k
from minitorch_compress.quant import kmeans, sweep
from minitorch_compress.train import evaluate, fit


@pytest.fixture(scope="module")
def mnist():
    train, test = load_mnist_5k()
    # the training order comes from mc.manual_seed, so each run below is the same whatever ran before it
    return (DataLoader(train, 64, shuffle=True), DataLoader(train, 500), DataLoader(test, 1000))


@pytest.fixture(scope="module")
def trained(mnist):
    """The course MLP between quantization stubs, trained as the reference run (SGD 0.1, momentum 0.9, 10 epochs)."""
    train_loader, _, test_loader = mnist
    mc.manual_seed(0)
    model = nn.Sequential(quant.QuantStub(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10), quant.DeQuantStub())
    fit(model, train_loader, optim.SGD(model.parameters(), lr=0.1, momentum=0.9), epochs=10, progress=False)
    accuracy = evaluate(model, test_loader).accuracy
    assert accuracy > 0.92
    return model, accuracy


def test_int8_static_ptq_is_within_half_a_point_of_float(mnist, trained):
    _, calibration_loader, test_loader = mnist
    model, float_accuracy = trained
    model.qconfig = quant.default_qconfig
    qmodel = quant.quantize(model, sweep.calibrate, (calibration_loader,))
    assert type(qmodel[1]) is quant.nn.Linear
    assert evaluate(qmodel, test_loader).accuracy >= float_accuracy - 0.005


def test_qat_against_ptq_at_4_and_3_bits(mnist, trained):
    """The issue asks for QAT >= PTQ + 2 points at 4 bits. Not met on this MLP (reported to the lead):
    4-bit PTQ itself loses only about 1.5 points, and over 5 training seeds QAT gained 0.2 to 1.3
    points (mean 0.7; this seed: PTQ 92.1%, QAT 93.2%, float 93.0%). At 3 bits the gain was 0.7 to
    7.5 points (mean 5.1; this seed 84.1% -> 90.1%). So: QAT never worse at 4 bits, 2+ points at 3."""
    train_loader, calibration_loader, test_loader = mnist
    model, float_accuracy = trained
    results = {(r.bits, r.method): r.accuracy for r in sweep.bitwidth_sweep(
        model, train_loader, test_loader, calibration_loader, bits=(4, 3), granularities=("per_tensor",))}
    assert results[(4, "qat")] >= results[(4, "ptq")] and results[(4, "qat")] >= float_accuracy - 0.015
    assert results[(3, "ptq")] < float_accuracy - 0.05       # 3-bit weights and activations cost PTQ clearly...
    assert results[(3, "qat")] >= results[(3, "ptq")] + 0.02  # ...and training with fake quantization wins it back


def test_per_channel_rescues_2_bit_weights(mnist, trained):
    _, calibration_loader, test_loader = mnist
    model, _ = trained
    results = {r.granularity: r for r in sweep.bitwidth_sweep(
        model, calibration_loader, test_loader, bits=(2,), methods=("ptq",), activation_bits=8)}
    assert results["per_channel"].accuracy >= results["per_tensor"].accuracy + 0.05
    assert results["per_channel"].size_bytes > results["per_tensor"].size_bytes  # 5 bytes per extra scale


def test_kmeans_4_bit_after_centroid_fine_tuning_is_within_one_point(mnist, trained):
    train_loader, _, test_loader = mnist
    model, float_accuracy = trained
    shared = copy.deepcopy(model)
    for layer in (shared[1], shared[3]):
        kmeans.kmeans_quantize(layer, "weight", bits=4)
    centroids = [p for name, p in shared.named_parameters() if name.endswith("_centroids")]
    mc.manual_seed(0)
    fit(shared, train_loader, optim.SGD(centroids, lr=1e-4, momentum=0.9), epochs=1, progress=False)
    assert evaluate(shared, test_loader).accuracy >= float_accuracy - 0.01
    assert quant.model_size_bytes(shared) < quant.model_size_bytes(model) / 7.5


def test_int8_cnn_on_digits_is_within_one_point_of_float():
    """The small CNN of the engine tests, converted whole: int8 convolutions, pooling on the codes, int8 Linear."""
    mc.manual_seed(0)
    train, test = load_digits(flatten=False)
    model = nn.Sequential(quant.QuantStub(),
                          nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64, 10), quant.DeQuantStub())
    fit(model, DataLoader(train, 32, shuffle=True), optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        epochs=8, progress=False)
    test_loader = DataLoader(test, 360)
    float_accuracy = evaluate(model, test_loader).accuracy
    model.qconfig = quant.default_per_channel_qconfig
    qmodel = quant.quantize(model, sweep.calibrate, (DataLoader(train, 500),))
    assert [type(m).__name__ for m in qmodel][1:4] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert type(qmodel[1]) is quant.nn.Conv2d and type(qmodel[8]) is quant.nn.Linear
    assert float_accuracy >= 0.95 and evaluate(qmodel, test_loader).accuracy >= float_accuracy - 0.01
