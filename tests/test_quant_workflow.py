"""quant workflow: qconfig propagation, prepare/convert, QAT, quantize_dynamic, and their errors."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn, quant


def mlp():
    mc.manual_seed(0)
    return nn.Sequential(quant.QuantStub(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3), quant.DeQuantStub())


def calibrate(model, batches=3):
    for _ in range(batches):
        model(mc.randn(16, 6))
    return model


def test_prepare_observes_a_copy():
    model = mlp()
    model.qconfig = quant.default_qconfig
    prepared = quant.prepare(model)
    observed = [name for name, m in prepared.named_modules() if "activation_post_process" in dict(m.named_children())]
    assert observed == ["0", "1", "3"]  # the QuantStub and the Linear layers
    assert isinstance(prepared[1].activation_post_process, quant.MinMaxObserver)
    assert not any("activation_post_process" in dict(m.named_children()) for m in model.modules())
    calibrate(prepared)
    assert prepared[1].activation_post_process.calibrated and not hasattr(model[1], "activation_post_process")


def test_convert_gives_an_integer_model():
    model = mlp()
    model.qconfig = quant.default_qconfig
    qmodel = quant.convert(calibrate(quant.prepare(model)))
    assert [type(m).__name__ for m in qmodel] == ["Quantize", "Linear", "ReLU", "Linear", "DeQuantize"]
    assert type(qmodel[1]) is quant.nn.Linear and type(qmodel[2]) is quant.nn.ReLU
    x = mc.randn(4, 6)
    hidden = qmodel[2](qmodel[1](qmodel[0](x)))
    assert isinstance(hidden, quant.QTensor) and hidden.int_repr().data.min() >= hidden.q_zero_point()
    out = qmodel(x)
    with mc.no_grad():
        np.testing.assert_allclose(out.data, model(x).data, atol=0.1)


def test_propagate_qconfig_rules():
    a, b = quant.default_qconfig, quant.default_qat_qconfig
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 2))
    model.qconfig = a
    model[2].qconfig = None  # opted out
    quant.propagate_qconfig_(model, {nn.ReLU: b})
    assert [m.qconfig for m in (model, model[0], model[1], model[1][0], model[1][1], model[2])] == [a, a, a, a, b, None]
    by_name = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    quant.propagate_qconfig_(by_name, {"1": b})
    assert (by_name.qconfig, by_name[0].qconfig, by_name[1].qconfig) == (None, None, b)


def test_workflow_errors():
    model = mlp()
    with pytest.raises(ValueError, match="qconfig"):
        quant.prepare(model)
    with pytest.raises(ValueError, match="prepare"):
        quant.convert(model)
    model.qconfig = quant.default_qconfig
    with pytest.raises(ValueError, match="calibrat"):
        quant.convert(quant.prepare(model))  # never calibrated
    with pytest.raises(ValueError, match="prepare"):
        quant.convert(model)  # a qconfig but no observers
    with pytest.raises(ValueError, match="instances"):
        quant.QConfig(activation=quant.MinMaxObserver(), weight=quant.default_weight_observer)
    with pytest.raises(ValueError, match="train"):
        quant.prepare_qat(model.eval())
    with pytest.raises(ValueError, match="'quint8'"):
        quant.quantize_dynamic(model, dtype="quint8")
    with pytest.raises(TypeError, match="Module"):
        quant.prepare("model")


def test_prepare_qat_fake_quantizes_weights_and_outputs():
    model = mlp()
    model.qconfig = quant.default_qat_qconfig
    qat = quant.prepare_qat(model.train())
    assert type(qat[1]) is quant.qat.Linear and type(model[1]) is nn.Linear
    assert isinstance(qat[1].activation_post_process, quant.FakeQuantize)
    x = mc.randn(8, 6)
    qat(x).sum().backward()  # straight-through gradients reach the float weights
    assert qat[1].weight.grad is not None and np.abs(qat[1].weight.grad).sum() > 0
    fq = qat[1].weight_fake_quant
    levels = np.unique(np.round(fq(qat[1].weight).data / fq.scale.data[0]))
    assert levels.min() >= -128 and levels.max() <= 127  # weights lie on the int8 grid


def test_one_call_recipes():
    model = mlp()
    model.qconfig = quant.default_qconfig
    qmodel = quant.quantize(model, calibrate)
    assert type(qmodel[3]) is quant.nn.Linear
    model.qconfig = quant.default_qat_qconfig

    def train_one_step(prepared):
        optimizer = mc.optim.SGD(prepared.parameters(), lr=0.01)
        mc.functional.cross_entropy(prepared(mc.randn(16, 6)), mc.tensor(np.arange(16) % 3)).backward()
        optimizer.step()
    qat_model = quant.quantize_qat(model, train_one_step)
    assert type(qat_model[3]) is quant.nn.Linear and type(model[3]) is nn.Linear


def test_quantize_dynamic_returns_a_converted_copy():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    before = [p.data.copy() for p in model.parameters()]
    dynamic = quant.quantize_dynamic(model, {nn.Linear}, dtype="qint8")
    assert [type(m) for m in model] == [nn.Linear, nn.ReLU, nn.Linear] and model.training
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))
    assert [type(m) for m in dynamic] == [quant.nn.DynamicLinear, nn.ReLU, quant.nn.DynamicLinear]
    assert not dynamic.training
    x = mc.randn(10, 6)
    with mc.no_grad():
        np.testing.assert_allclose(dynamic(x).data, model(x).data, atol=0.05)
    only_first = quant.quantize_dynamic(model, {"0"})
    assert [type(m) for m in only_first] == [quant.nn.DynamicLinear, nn.ReLU, nn.Linear]
    assert type(quant.quantize_dynamic(model[0])) is quant.nn.DynamicLinear  # a bare layer is replaced whole


def test_low_bit_qconfig_gives_low_bit_codes():
    model = mlp()
    model.qconfig = quant.qconfig_for_bits(weight_bits=3, activation_bits=2, per_channel=True)
    qmodel = quant.convert(calibrate(quant.prepare(model)))
    codes = qmodel[1].weight().int_repr().data
    assert codes.min() >= -4 and codes.max() <= 3 and qmodel[1].weight_quant_range == (-4, 3)
    hidden = qmodel[1](qmodel[0](mc.randn(50, 6))).int_repr().data
    assert hidden.max() <= 3 and (qmodel[0].quant_min, qmodel[0].quant_max) == (0, 3)
    with pytest.raises(ValueError, match="weight_bits must be an int from 2 to 8, got 9"):
        quant.qconfig_for_bits(weight_bits=9)
    assert quant.qconfig_for_bits(np.int64(4), np.uint8(4)).weight().quant_max == 7


def test_qat_convolution_trains_and_converts():
    mc.manual_seed(0)
    cnn = nn.Sequential(quant.QuantStub(), nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8, 3), quant.DeQuantStub())
    cnn.qconfig = quant.get_default_qat_qconfig("x86")
    qat = quant.prepare_qat(cnn)
    assert type(qat[1]) is quant.qat.Conv2d and type(cnn[1]) is nn.Conv2d
    images = mc.randn(4, 1, 4, 4)
    qat(images).sum().backward()
    assert np.abs(qat[1].weight.grad).sum() > 0
    qat.apply(quant.disable_observer)
    with mc.no_grad():
        fake = qat(images).data
    qmodel = quant.convert(qat)
    assert [type(m) for m in qmodel][1:6] == [quant.nn.Conv2d, quant.nn.ReLU, quant.nn.MaxPool2d, quant.nn.Flatten,
                                              quant.nn.Linear]
    # the int8 model and its fake-quant twin round the same values; they may differ where a value sits
    # on a rounding boundary, by one step of a layer's output, which the next layer can pass on
    assert np.abs(qmodel(images).data - fake).max() <= 2 * qmodel[5].scale
    assert np.mean(np.abs(qmodel(images).data - fake) <= 1e-6) > 0.5
