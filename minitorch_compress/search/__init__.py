"""Automated search: hyper-parameters (``hpo``) over spaces of named dimensions (``space``).

    space = search.Space(lr=search.LogUniform(1e-3, 1e-1), dropout=search.Choice([0.0, 0.2, 0.5]))
    best = search.random_search(objective, space, trials=20, seed=0)          # objective(config) -> score
    best = search.successive_halving(objective, space.sample_many(27, seed=0), min_budget=1, eta=3)
                                                                            # objective(config, budget) -> score
Architectures (``nas``) over a space of small CNNs, under a latency budget predicted by a table of
measured layer latencies (``latency``)::

    table = search.LatencyTable.load("latency.json")            # or LatencyTable().measure(model, shape)
    best, history = search.evolutionary_search(search.ArchSpace(), fitness,
                                               cost=lambda a: table.predict(search.build(a), (1, 1, 28, 28)),
                                               budget=2e-3, seed=0)

Scores are to be maximised (validation accuracy); every search is reproducible from its seed.
"""
from .hpo import Trial, grid_search, hyperband, random_search, successive_halving
from .latency import LatencyTable, layer_key, time_layer
from .nas import ArchSpace, build, evolutionary_search, head_layers, random_architecture_search, scale, stage_layers, stem_layers
from .space import Choice, IntUniform, LogUniform, Space, Uniform

__all__ = ["Space", "Choice", "Uniform", "LogUniform", "IntUniform", "Trial", "grid_search", "random_search",
           "successive_halving", "hyperband", "ArchSpace", "build", "scale", "stem_layers", "stage_layers", "head_layers",
           "evolutionary_search", "random_architecture_search", "LatencyTable", "layer_key", "time_layer"]
