"""quant against torch.ao.quantization: PyTorch's formulas, and numbers PyTorch 2.13 gave by hand on
the same model and weights (torch.ao.quantization, engine "x86"; no test imports torch)."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn, optim, quant

F32 = np.float32


def small_model():
    """QuantStub, Linear(6, 5), ReLU, Linear(5, 3), DeQuantStub with weights drawn by NumPy (seed 0),
    and a batch X, Y: what the PyTorch runs were given too."""
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(0, 0.3, (5, 6)).astype(F32), rng.normal(0, 0.1, 5).astype(F32)
    w2, b2 = rng.normal(0, 0.3, (3, 5)).astype(F32), rng.normal(0, 0.1, 3).astype(F32)
    x, y = rng.normal(0, 1, (16, 6)).astype(F32), rng.integers(0, 3, 16)
    model = nn.Sequential(quant.QuantStub(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3), quant.DeQuantStub())
    for param, value in zip(model.parameters(), (w1, b1, w2, b2)):
        param.data[...] = value
    return model, x, y


def qat_steps(qconfig, steps=3, freeze=False):
    """prepare_qat, ``steps`` SGD steps (lr 0.1) on the batch, convert; and the weights each forward saw."""
    model, x, y = small_model()
    model.qconfig = qconfig
    prepared = quant.prepare_qat(model.train())
    optimizer = optim.SGD(prepared.parameters(), lr=0.1)
    seen = []
    for _ in range(steps):
        seen.append(prepared[1].weight.data.copy())
        optimizer.zero_grad()
        mc.functional.cross_entropy(prepared(mc.tensor(x)), mc.tensor(y)).backward()
        optimizer.step()
    if freeze:
        prepared.apply(quant.disable_observer)
    return quant.convert(prepared.eval()), seen, prepared[1].weight.data.copy()


def moving_average_symmetric_scale(weights, c=F32(0.01)):
    """MovingAverageMinMaxObserver then the per-tensor symmetric qint8 scale, in float32 as PyTorch."""
    lo, hi = weights[0].min(), weights[0].max()
    for w in weights[1:]:
        lo, hi = F32(lo + c * (w.min() - lo)), F32(hi + c * (w.max() - hi))
    return float(max(-min(lo, F32(0)), max(hi, F32(0))) / F32(127.5))


def test_convert_of_a_qat_model_observes_the_final_weight_once_more():
    # PyTorch's from_float calls weight_fake_quant(mod.weight) before quantizing: the moving
    # average sees the weight after the last step too
    qmodel, seen, final = qat_steps(quant.default_qat_qconfig)
    scale = qmodel[1].weight().q_scale()
    assert scale == pytest.approx(moving_average_symmetric_scale(seen + [final]), rel=1e-6)
    assert scale != pytest.approx(moving_average_symmetric_scale(seen), rel=1e-6)
    assert scale == pytest.approx(0.005468321032822132, rel=1e-6)  # PyTorch's (0.0054695 without the last look)


def test_convert_of_a_qat_model_with_frozen_observers_keeps_the_trained_scale():
    qmodel, seen, _ = qat_steps(quant.default_qat_qconfig, freeze=True)
    assert qmodel[1].weight().q_scale() == pytest.approx(moving_average_symmetric_scale(seen), rel=1e-6)


def test_per_channel_qat_convert_matches_pytorch():
    # get_default_qat_qconfig("x86", version=0) in PyTorch: per-channel moving averages of the weight
    qmodel, _, _ = qat_steps(quant.get_default_qat_qconfig("x86"))
    np.testing.assert_allclose(qmodel[1].weight().q_per_channel_scales().data,
                               [0.001506876782514155, 0.0030682352371513844, 0.005468318704515696,
                                0.0032152081839740276, 0.0021697182673960924], rtol=1e-6)


@pytest.mark.parametrize("qconfig", [quant.default_qconfig, quant.get_default_qconfig("x86")])
def test_static_codes_beyond_the_calibrated_range_use_the_dtype_range(qconfig):
    # PyTorch's default activation observers choose the scale for 0..127 (reduce_range); the
    # converted model clamps codes to quint8's 0..255, so inputs beyond calibration give codes above 127
    model, x, _ = small_model()
    model.qconfig = qconfig
    prepared = quant.prepare(model.eval())
    prepared(mc.tensor(x * F32(0.5)))
    qmodel = quant.convert(prepared)
    wider = mc.tensor(x * F32(1.5))
    q_in = qmodel[0](wider)
    s, z = q_in.q_scale(), q_in.q_zero_point()
    np.testing.assert_array_equal(q_in.int_repr().data, np.clip(np.rint(wider.data * (F32(1) / F32(s))) + z, 0, 255))
    hidden = qmodel[1](q_in).int_repr().data
    assert (q_in.int_repr().data.max(), hidden.max()) == (244, 227)  # PyTorch's codes
    assert (qmodel[0].quant_min, qmodel[0].quant_max, qmodel[1].quant_min, qmodel[1].quant_max) == (0, 255, 0, 255)


def test_b_bit_qconfig_still_clamps_to_its_range():
    # beyond PyTorch: qconfig_for_bits asks for b-bit codes, so they stay b-bit beyond calibration
    model, x, _ = small_model()
    model.qconfig = quant.qconfig_for_bits(4, 4)
    prepared = quant.prepare(model.eval())
    prepared(mc.tensor(x * F32(0.5)))
    qmodel = quant.convert(prepared)
    q_in = qmodel[0](mc.tensor(x * F32(1.5)))
    assert q_in.int_repr().data.max() == 15 and qmodel[1](q_in).int_repr().data.max() == 15
    assert quant.observers.code_range(prepared[1].activation_post_process) == (0, 15)
    assert quant.observers.code_range(quant.MinMaxObserver(quant_min=0, quant_max=15)) == (0, 255)
