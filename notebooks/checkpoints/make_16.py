"""The architecture searches of lesson 16, run once: the validation accuracy of every network they
visit (16_fitness.json), and the two winners retrained with lesson 15's recipe (16_found.npz).

Search space: lesson 15's stem and head with 1-3 stages of any of its four blocks, widths 8-32,
kernels 3 and 5, expansions 1, 3 and 6 (``benchmarks/latency_table.py`` times every layer of it).
Latency budget: the predicted batch-1 latency of lesson 15's standard network, from the committed
table. Fitness: validation accuracy after FITNESS_EPOCHS epochs of lesson 15's recipe (seed 0),
so that a search of 28 networks fits in minutes; as NAS-Bench-101 and -201 do for theirs, the
results are stored, and the lesson replays the searches from them.

    python notebooks/checkpoints/make_16.py            # about 15 minutes on 2 cores
"""
import json
import os
import runpy
import sys

import numpy as np

import minitorch_compress as mc
from minitorch_compress import search
from minitorch_compress.files import write_text_atomic

HERE = os.path.dirname(os.path.abspath(__file__))
FITNESS_PATH = os.path.join(HERE, "16_fitness.json")
FOUND_PATH = os.path.join(HERE, "16_found.npz")
TABLE_PATH = os.path.join(HERE, "latency_14x14.json")
LESSON_15 = runpy.run_path(os.path.join(HERE, "make_15.py"))
INPUT = LESSON_15["INPUT"]
FITNESS_EPOCHS = 2
TRIALS, POPULATION, GENERATIONS, PARENTS = 28, 8, 4, 3   # 8 + 4 * (8 - 3) = 28 evaluations each
SEARCH_SEED = 0


def space():
    return search.ArchSpace(blocks=("conv", "separable", "inverted", "fire"))


def name(arch):
    """A key for an architecture: its JSON with sorted keys."""
    return json.dumps(arch, sort_keys=True)


def budget(table):
    """Seconds: the predicted batch-1 latency of lesson 15's standard network."""
    return table.predict(search.build(LESSON_15["ARCHS"]["standard"], INPUT), (1,) + INPUT)


def train(arch, epochs, seed, train_set, val_set):
    """``arch`` trained with lesson 15's recipe (Adam, lr, batch) for ``epochs``; (model, history)."""
    mc.manual_seed(seed)
    model = search.build(arch, INPUT)
    history = mc.train.fit(model, mc.data.DataLoader(train_set, LESSON_15["BATCH"], shuffle=True, seed=seed + 1),
                           mc.optim.Adam(model.parameters(), lr=LESSON_15["LR"]), epochs=epochs,
                           val_loader=mc.data.DataLoader(val_set, 500), progress=False)
    return model, history


def searches(fitness, table):
    """(random search, evolutionary search): each (best trial, history), under the same budget."""
    cost = lambda arch: table.predict(search.build(arch, INPUT), (1,) + INPUT)   # noqa: E731
    limit = budget(table)
    return (search.random_architecture_search(space(), fitness, cost, limit, TRIALS, seed=SEARCH_SEED),
            search.evolutionary_search(space(), fitness, cost, limit, POPULATION, GENERATIONS, PARENTS,
                                       seed=SEARCH_SEED))


def load(state, which, seed):
    """The winner of ``which`` ("random" or "evolution") retrained with ``seed``."""
    arch = json.loads(state[f"{which}:arch"].data.tobytes().decode())
    model = search.build(arch, INPUT)
    prefix = f"{which}@{seed}:"
    model.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return arch, model.eval()


def main():
    train_set, val_set, _ = LESSON_15["mnist_14"]()
    table = search.LatencyTable.load(TABLE_PATH)
    scores = {}

    def fitness(arch):
        if name(arch) not in scores:
            _, history = train(arch, FITNESS_EPOCHS, 0, train_set, val_set)
            scores[name(arch)] = history["val_accuracy"][-1]
            print(f"{len(scores):3d} {scores[name(arch)]:.3f} {name(arch)}", flush=True)
        return scores[name(arch)]
    (random_best, _), (evolution_best, _) = searches(fitness, table)
    write_text_atomic(FITNESS_PATH, json.dumps(scores, indent=1, sort_keys=True) + "\n")
    state = {}
    for which, best in (("random", random_best), ("evolution", evolution_best)):
        state[f"{which}:arch"] = np.frombuffer(name(best.config).encode(), np.uint8)
        for seed in LESSON_15["SEEDS"]:
            model, _ = train(best.config, LESSON_15["EPOCHS"], seed, train_set, val_set)
            state.update({f"{which}@{seed}:{k}": v for k, v in model.state_dict().items()})
    mc.save(state, FOUND_PATH)


if __name__ == "__main__":
    main(*sys.argv[1:])
