"""A small neural-architecture search space of CNNs, and evolutionary search under a budget.

An architecture is a dict: ``{"stem": width, "stages": [{"block", "width", "kernel", "expand"}, ...]}``.
``build`` turns it into a network for (C, H, W) images: a 3x3 stem convolution with BatchNorm and
ReLU, then one block per stage, each halving the resolution (stride 2), then global average
pooling and a Linear classifier. Blocks: ``"conv"`` (k x k convolution, BatchNorm, ReLU),
``"separable"`` (``blocks.DepthwiseSeparable``), ``"inverted"`` (``blocks.InvertedResidual`` with
expansion ``expand``), ``"fire"`` (a 2x2 max pool, as SqueezeNet downsamples, then ``blocks.Fire``
squeezing to width / 4 and expanding to width / 2 + width / 2; always 3x3, ``kernel`` unused).
``stage_layers`` is one stage; ``scale`` applies MobileNet's width multiplier to an architecture.

``evolutionary_search`` is the regularised evolution of Real et al. (2019) in miniature, as in
Once-for-All and MCUNet's search under a latency budget: a population of architectures within
budget; each generation, the best ``parents`` make children by crossover and mutation; children
over budget are discarded and drawn again; the oldest leave. It never returns an architecture
over budget. ``random_architecture_search`` is its baseline: as many architectures drawn at random
within the budget.
"""
import copy

import numpy as np

from .. import nn
from ..blocks import DepthwiseSeparable, Fire, InvertedResidual
from ..validation import check_number
from .hpo import Trial

BLOCKS = ("conv", "separable", "inverted", "fire")


class ArchSpace:
    """Depth (number of stages), and per stage the block, width, kernel size and expansion ratio."""

    def __init__(self, depths=(1, 2, 3), widths=(8, 16, 24, 32), kernels=(3, 5), expands=(1, 3, 6),
                 blocks=("conv", "separable", "inverted"), stem=8):
        if not set(blocks) <= set(BLOCKS):
            raise ValueError(f"blocks must be among {BLOCKS}, got {blocks!r}")
        self.depths, self.widths, self.kernels, self.expands, self.blocks = (
            list(depths), list(widths), list(kernels), list(expands), list(blocks))
        self.stem = stem

    def _stage(self, rng):
        return {"block": self.blocks[rng.integers(len(self.blocks))], "width": int(rng.choice(self.widths)),
                "kernel": int(rng.choice(self.kernels)), "expand": int(rng.choice(self.expands))}

    def stage_options(self):
        """Every distinct stage the space holds (``kernel`` only where it matters, ``expand`` only
        for inverted residuals), in a fixed order."""
        options = []
        for block in self.blocks:
            for width in self.widths:
                for kernel in (self.kernels if block != "fire" else self.kernels[:1]):
                    for expand in (self.expands if block == "inverted" else self.expands[:1]):
                        options.append({"block": block, "width": width, "kernel": kernel, "expand": expand})
        return options

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


def stem_layers(in_channels, width):
    """The stem: a 3x3 convolution at full resolution, BatchNorm, ReLU."""
    return [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]


def stage_layers(stage, in_channels):
    """The layers of one stage (a dict with ``block``, ``width``, ``kernel``, ``expand``), halving the resolution."""
    kind, out, k = stage["block"], stage["width"], stage["kernel"]
    if kind == "conv":
        return [nn.Conv2d(in_channels, out, k, 2, padding=k // 2, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
    if kind == "separable":
        return [DepthwiseSeparable(in_channels, out, 2, kernel_size=k)]
    if kind == "inverted":
        return [InvertedResidual(in_channels, out, 2, stage["expand"], kernel_size=k)]
    if kind == "fire":
        if out % 2 or out < 4:
            raise ValueError(f"a fire stage needs an even width >= 4, got {out}")
        return [nn.MaxPool2d(2), Fire(in_channels, out // 4, out // 2, out // 2)]
    raise ValueError(f"unknown block {kind!r}; expected one of {BLOCKS}")


def head_layers(in_channels, classes):
    """Global average pooling and a Linear classifier."""
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, classes)]


def build(arch, input_shape=(1, 28, 28), classes=10):
    """The network of ``arch`` for images of ``input_shape`` (C, H, W)."""
    layers, width = stem_layers(input_shape[0], arch["stem"]), arch["stem"]
    for stage in arch["stages"]:
        layers += stage_layers(stage, width)
        width = stage["width"]
    return nn.Sequential(*layers, *head_layers(width, classes))


def scale(arch, multiplier):
    """MobileNet's width multiplier: every width (the stem's too) times ``multiplier``, rounded,
    at least 4 and even (a fire stage splits its width in two)."""
    check_number("multiplier", multiplier, low=0, low_open=True)

    def width(w):
        return max(4, 2 * int(round(w * multiplier / 2)))
    return {"stem": width(arch["stem"]), "stages": [{**s, "width": width(s["width"])} for s in arch["stages"]]}


def random_architecture_search(space, fitness, cost, budget, trials, seed=0, max_draws=1000):
    """``trials`` architectures drawn from ``space`` with ``cost(arch) <= budget`` (others are drawn
    again), each evaluated once. Returns (best trial, history)."""
    rng = np.random.default_rng(seed)
    history = []
    for _ in range(trials):
        for _ in range(max_draws):
            arch = space.sample(rng)
            if cost(arch) <= budget:
                break
        else:
            raise ValueError(f"no architecture within budget {budget!r} after {max_draws} draws")
        history.append(Trial(arch, float(fitness(arch))))
    return max(history, key=lambda t: t.score), history


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
