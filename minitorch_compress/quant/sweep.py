"""Bit-width sweep: test accuracy against model size, for each bit width, granularity and method.

For every b in ``bits``, weights and activations are quantized to b bits (``qconfig_for_bits``;
``activation_bits`` fixes the activations instead), with one weight scale per tensor or per
output channel, and by post-training quantization (calibrate, convert) or quantization-aware
training (fine-tune with fake quantization, convert). Every model is converted to integers and
evaluated as such; sizes are ``model_size_bytes`` (b-bit packed weights).
"""
from collections import namedtuple

from .. import optim
from ..random import manual_seed
from ..tensor import no_grad
from ..train import evaluate, fit
from .convert import quantize, quantize_qat
from .fake_quant import disable_observer
from .qconfig import qconfig_for_bits
from .size import model_size_bytes

SweepResult = namedtuple("SweepResult", ["bits", "granularity", "method", "accuracy", "size_bytes"])
GRANULARITIES = ("per_tensor", "per_channel")
METHODS = ("ptq", "qat")


def calibrate(model, loader):
    """Run every batch of ``loader`` through a prepared model so that its observers see the ranges."""
    with no_grad():
        for X, _ in loader:
            model(X)


def train_qat(model, loader, epochs, lr, momentum=0.9):
    """Fine-tune a QAT-prepared model with SGD, then freeze its scales and zero points.

    The learning rate drops tenfold for the last epoch (when ``epochs`` > 1), to settle the weights
    on the quantization grid.
    """
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=momentum)

    class LastEpochDecay:
        def on_epoch_end(self, model, epoch, history):
            if epoch == epochs - 2:
                optimizer.lr = lr / 10
    fit(model, loader, optimizer, epochs=epochs, callbacks=[LastEpochDecay()], progress=False)
    model.apply(disable_observer)


def bitwidth_sweep(model, train_loader, test_loader, calibration_loader=None, bits=(8, 6, 4, 3, 2),
                   granularities=GRANULARITIES, methods=METHODS, activation_bits=None,
                   qat_epochs=3, qat_lr=0.01, seed=0):
    """A ``SweepResult`` per (bits, granularity, method); ``model`` (with Quant/DeQuantStubs) is left unchanged.

    PTQ calibrates on ``calibration_loader`` (default: ``train_loader``); QAT fine-tunes on
    ``train_loader`` for ``qat_epochs`` with ``train_qat``, from ``manual_seed(seed)``.
    """
    unknown = [g for g in granularities if g not in GRANULARITIES] + [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown granularity or method {unknown[0]!r}; expected {GRANULARITIES} and {METHODS}")
    calibration_loader = train_loader if calibration_loader is None else calibration_loader
    results = []
    for b in bits:
        for granularity in granularities:
            for method in methods:
                qconfig = qconfig_for_bits(b, activation_bits or b, granularity == "per_channel", method == "qat")
                previous, model.qconfig = getattr(model, "qconfig", None), qconfig
                try:
                    manual_seed(seed)
                    if method == "ptq":
                        qmodel = quantize(model, calibrate, (calibration_loader,))
                    else:
                        qmodel = quantize_qat(model, train_qat, (train_loader, qat_epochs, qat_lr))
                finally:
                    model.qconfig = previous
                accuracy = evaluate(qmodel, test_loader).accuracy
                results.append(SweepResult(b, granularity, method, accuracy, model_size_bytes(qmodel)))
    return results
