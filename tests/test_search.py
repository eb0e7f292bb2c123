"""Search spaces and hyper-parameter searches on objectives whose answer is known."""
import numpy as np
import pytest

from minitorch_compress import search


def test_spaces_sample_reproducibly_within_bounds():
    space = search.Space(lr=search.LogUniform(1e-3, 1e-1), p=search.Choice([0.0, 0.2, 0.5]),
                         width=search.IntUniform(8, 10), m=search.Uniform(0.5, 0.9))
    configs = space.sample_many(2000, seed=0)
    assert configs == space.sample_many(2000, seed=0) and configs != space.sample_many(2000, seed=1)
    lr = np.array([c["lr"] for c in configs])
    assert lr.min() >= 1e-3 and lr.max() <= 1e-1 and abs((lr < 1e-2).mean() - 0.5) < 0.05   # a decade each
    assert {c["p"] for c in configs} == {0.0, 0.2, 0.5} and {c["width"] for c in configs} == {8, 9, 10}
    assert all(0.5 <= c["m"] <= 0.9 for c in configs)
    grid = space.grid(3)
    assert len(grid) == 3 * 3 * 3 * 3 and sorted({g["lr"] for g in grid}) == pytest.approx([1e-3, 1e-2, 1e-1])
    with pytest.raises(ValueError, match="low < high"):
        search.Uniform(1, 1)
    with pytest.raises(ValueError, match="positive"):
        search.LogUniform(0, 1)
    with pytest.raises(ValueError, match="dimensions"):
        search.Space(lr=0.1)


def peak(config):
    return -(np.log10(config["lr"]) + 2) ** 2 - (config["p"] - 0.2) ** 2


def test_grid_and_random_search_return_the_best_trial():
    space = search.Space(lr=search.LogUniform(1e-4, 1), p=search.Choice([0.0, 0.2, 0.5]))
    best, trials = search.grid_search(peak, space, points=5)
    assert best.config["p"] == 0.2 and best.config["lr"] == pytest.approx(1e-2) and len(trials) == 15
    best, trials = search.random_search(peak, space, trials=30, seed=0)
    assert best.score == max(t.score for t in trials) and len(trials) == 30
    assert search.random_search(peak, space, trials=30, seed=0)[0] == best


def test_successive_halving_keeps_the_top_third_each_rung():
    configs = [{"quality": q} for q in np.random.default_rng(0).permutation(27)]
    spent = []

    def objective(config, budget):   # more budget, a clearer view of the quality
        spent.append(budget)
        return config["quality"] + np.random.default_rng(int(budget * 100 + config["quality"])).normal(0, 1 / budget)
    best, rungs = search.successive_halving(objective, configs, min_budget=1, eta=3)
    assert [len(r) for r in rungs] == [27, 9, 3, 1] and [r[0].budget for r in rungs] == [1, 3, 9, 27]
    for previous, rung in zip(rungs, rungs[1:]):
        ranked = sorted(previous, key=lambda t: t.score, reverse=True)
        assert [t.config for t in rung] == [t.config for t in ranked[:len(rung)]]
    assert best.config["quality"] >= 24 and sum(spent) == 27 + 9 * 3 + 3 * 9 + 27
    capped = search.successive_halving(objective, configs, min_budget=1, eta=3, max_budget=9)[1]
    assert [len(r) for r in capped] == [27, 9, 3]


def test_hyperband_brackets():
    space = search.Space(x=search.Uniform(0, 1))
    best, brackets = search.hyperband(lambda c, b: c["x"] * b, space, max_budget=27, eta=3)
    assert [len(b[0]) for b in brackets] == [27, 12, 6, 4]            # ceil((s_max + 1) / (s + 1) * 3^s)
    assert [b[0][0].budget for b in brackets] == [1, 3, 9, 27]
    assert best.budget == 27 and best.score == max(t.score for b in brackets for t in b[-1] if t.budget == 27)


