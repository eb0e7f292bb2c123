"""Hyper-parameter search: grid, random, successive halving and Hyperband.

An objective returns a score to maximise (validation accuracy, never test). Budgets are what a
trial spends, e.g. epochs: the searches are compared at equal total budget.

- Random search (Bergstra & Bengio 2012): with few dimensions that matter, n random points try
  n distinct values of each, where a grid of n points tries only n^(1/d).
- Successive halving (Jamieson & Talwalkar 2016): train all n configurations with budget b, keep
  the best 1/eta, give the survivors eta times the budget, and repeat until one is left or the
  budget reaches ``max_budget``. Most configurations are dropped after a little training.
- Hyperband (Li et al. 2017): successive halving from several starting points (many
  configurations with a small budget ... few with the full budget), hedging against a ranking at
  small budget that does not predict the ranking at full budget.
"""
import math
from dataclasses import dataclass

from ..validation import check_number


@dataclass
class Trial:
    config: dict
    score: float
    budget: float = None


def _best(trials):
    return max(trials, key=lambda t: t.score)


def grid_search(objective, space, points=3):
    """``objective(config)`` on every point of ``space.grid(points)``; (best, all trials)."""
    trials = [Trial(config, float(objective(config))) for config in space.grid(points)]
    return _best(trials), trials


def random_search(objective, space, trials, seed=0):
    """``objective(config)`` on ``trials`` configurations drawn from ``space``; (best, all trials)."""
    done = [Trial(config, float(objective(config))) for config in space.sample_many(trials, seed)]
    return _best(done), done


def successive_halving(objective, configs, min_budget, eta=3, max_budget=None):
    """Successive halving of ``configs`` with ``objective(config, budget)``.

    Rung r trains the survivors with budget ``min_budget * eta**r`` and keeps the best
    ``max(1, len // eta)``. Returns (best trial of the last rung, rungs: a list of trial lists).
    """
    check_number("eta", eta, low=2)
    if not configs:
        raise ValueError("successive_halving needs at least one configuration")
    check_number("min_budget", min_budget, low=0, low_open=True)
    survivors, budget, rungs = list(configs), min_budget, []
    while True:
        trials = [Trial(config, float(objective(config, budget)), budget) for config in survivors]
        rungs.append(trials)
        if len(trials) == 1 or (max_budget is not None and budget * eta > max_budget):
            return _best(trials), rungs
        ranked = sorted(trials, key=lambda t: t.score, reverse=True)   # stable: ties keep their order
        survivors = [t.config for t in ranked[:max(1, len(trials) // eta)]]
        budget *= eta


def hyperband(objective, space, max_budget, eta=3, min_budget=1, seed=0):
    """Hyperband's brackets s = s_max ... 0, each successive halving of ceil((s_max+1)/(s+1) eta^s)
    configurations from budget max_budget / eta^s. Returns (best trial at the largest budget any
    bracket reached, brackets: a list of successive halving rung lists)."""
    s_max = int(math.floor(math.log(max_budget / min_budget) / math.log(eta) + 1e-9))
    brackets, finalists = [], []
    for s in range(s_max, -1, -1):
        n = int(math.ceil((s_max + 1) / (s + 1) * eta ** s))
        configs = space.sample_many(n, seed=seed + s)
        best, rungs = successive_halving(objective, configs, max_budget / eta ** s, eta, max_budget)
        brackets.append(rungs)
        finalists.append(best)
    top = max(t.budget for t in finalists)
    return _best([t for t in finalists if t.budget == top]), brackets
