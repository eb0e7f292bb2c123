"""The checkpoints and the latency table lessons 15 and 16 load are what their scripts make."""
import os
import runpy

import numpy as np

import minitorch_compress as mc

NOTEBOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notebooks")


def test_make_15_reproduces_a_stored_network_bit_for_bit():
    script = runpy.run_path(os.path.join(NOTEBOOKS, "checkpoints", "make_15.py"))
    state = mc.load(script["PATH"])
    stored = {key.split("@")[0] for key in state}
    assert stored == set(script["ARCHS"])
    assert {key.split(":")[0] for key in state} == {script["key"](*entry) for entry in script["plan"]()}
    train_set, val_set, _ = script["mnist_14"]()
    name, multiplier, seed = "separable", 0.5, 0          # the cheapest to train again
    model, _ = script["train"](name, multiplier, seed, train_set, val_set)
    prefix = script["key"](name, multiplier, seed) + ":"
    for param, value in model.state_dict().items():
        np.testing.assert_array_equal(value.data, state[prefix + param].data, err_msg=param)


def test_committed_latency_table_covers_lesson_16s_search_space():
    import sys
    sys.path.insert(0, os.path.join(NOTEBOOKS, "..", "benchmarks"))
    script = runpy.run_path(os.path.join(NOTEBOOKS, "..", "benchmarks", "latency_table.py"))
    from minitorch_compress import search
    committed = search.LatencyTable.load(script["TABLE"])
    keys = search.LatencyTable().measure_space(script["space"](), script["INPUT"], timer=lambda m, s: 1.0)
    assert set(committed.entries) == set(keys.entries) and all(v > 0 for v in committed.entries.values())


def test_make_16_replays_its_searches_from_the_stored_fitness():
    import json
    from minitorch_compress import search
    script = runpy.run_path(os.path.join(NOTEBOOKS, "checkpoints", "make_16.py"))
    with open(script["FITNESS_PATH"]) as f:
        stored = json.load(f)
    table = search.LatencyTable.load(script["TABLE_PATH"])
    visited = []

    def fitness(arch):
        visited.append(script["name"](arch))
        return stored[script["name"](arch)]
    (random_best, _), (evolution_best, _) = script["searches"](fitness, table)
    assert set(visited) == set(stored)             # every stored network is one a search visits
    found = mc.load(script["FOUND_PATH"])
    for which, best in (("random", random_best), ("evolution", evolution_best)):
        arch, _ = script["load"](found, which, 0)
        assert arch == best.config
    # the cheapest stored network trained again gives the stored fitness exactly
    cheapest = min(stored, key=lambda a: sum(s["width"] for s in json.loads(a)["stages"]))
    train_set, val_set, _ = script["LESSON_15"]["mnist_14"]()
    _, history = script["train"](json.loads(cheapest), script["FITNESS_EPOCHS"], 0, train_set, val_set)
    assert history["val_accuracy"][-1] == stored[cheapest]