def test_architectures_build_and_vary():
    import minitorch_compress as mc
    from minitorch_compress import metrics
    space = search.ArchSpace()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(30)]
    assert {s["block"] for a in archs for s in a["stages"]} == {"conv", "separable", "inverted"}
    for arch in archs[:6]:
        model = search.build(arch)
        out = model(mc.randn(2, 1, 28, 28))
        assert out.shape == (2, 10) and metrics.count_parameters(model) > 0
    child = space.mutate(archs[0], rng, rate=1.0)
    assert child != archs[0] and len(child["stages"]) in space.depths
    mixed = space.crossover(archs[0], archs[1], rng)
    assert all(s in archs[0]["stages"] + archs[1]["stages"] for s in mixed["stages"])


def test_evolution_never_returns_an_architecture_over_budget():
    space = search.ArchSpace(depths=(1, 2, 3), widths=(8, 16, 32, 64))

    def cost(arch):   # a stand-in for latency: the widths' sum
        return sum(s["width"] for s in arch["stages"])

    def fitness(arch):   # capacity, with a preference for inverted residuals
        return sum(s["width"] * (1.5 if s["block"] == "inverted" else 1) for s in arch["stages"])
    best, history = search.evolutionary_search(space, fitness, cost, budget=64, population=10, generations=6, seed=0)
    assert all(cost(t.config) <= 64 for t in history) and len(history) == 10 + 6 * (10 - 4)
    rng = np.random.default_rng(1)
    random_best = max(fitness(a) for a in (space.sample(rng) for _ in range(46)) if cost(a) <= 64)
    assert best.score >= random_best   # the same number of evaluations, under the same budget
    assert search.evolutionary_search(space, fitness, cost, budget=64, population=10, generations=6, seed=0)[0] == best
    with pytest.raises(ValueError, match="no architecture within budget"):
        search.evolutionary_search(space, fitness, cost, budget=1, max_draws=20)


def test_latency_table_predicts_a_network_from_its_layers(tmp_path):
    costs = {"Conv2d": 3e-4, "BatchNorm2d": 5e-5, "ReLU": 1e-5, "ReLU6": 1e-5, "AdaptiveAvgPool2d": 2e-5,
             "Flatten": 1e-6, "Linear": 4e-5}

    def fake_timer(module, shape):   # known per-layer costs, scaled by the input's size
        return costs[type(module).__name__] * np.prod(shape[1:]) / 784
    space, rng = search.ArchSpace(), np.random.default_rng(2)
    archs = [space.sample(rng) for _ in range(8)]
    table = search.LatencyTable()
    for arch in archs[:6]:
        table.measure(search.build(arch), (1, 1, 28, 28), timer=fake_timer)
    from minitorch_compress.search.latency import _leaf_inputs
    model = search.build(archs[0])
    expected = sum(fake_timer(m, s) for m, s in _leaf_inputs(model, (1, 1, 28, 28)))
    assert np.isclose(table.predict(model, (1, 1, 28, 28)), expected)
    table.save(tmp_path / "latency.json")
    loaded = search.LatencyTable.load(tmp_path / "latency.json")
    assert loaded.entries == table.entries
    unseen = {"stem": 8, "stages": [{"block": "conv", "width": 40, "kernel": 5, "expand": 1}]}
    with pytest.raises(KeyError, match="no latency for Conv2d"):
        table.predict(search.build(unseen), (1, 1, 28, 28))
    (tmp_path / "bad.json").write_text('["not", "a", "table"]')
    with pytest.raises(ValueError, match="not a latency table"):
        search.LatencyTable.load(tmp_path / "bad.json")
    real = search.LatencyTable().measure(search.build(archs[0]), (1, 1, 28, 28))   # the real timer runs
    assert len(real) > 0 and all(v > 0 for v in real.entries.values())


