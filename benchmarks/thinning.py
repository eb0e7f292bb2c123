"""Physical thinning: a masked model against the thinned model computing the same function, in one run.

LeNet-300-100 (784-300-100-10) with a fraction of its hidden neurons pruned (``prune.Channel(0)``
on the two hidden layers, the classifier kept whole). The masked model still multiplies every
zero; ``prune.thin`` cuts the pruned neurons out. Both are timed interleaved, round after round,
so load from other processes falls on both alike, and the ratio masked time / thinned time is
printed beside two FLOP ratios: ShrinkBench's theoretical speedup of the masked model (dense FLOPs
/ FLOPs of its nonzero weights) and dense FLOPs / FLOPs of the thinned model, which is larger
because thinning also drops the next layer's inputs from removed neurons, nonzero or not.

    python benchmarks/thinning.py [--batch 256] [--rounds 15]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minitorch_compress as mc  # noqa: E402
from minitorch_compress import metrics, nn, prune  # noqa: E402

FRACTIONS = (0.5, 0.75, 0.9)


def interleaved_medians(fns, x, rounds):
    """Median seconds of each ``fn(x)``: ``rounds`` rounds of 5 timed calls, taking turns."""
    times = [[] for _ in fns]
    for _ in range(rounds):
        for fn, ts in zip(fns, times):
            ts.append(metrics.latency(fn, x, repeat=5, warmup=1).median)
    return [float(np.median(ts)) for ts in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    mc.manual_seed(0)
    x = mc.rand(args.batch, 784)
    print(f"LeNet-300-100, batch {args.batch}, forward pass, medians of {args.rounds} interleaved rounds")
    print(f"  {'neurons pruned':>14} {'thinned shape':>16} {'masked ms':>10} {'thinned ms':>11} "
          f"{'measured':>9} {'nonzero FLOPs':>14} {'thinned FLOPs':>14}")
    for fraction in FRACTIONS:
        model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
        prune.prune_model(model, fraction, granularity=prune.Channel(0), exclude=["4"])
        small = prune.thin(model)
        np.testing.assert_allclose(small(x).data, model(x).data, rtol=1e-4, atol=1e-5)
        masked, thinned = interleaved_medians([model, small], x, args.rounds)
        shape = "-".join(str(m.weight.shape[1]) for m in small if isinstance(m, nn.Linear)) + "-10"
        print(f"  {fraction:>14.0%} {shape:>16} {masked * 1e3:>10.3f} {thinned * 1e3:>11.3f} "
              f"{masked / thinned:>8.2f}x {metrics.theoretical_speedup(model, x):>13.2f}x "
              f"{metrics.flops(model, x)[0] / metrics.flops(small, x)[0]:>13.2f}x")


if __name__ == "__main__":
    main()
