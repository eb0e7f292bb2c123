"""Search spaces: named dimensions, each a set of choices or a range, sampled with a seeded generator."""
import itertools

import numpy as np

from ..kernels import exp, log
from ..validation import check_int


class Dimension:
    def sample(self, rng, n):
        raise NotImplementedError

    def grid(self, points):
        raise NotImplementedError


class Choice(Dimension):
    """One of ``options`` (any values), uniformly."""

    def __init__(self, options):
        self.options = list(options)
        if not self.options:
            raise ValueError("Choice needs at least one option")

    def sample(self, rng, n):
        return [self.options[i] for i in rng.integers(0, len(self.options), n)]

    def grid(self, points):
        return list(self.options)

    def __repr__(self):
        return f"Choice({self.options!r})"


class Uniform(Dimension):
    """A float uniform in [low, high]."""

    def __init__(self, low, high):
        if not low < high:
            raise ValueError(f"{type(self).__name__} needs low < high, got {low!r}, {high!r}")
        self.low, self.high = float(low), float(high)

    def sample(self, rng, n):
        return [float(v) for v in rng.uniform(self.low, self.high, n)]

    def grid(self, points):
        return [float(v) for v in np.linspace(self.low, self.high, points)]

    def __repr__(self):
        return f"{type(self).__name__}({self.low!r}, {self.high!r})"


class LogUniform(Uniform):
    """A positive float whose log is uniform: learning rates, weight decays (equal odds per decade)."""

    def __init__(self, low, high):
        if not 0 < low:
            raise ValueError(f"LogUniform needs positive bounds, got {low!r}")
        super().__init__(low, high)

    def sample(self, rng, n):   # the engine's exp and log: the same values on every CPU
        lo, hi = log(np.array([self.low, self.high]))
        return [float(v) for v in exp(rng.uniform(lo, hi, n))]

    def grid(self, points):
        lo, hi = log(np.array([self.low, self.high]))
        return [float(v) for v in exp(np.linspace(lo, hi, points))]


class IntUniform(Dimension):
    """An int in [low, high], both included."""

    def __init__(self, low, high):
        low, high = check_int("low", low), check_int("high", high)
        if low > high:
            raise ValueError(f"IntUniform needs low <= high, got {low!r}, {high!r}")
        self.low, self.high = low, high

    def sample(self, rng, n):
        return [int(v) for v in rng.integers(self.low, self.high + 1, n)]

    def grid(self, points):
        return sorted({int(round(v)) for v in np.linspace(self.low, self.high, points)})

    def __repr__(self):
        return f"IntUniform({self.low}, {self.high})"


class Space:
    """Named dimensions; a configuration is a dict with one value per name."""

    def __init__(self, **dimensions):
        bad = [name for name, d in dimensions.items() if not isinstance(d, Dimension)]
        if not dimensions or bad:
            raise ValueError(f"a Space needs dimensions (Choice, Uniform, LogUniform, IntUniform); bad: {bad}")
        self.dimensions = dimensions

    def sample_many(self, n, seed=0):
        """``n`` configurations drawn independently, reproducibly from ``seed``."""
        rng = np.random.default_rng(seed)
        columns = {name: d.sample(rng, n) for name, d in self.dimensions.items()}
        return [{name: columns[name][i] for name in self.dimensions} for i in range(n)]

    def grid(self, points=3):
        """Every combination of ``points`` values per range (all options of a Choice)."""
        axes = {name: d.grid(points) for name, d in self.dimensions.items()}
        return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]

    def __repr__(self):
        return "Space(" + ", ".join(f"{k}={v!r}" for k, v in self.dimensions.items()) + ")"