def test_fire_stages_scale_and_stage_options():
    import minitorch_compress as mc
    from minitorch_compress import metrics
    arch = {"stem": 8, "stages": [{"block": "fire", "width": 16, "kernel": 3, "expand": 1}]}
    model = search.build(arch, (1, 14, 14))
    assert model(mc.randn(2, 1, 14, 14)).shape == (2, 10)
    c, s, e = 8, 4, 8          # fire from 8 channels: squeeze 16 / 4, expand 16 / 2 + 16 / 2 (SqueezeNet)
    stem, head = 9 * 8 + 2 * 8, 16 * 10 + 10
    assert metrics.count_parameters(model) == stem + (c * s + s * e + 9 * s * e + s + 2 * e) + head
    assert search.scale(arch, 0.5) == {"stem": 4, "stages": [{**arch["stages"][0], "width": 8}]}
    assert search.scale(arch, 2.0)["stem"] == 16 and search.scale(arch, 0.1)["stem"] == 4   # even, at least 4
    with pytest.raises(ValueError, match="even width"):
        search.stage_layers({"block": "fire", "width": 6 + 1, "kernel": 3, "expand": 1}, 8)
    space = search.ArchSpace(widths=(8, 16), kernels=(3, 5), expands=(1, 6), blocks=search.nas.BLOCKS)
    options = space.stage_options()
    # conv and separable: 2 widths x 2 kernels; inverted: x 2 expansions; fire: 2 widths
    assert len(options) == 4 + 4 + 8 + 2 and len({tuple(o.values()) for o in options}) == len(options)


def test_measure_space_covers_every_architecture_of_the_space():
    def fake_timer(module, shape):
        return 1e-6 * np.prod(shape)
    space = search.ArchSpace(depths=(1, 2), widths=(8, 16), kernels=(3, 5), expands=(1, 3),
                             blocks=search.nas.BLOCKS)
    table = search.LatencyTable().measure_space(space, (1, 14, 14), timer=fake_timer)
    rng = np.random.default_rng(0)
    from minitorch_compress.search.latency import _leaf_inputs
    for _ in range(40):   # fire stages pool to 7 and 3 pixels, strided ones to 7 and 4: all met
        model = search.build(space.sample(rng), (1, 14, 14))
        expected = sum(fake_timer(m, s) for m, s in _leaf_inputs(model, (1, 1, 14, 14)))
        assert np.isclose(table.predict(model, (1, 1, 14, 14)), expected)


def test_random_architecture_search_stays_within_budget():
    space = search.ArchSpace()

    def cost(arch):
        return sum(s["width"] for s in arch["stages"])
    best, history = search.random_architecture_search(space, lambda a: len(a["stages"]), cost, 40, trials=15, seed=3)
    assert len(history) == 15 and all(cost(t.config) <= 40 for t in history)
    assert best.score == max(t.score for t in history)
    assert search.random_architecture_search(space, lambda a: len(a["stages"]), cost, 40, trials=15, seed=3)[1] == history
    with pytest.raises(ValueError, match="no architecture within budget"):
        search.random_architecture_search(space, len, cost, 1, trials=1, max_draws=20)


def test_numbers_are_checked_alike():
    # validation.py's rules: NumPy integers and reals are accepted, bools and out-of-range values are not
    assert (search.IntUniform(np.int64(2), 5).low, search.IntUniform(2, 5).high) == (2, 5)
    for low in (True, 2.0):
        with pytest.raises(ValueError, match="low must be an int"):
            search.IntUniform(low, 5)
    with pytest.raises(ValueError, match="low <= high"):
        search.IntUniform(6, 5)
    objective = lambda config, budget: config
    with pytest.raises(ValueError, match=r"eta must be a finite number >= 2, got 1"):
        search.successive_halving(objective, [1, 2], 1, eta=1)
    with pytest.raises(ValueError, match=r"min_budget must be a finite number > 0, got 0"):
        search.successive_halving(objective, [1, 2], 0)
    best, _ = search.successive_halving(objective, [3, 1, 2], np.float32(1), eta=np.int64(3))
    assert best.config == 3
