"""Latency of the int8 Linear layers against float32, for the course's layer shapes, in one run.

For each shape (in -> out) and batch size, times ``nn.Linear`` in float32 (OpenBLAS through
NumPy, and our Numba kernel), the int8 kernel alone (``kernels.int8_linear``: int8 x int8 -> int32
on the packed weight), the static ``quant.nn.Linear`` (QTensor in and out: the kernel plus
requantisation) and ``quant.nn.DynamicLinear`` (float in and out, with the batch quantized on every
call), then the whole 784-100-10 MLP float against converted (batches 1, 256, 1000).
Ratios are float32 OpenBLAS time / this time (above 1: faster than float32), measured in
interleaved rounds so that load from other processes falls on all alike.

    NUMBA_CACHE_DIR=.numba_cache python benchmarks/quant_linear.py [--rounds 5]
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minitorch_compress as mc  # noqa: E402  (sets the thread settings first)
from minitorch_compress import kernels, metrics, nn, quant  # noqa: E402

SHAPES = ((784, 100), (100, 10), (784, 300), (300, 100))   # the 784-100-10 MLP and LeNet-300-100
BATCHES = (1, 64, 256, 1000)   # one request, a training batch, a serving batch, the test set


def interleaved(fns, x, rounds, repeat=20):
    """Median seconds of each ``fn(x)``: each round times every function once (``metrics.latency``)."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(metrics.latency(fn, x, repeat=repeat).median)
    return {name: statistics.median(t) for name, t in times.items()}


def calibrated(model, x):
    model.qconfig = quant.default_qconfig
    return quant.quantize(model, lambda prepared: prepared(x))


def report(title, timings, reference="float32 OpenBLAS"):
    print(title)
    for name, seconds in timings.items():
        print(f"  {name:<28} {seconds * 1e6:10.1f} us  {timings[reference] / seconds:6.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    mc.manual_seed(0)
    kernel = 'AVX512-VNNI' if kernels.has_vnni() else 'AVX2 vpmaddubsw (7-bit activations)' if kernels.has_maddubs() else 'portable'
    print(f"int8 kernel: {kernel}; ratio = float32 OpenBLAS time / time")
    for in_features, out_features in SHAPES:
        for batch in BATCHES:
            x = mc.rand(batch, in_features)
            layer = nn.Linear(in_features, out_features)
            qmodel = calibrated(nn.Sequential(quant.QuantStub(), layer, quant.DeQuantStub()), x)
            x_q = qmodel[0](x)
            dynamic = quant.quantize_dynamic(layer)

            def numba_float(x, layer=layer):
                with mc.use_backend("numba"):
                    return layer(x)
            timings = interleaved({"float32 OpenBLAS": layer, "float32 Numba": numba_float}, x, args.rounds)
            timings.update(interleaved({"int8 kernel only (int32 out)": lambda codes, packed=qmodel[1]._packed:
                                        kernels.int8_linear(codes, packed)}, x_q.int_repr().data, args.rounds))
            timings.update(interleaved({"int8 static (QTensor)": qmodel[1]}, x_q, args.rounds))
            timings.update(interleaved({"int8 dynamic (float io)": dynamic}, x, args.rounds))
            report(f"Linear {in_features} -> {out_features}, batch {batch}", timings)

    model = nn.Sequential(quant.QuantStub(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10), quant.DeQuantStub())
    qmodel = calibrated(model, mc.rand(1000, 784))
    dynamic = quant.quantize_dynamic(model)
    for batch in (1, 256, 1000):
        report(f"784-100-10 MLP, batch {batch}, float in and out",
               interleaved({"float32 OpenBLAS": model, "int8 static": qmodel, "int8 dynamic": dynamic},
                           mc.rand(batch, 784), args.rounds))


if __name__ == "__main__":
    main()
