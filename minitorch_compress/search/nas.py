"""A small neural-architecture search space of CNNs, and evolutionary search under a budget.

An architecture is a dict: ``{"stem": width, "stages": [{"block", "width", "kernel", "expand"}, ...]}``.
``build`` turns it into a network for (C, H, W) images: a 3x3 stem convolution with BatchNorm and
ReLU, then one block per stage, each halving the resolution (stride 2), then global average
pooling and a Linear classifier. Blocks: ``"conv"`` (k x k convolution, BatchNorm, ReLU),
``"separable"`` (``blocks.DepthwiseSeparable``), ``"inverted"`` (``blocks.InvertedResidual`` with
expansion ``expand``).

``evolutionary_search`` is the regularised evolution of Real et al. (2019) in miniature, as in
Once-for-All and MCUNet's search under a latency budget: a population of architectures within
budget; each generation, the best ``parents`` make children by crossover and mutation; children
over budget are discarded and drawn again; the oldest leave. It never returns an architecture
over budget.
"""
import copy

import numpy as np

from .. import nn
from ..blocks import DepthwiseSeparable, InvertedResidual
from .hpo import Trial

BLOCKS = ("conv", "separable", "inverted")


class ArchSpace:
    """Depth (number of stages), and per stage the block, width, kernel size and expansion ratio."""

    def __init__(self, depths=(1, 2, 3), widths=(8, 16, 24, 32), kernels=(3, 5), expands=(1, 3, 6),
                 blocks=BLOCKS, stem=8):
        if not set(blocks) <= set(BLOCKS):
            raise ValueError(f"blocks must be among {BLOCKS}, got {blocks!r}")
        self.depths, self.widths, self.kernels, self.expands, self.blocks = (
            list(depths), list(widths), list(kernels), list(expands), list(blocks))
        self.stem = stem

    def _stage(self, rng):
        return {"block": self.blocks[rng.integers(len(self.blocks))], "width": int(rng.choice(self.widths)),
                "kernel": int(rng.choice(self.kernels)), "expand": int(rng.choice(self.expands))}

    def sample(self, rng):
        return {"stem": self.stem, "stages": [self._stage(rng) for _ in range(int(rng.choice(self.depths)))]}

    def mutate(self, arch, rng, rate=0.3):
        """Each gene of each stage redrawn with probability ``rate``; a stage added or removed with
        probability ``rate`` (within ``depths``)."""
        child = copy.deepcopy(arch)
        for stage in child["stages"]:
            fresh = self._stage(rng)
            for gene in stage:
                if rng.random() < rate:
                    stage[gene] = fresh[gene]
        depth = len(child["stages"])
        if rng.random() < rate:
            options = [d for d in (depth - 1, depth + 1) if d in self.depths]
            if options:
                new = options[rng.integers(len(options))]
                child["stages"] = child["stages"][:new] + [self._stage(rng) for _ in range(new - depth)]
        return child

    def crossover(self, a, b, rng):
        """Stage by stage from either parent; the depth of one of them."""
        depth = len(a["stages"]) if rng.random() < 0.5 else len(b["stages"])
        stages = []
        for i in range(depth):
            options = [p["stages"][i] for p in (a, b) if i < len(p["stages"])]
            stages.append(copy.deepcopy(options[rng.integers(len(options))]))
        return {"stem": a["stem"], "stages": stages}


def build(arch, input_shape=(1, 28, 28), classes=10):
    """The network of ``arch`` for images of ``input_shape`` (C, H, W)."""
    layers = [nn.Conv2d(input_shape[0], arch["stem"], 3, padding=1, bias=False), nn.BatchNorm2d(arch["stem"]), nn.ReLU()]
    width = arch["stem"]
    for stage in arch["stages"]:
        kind, out, k = stage["block"], stage["width"], stage["kernel"]
        if kind == "conv":
            layers += [nn.Conv2d(width, out, k, 2, padding=k // 2, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        elif kind == "separable":
            layers.append(DepthwiseSeparable(width, out, 2, kernel_size=k))
        elif kind == "inverted":
            layers.append(InvertedResidual(width, out, 2, stage["expand"], kernel_size=k))
        else:
            raise ValueError(f"unknown block {kind!r}; expected one of {BLOCKS}")
        width = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes)]
    return nn.Sequential(*layers)


def evolutionary_search(space, fitness, cost, budget, population=12, generations=5, parents=4, mutation=0.3,
                        seed=0, max_draws=1000):
    """Maximise ``fitness(arch)`` over ``space`` subject to ``cost(arch) <= budget``.

    Returns (best trial, history: every evaluated trial in order). Each trial is evaluated once;
    ``population + generations * (population - parents)`` evaluations in all.
    """
    if not 1 <= parents < population:
        raise ValueError(f"need 1 <= parents < population, got {parents} and {population}")
    rng = np.random.default_rng(seed)

    def within_budget(make):
        for _ in range(max_draws):
            arch = make()
            if cost(arch) <= budget:
                return arch
        raise ValueError(f"no architecture within budget {budget!r} after {max_draws} draws")

    history = [Trial(a, float(fitness(a))) for a in (within_budget(lambda: space.sample(rng)) for _ in range(population))]
    alive = list(history)
    for _ in range(generations):
        best = sorted(alive, key=lambda t: t.score, reverse=True)[:parents]
        children = []
        for _ in range(population - parents):
            def make():
                a, b = (best[i].config for i in rng.choice(len(best), 2))
                return space.mutate(space.crossover(a, b, rng), rng, mutation)
            child = within_budget(make)
            children.append(Trial(child, float(fitness(child))))
        history += children
        alive = alive[len(children):] + children     # the oldest leave (regularised evolution)
    return max(history, key=lambda t: t.score), history
