"""Measure the latency table that lesson 16's architecture search uses, and check its predictions.

Times, at batch 1 on 14x14 images, every layer any network of the lesson's search space can
contain (``LatencyTable.measure_space``: the stem, each stage option at every width and resolution
it can meet, each head), each the best of ``--repeat`` runs, and writes the table as JSON. Then
builds ``--check`` random networks of the space and prints, for each, the predicted latency (the
sum of its layers' entries) beside its measured whole-network latency (best of ``--repeat``), and
the mean relative error. Elementwise work outside the layers (residual adds, a fire module's
concatenation) and Python's call overhead between layers are what the table misses.

The course commits the table it wrote once (notebooks/checkpoints/latency_14x14.json), so that the
search finds the same network on every machine. Re-measure on your CPU and search again:

    python benchmarks/latency_table.py --out my_latency.json      # about a minute on 2 cores
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minitorch_compress as mc  # noqa: E402
from minitorch_compress import search  # noqa: E402

INPUT = (1, 14, 14)
TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notebooks", "checkpoints",
                     "latency_14x14.json")


def space():
    """Lesson 16's search space: 1-3 stages of any of the four blocks, widths 8-32, stem 8."""
    return search.ArchSpace(blocks=("conv", "separable", "inverted", "fire"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=TABLE)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--check", type=int, default=20, help="random networks to predict and measure")
    args = parser.parse_args()
    mc.manual_seed(0)
    table = search.LatencyTable().measure_space(space(), INPUT,
                                                timer=lambda m, s: search.time_layer(m, s, args.repeat))
    table.save(args.out)
    print(f"{len(table)} layers timed, written to {args.out}")
    rng, errors = np.random.default_rng(0), []
    print(f"{'network':60s} {'predicted ms':>12s} {'measured ms':>12s}")
    for _ in range(args.check):
        arch = space().sample(rng)
        model = search.build(arch, INPUT)
        predicted = table.predict(model, (1,) + INPUT)
        x = mc.tensor(np.zeros((1,) + INPUT, np.float32))
        measured = mc.metrics.latency(model, x, repeat=args.repeat).best
        errors.append(predicted / measured - 1)
        name = " ".join(f"{s['block']}{s['width']}k{s['kernel']}" + (f"e{s['expand']}" if s["block"] == "inverted"
                                                                        else "") for s in arch["stages"])
        print(f"{name:60s} {predicted * 1e3:12.3f} {measured * 1e3:12.3f}")
    errors = np.array(errors)
    print(f"predicted / measured - 1: mean {errors.mean():+.1%}, mean absolute {np.abs(errors).mean():.1%}")


if __name__ == "__main__":
    main()
