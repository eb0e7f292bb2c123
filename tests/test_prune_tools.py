"""The course's pruning tools: criteria, granularities, scopes, schedules, regrowth, thinning, sensitivity."""
import copy

import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn, prune
from pruning_helpers import linear_with, mask_of


def tie_free(shape, seed=0):
    """Distinct magnitudes 1..n in a seeded order, random signs."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n) + 1).reshape(shape).astype(np.float32) * rng.choice([-1, 1], size=shape) / n


# ----- criteria ------------------------------------------------------------------------------------
def test_magnitude_with_element_granularity_is_l1_unstructured():
    w = np.array([[0.1, -0.5, 0.3], [-0.2, 0.6, -0.05]], np.float32)
    layer = linear_with(w)
    prune.prune_model(layer, 0.5)                     # round(3) smallest: .05 .1 .2
    np.testing.assert_array_equal(mask_of(layer), [[0, 1, 1], [0, 1, 0]])


def test_accumulated_criteria_follow_their_formulas():
    # loss = sum(out * y) with out = x W^T + b, so dL/dW = y^T x for each batch
    w = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    batches = [(np.array([[1.0, 2.0]], np.float32), np.array([[1.0, -1.0]], np.float32)),
               (np.array([[0.0, 3.0]], np.float32), np.array([[2.0, 1.0]], np.float32))]
    loader = [(mc.tensor(x), mc.tensor(y)) for x, y in batches]
    grads = [y.T @ x for x, y in batches]               # [[1, 2], [-1, -2]] and [[0, 6], [0, 3]]

    def loss(out, y):
        return (out * y).sum()

    layer = linear_with(w)
    taylor = prune.GradientMagnitude().accumulate(layer, loader, loss)
    movement = prune.Movement().accumulate(layer, loader, loss)
    np.testing.assert_allclose(taylor.scores(layer), [[0.5, 8.0], [2.0, 1.25]])     # |w g1| + |w g2|
    np.testing.assert_allclose(movement.scores(layer), -(w * grads[0]) - (w * grads[1]))
    np.testing.assert_allclose(movement.scores(layer), [[-0.5, 8.0], [2.0, -0.25]])
    assert layer.weight.grad is None                    # accumulate leaves no gradients behind


def test_accumulated_scores_are_kept_by_name_through_pruning_and_copies():
    model = nn.Sequential(linear_with(tie_free((3, 4))), nn.ReLU(), linear_with(tie_free((2, 3), seed=1)))
    criterion = prune.GradientMagnitude()
    with pytest.raises(ValueError, match="'0.weight'.*accumulate"):
        criterion.scores(model, "0")
    criterion.accumulate(model, [(mc.randn(5, 4), mc.tensor(np.arange(5) % 2))])
    before = criterion.scores(model, "0").copy()
    twin = copy.deepcopy(model)
    prune.prune_model(twin, 0.5, criterion=criterion)               # scores found by name in the copy
    kept = mask_of(twin[0]).astype(bool)
    assert before[kept].min() > before[~kept].max()
    prune.prune_model(model, 0.5, criterion=criterion)
    np.testing.assert_array_equal(criterion.scores(model, "0"), before)
    with pytest.raises(ValueError, match="'7'"):
        prune.Magnitude().scores(model, "7")


def test_random_criterion_is_seeded():
    mc.manual_seed(3)
    a = prune.prune_model(linear_with(tie_free((4, 5))), 0.4, criterion=prune.Random())
    mc.manual_seed(3)
    b = prune.prune_model(linear_with(tie_free((4, 5))), 0.4, criterion=prune.Random())
    np.testing.assert_array_equal(mask_of(a), mask_of(b))
    assert mask_of(a).sum() == 12


# ----- granularities -----------------------------------------------------------------------------------
def test_channel_granularity_with_l2_magnitude_is_ln_structured():
    w = tie_free((6, 5), seed=1)
    ours = prune.prune_model(linear_with(w), 0.5, prune.Magnitude(p=2), prune.Channel(0))
    torch_like = prune.ln_structured(linear_with(w), "weight", 0.5, n=2, dim=0)
    np.testing.assert_array_equal(mask_of(ours), mask_of(torch_like))
    cols = prune.prune_model(linear_with(w), 0.4, prune.Magnitude(p=2), prune.Channel(1))
    np.testing.assert_array_equal(mask_of(cols), mask_of(prune.ln_structured(linear_with(w), "weight", 2, n=2, dim=1)))


def test_block_granularity_prunes_the_blocks_of_smallest_mean():
    w = np.array([[1, 1, 5, 5], [1, 2, 5, 6], [3, 3, 0.5, 0.5], [3, 4, 0.5, 0.6]], np.float32)
    layer = prune.prune_model(linear_with(w), 0.5, granularity=prune.Block(2, 2))
    # block means: top-left 1.25, top-right 5.25, bottom-left 3.25, bottom-right 0.525
    expected = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_array_equal(mask_of(layer), expected)


def test_conv_filters_and_input_channels():
    conv = nn.Conv2d(4, 6, 3)
    conv.weight.data[...] = tie_free((6, 4, 3, 3), seed=2)
    prune.prune_model(conv, 0.5, granularity=prune.Channel(0))
    per_filter = mask_of(conv).reshape(6, -1)
    assert np.all(per_filter == per_filter[:, :1]) and per_filter[:, 0].sum() == 3
    prune.prune_model(conv, 0.5, granularity=prune.Channel(1))   # a second granularity compounds
    per_input = mask_of(conv).transpose(1, 0, 2, 3).reshape(4, -1)
    assert (per_input.max(axis=1) == 0).sum() == 2


@pytest.mark.parametrize("shape", [(8, 16), (4, 8, 3, 3)])
def test_two_four_keeps_the_two_largest_in_every_group_of_four(shape):
    w = tie_free(shape, seed=4)
    module = linear_with(w) if len(shape) == 2 else nn.Conv2d(shape[1], shape[0], 3)
    module.weight.data[...] = w
    prune.prune_model(module, None, granularity=prune.NM(2, 4))
    groups_mask = np.moveaxis(mask_of(module), 1, -1).reshape(-1, 4)
    groups_w = np.abs(np.moveaxis(w, 1, -1).reshape(-1, 4))
    assert np.all(groups_mask.sum(axis=1) == 2)
    top_two = np.sort(groups_w, axis=1)[:, 2:]
    np.testing.assert_array_equal(np.sort(groups_w * groups_mask, axis=1)[:, 2:], top_two)


def test_n_m_hand_case_and_errors():
    layer = prune.prune_model(linear_with(np.array([[0.1, -0.4, 0.3, 0.2, 5, 1, -2, 3]], np.float32)),
                              0.75, granularity=prune.NM(1, 4))
    np.testing.assert_array_equal(mask_of(layer), [[0, 1, 0, 0, 1, 0, 0, 0]])
    with pytest.raises(ValueError, match="0.5"):
        prune.prune_model(nn.Linear(8, 2), 0.5, granularity=prune.NM(1, 4))
    with pytest.raises(ValueError, match="multiple of 4"):
        prune.prune_model(nn.Linear(6, 2), None, granularity=prune.NM(2, 4))
    with pytest.raises(ValueError, match="local"):
        prune.prune_model(nn.Linear(8, 2), None, granularity=prune.NM(2, 4), scope="global")
    with pytest.raises(ValueError, match="n <= m"):
        prune.NM(5, 4)


# ----- scope -------------------------------------------------------------------------------------------
def mlp(seed=0):
    mc.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))


def test_global_magnitude_matches_global_unstructured():
    a, b = mlp(), mlp()
    prune.prune_model(a, 0.7, scope="global")
    prune.global_unstructured([(b[i], "weight") for i in (0, 2, 4)], pruning_method=prune.L1Unstructured, amount=0.7)
    for i in (0, 2, 4):
        np.testing.assert_array_equal(mask_of(a[i]), mask_of(b[i]))
    assert prune.weight_sparsity(a) == round(0.7 * 84) / 84


def test_global_channels_compare_group_means():
    first = linear_with(np.array([[1.0, 1.0], [0.2, 0.2], [0.9, 0.9]], np.float32))   # row means 1, .2, .9
    second = linear_with(np.array([[0.5, 0.5, 0.5], [0.3, 0.3, 0.3]], np.float32))    # row means .5, .3
    model = nn.Sequential(first, nn.ReLU(), second)
    # 12 weights, target round(0.4 * 12) = 5: rows .2 (2 weights), .3 (3 weights) -> exactly 5
    prune.prune_model(model, 0.4, granularity=prune.Channel(0), scope="global")
    np.testing.assert_array_equal(mask_of(first)[:, 0], [1, 0, 1])
    np.testing.assert_array_equal(mask_of(second)[:, 0], [1, 0])


def test_local_dict_exclude_and_masks_only_shrink():
    model = mlp()
    prune.prune_model(model, {"0": 0.5, "2": 0.25})
    assert mask_of(model[0]).sum() == 24 and mask_of(model[2]).sum() == 18 and not prune.is_pruned(model[4])
    prune.prune_model(model, 0.5, exclude=["4"])
    assert mask_of(model[2]).sum() == 12 and not prune.is_pruned(model[4])
    before = mask_of(model[0]).copy()
    prune.prune_model(model, 0.25, exclude=("4",))                 # below the current sparsity: no change
    np.testing.assert_array_equal(mask_of(model[0]), before)


def test_compute_masks_leaves_the_model_alone():
    model = mlp()
    masks = prune.compute_masks(model, 0.5, granularity=prune.Channel(0), exclude="4")
    assert list(masks) == ["0", "2"] and not prune.is_pruned(model)
    assert masks["0"].shape == (6, 8) and masks["0"].sum() == 24


def test_scope_errors():
    model = mlp()
    with pytest.raises(ValueError, match="'9'"):
        prune.prune_model(model, 0.5, exclude=["9"])
    with pytest.raises(ValueError, match="'1'"):
        prune.prune_model(model, {"1": 0.5})
    with pytest.raises(ValueError, match="1.5"):
        prune.prune_model(model, 1.5)
    with pytest.raises(ValueError, match="'everywhere'"):
        prune.prune_model(model, 0.5, scope="everywhere")
    with pytest.raises(ValueError, match="local"):
        prune.prune_model(model, {"0": 0.5}, scope="global")
    with pytest.raises(ValueError, match="Block.*\\(6, 8\\)"):
        prune.prune_model(model, 0.5, granularity=prune.Block(4, 4))
    with pytest.raises(ValueError, match="required"):
        prune.prune_model(model, None)
    with pytest.raises(ValueError, match="no Linear or Conv2d"):
        prune.prune_model(nn.Sequential(nn.ReLU()), 0.5, scope="global")
    with pytest.raises(TypeError, match="'magnitude'"):
        prune.prune_model(model, 0.5, criterion="magnitude")
    with pytest.raises(TypeError, match="Channel"):
        prune.prune_model(model, 0.5, granularity=prune.Channel)


# ----- schedules and the Pruner ---------------------------------------------------------------------------
def test_agp_formula_endpoints_and_monotone():
    agp = prune.AGP(0.0, 0.8, begin_step=10, end_step=110, frequency=25)
    assert agp.steps == (10, 35, 60, 85, 110)
    # s_t = 0.8 + (0 - 0.8) (1 - k/4)^3 at the k-th pruning step
    for step, expected in zip(agp.steps, [0.0, 0.4625, 0.7, 0.7875, 0.8]):
        assert agp.target(step) == pytest.approx(expected)
    assert agp.target(11) is None and agp.sparsity_at(9) == 0.0 and agp.sparsity_at(59) == pytest.approx(0.4625)
    curve = [agp.sparsity_at(t) for t in range(200)]
    assert all(b >= a for a, b in zip(curve, curve[1:])) and curve[-1] == pytest.approx(0.8)
    assert prune.AGP(0.3, 0.9, 0, 10, 5).target(0) == pytest.approx(0.3)


def test_iterative_and_one_shot_schedules():
    it = prune.Iterative(0.5, rounds=3, every=10, begin_step=5)
    assert it.steps == (5, 15, 25)
    assert [it.target(s) for s in it.steps] == [0.5, 0.75, 0.875]
    assert prune.OneShot(0.9, step=7).target(7) == 0.9 and prune.OneShot(0.9, step=7).target(8) is None


def test_schedule_errors():
    with pytest.raises(ValueError, match="frequency=30"):
        prune.AGP(0.0, 0.9, 0, 100, 30)
    with pytest.raises(ValueError, match="initial_sparsity=0.9"):
        prune.AGP(0.9, 0.5, 0, 100, 10)
    with pytest.raises(ValueError, match="every must be a positive int, got 0"):
        prune.Iterative(0.5, 3, 0)
    with pytest.raises(ValueError, match=r"amount must be a finite number in \[0, 1\], got 1.5"):
        prune.Iterative(1.5, 3, 1)
    with pytest.raises(ValueError, match="every must be a positive int, got 0"):
        prune.SET(every=0)
    assert prune.SET(every=np.int64(5)).every == 5
    with pytest.raises(TypeError, match="Schedule"):
        prune.Pruner(0.9)


def test_pruner_follows_the_schedule_during_fit():
    model = mlp()
    ds = mc.data.TensorDataset(np.random.default_rng(0).random((40, 8), dtype=np.float32), np.arange(40) % 3)
    loader = mc.data.DataLoader(ds, batch_size=10)
    criterion = prune.GradientMagnitude()
    pruner = prune.Pruner(prune.AGP(0.25, 0.75, 0, 8, 4), criterion=criterion, exclude="4")
    mc.train.fit(model, loader, mc.optim.SGD(model.parameters(), lr=0.1), epochs=3, callbacks=[pruner], progress=False)
    assert [s for s, _ in pruner.history] == [0, 4, 8]
    # 48 + 24 weights pruned layer by layer: round(s * 48) + round(s * 24) at s = .25, .6875, .75
    # (round(16.5) = 16: Python rounds half to even)
    assert [round(s * 72) for _, s in pruner.history] == [18, 33 + 16, 54]
    assert not prune.is_pruned(model[4])


# ----- regrowth ------------------------------------------------------------------------------------------
def test_set_moves_the_weakest_connections_to_random_empty_places():
    layer = linear_with(np.array([[0.5, -0.1, 0.3, 0.05, 0.7, -0.8]], np.float32))
    prune.custom_from_mask(layer, "weight", [[1, 1, 1, 1, 0, 0]])
    prune.SET(zeta=0.5).rewire(layer)
    # drop the 2 weakest active (-0.1, 0.05); grow 2 among the 2 empty places, which start at 0
    np.testing.assert_array_equal(mask_of(layer), [[1, 0, 1, 0, 1, 1]])
    np.testing.assert_array_equal(layer.weight_orig.data, np.float32([[0.5, -0.1, 0.3, 0.05, 0, 0]]))


def test_set_keeps_the_sparsity_constant_during_training():
    model = mlp()
    prune.prune_model(model, 0.8)
    counts = [mask_of(model[i]).sum() for i in (0, 2, 4)]
    before = mask_of(model[0]).copy()
    ds = mc.data.TensorDataset(np.random.default_rng(0).random((40, 8), dtype=np.float32), np.arange(40) % 3)
    regrowth = prune.SET(zeta=0.3, every=2)
    mc.train.fit(model, mc.data.DataLoader(ds, batch_size=10), mc.optim.SGD(model.parameters(), lr=0.1),
                 epochs=2, callbacks=[regrowth], progress=False)
    assert [mask_of(model[i]).sum() for i in (0, 2, 4)] == counts
    assert regrowth.moved > 0 and np.any(mask_of(model[0]) != before)
    with pytest.raises(ValueError, match="pruned model"):
        prune.SET().rewire(mlp())


# ----- thinning ------------------------------------------------------------------------------------------
def test_thinning_an_mlp_preserves_outputs_and_folds_constant_units():
    model = mlp(1)
    for i in (0, 2, 4):
        model[i].bias.data[...] = np.linspace(-0.5, 0.5, model[i].bias.size)   # constants of both signs
    prune.prune_model(model, {"0": 0.5, "2": 0.5}, granularity=prune.Channel(0))     # 3 of 6, 2 of 4 rows
    unread = np.ones((4, 6))
    unread[:, np.flatnonzero(mask_of(model[0])[:, 0])[0]] = 0                           # a live unit of layer 0
    prune.custom_from_mask(model[2], "weight", unread)                                  # that layer 2 ignores
    small = prune.thin(model)
    x = mc.tensor(np.random.default_rng(0).random((5, 8), dtype=np.float32))
    np.testing.assert_allclose(small(x).data, model(x).data, rtol=1e-5, atol=1e-6)
    assert small[0].weight.shape == (2, 8) and small[2].weight.shape == (2, 2) and small[4].weight.shape == (3, 2)
    assert small[0].out_features == 2 and small[4].in_features == 2
    assert not prune.is_pruned(small) and prune.is_pruned(model)


def test_thinning_cascades_to_units_only_read_by_removed_units():
    first = linear_with(np.eye(3, dtype=np.float32), [0.1, 0.2, 0.3])
    second = linear_with(np.array([[1, 0, 0], [0, 1, 1]], np.float32), [0.0, 0.0])
    third = linear_with(np.array([[1.0, 0.0]], np.float32), [0.0])     # ignores unit 1 of `second`
    model = nn.Sequential(first, nn.ReLU(), second, nn.ReLU(), third)
    small = prune.thin(model)
    # unit 1 of `second` is unused, so units 1 and 2 of `first` (only it read them) go too
    assert small[0].weight.shape == (1, 3) and small[2].weight.shape == (1, 1) and small[4].weight.shape == (1, 1)
    x = mc.tensor(np.random.default_rng(1).random((4, 3), dtype=np.float32))
    np.testing.assert_allclose(small(x).data, model(x).data, rtol=1e-6)


def test_thinning_a_cnn():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 2 * 2, 10))
    prune.prune_model(model, {"0": 0.5, "3": 0.25}, granularity=prune.Channel(0))
    small = prune.thin(model)
    assert small[0].weight.shape == (3, 1, 3, 3) and small[3].weight.shape == (6, 3, 3, 3)
    assert small[6].weight.shape == (10, 24) and small[3].in_channels == 3
    x = mc.tensor(np.random.default_rng(0).random((2, 1, 10, 10), dtype=np.float32))
    np.testing.assert_allclose(small(x).data, model(x).data, rtol=1e-5, atol=1e-6)


def test_thinning_keeps_constant_filters_a_padded_conv_would_see():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    model[0].bias.data[...] = [0.5, -0.5, 0.5, -0.5]
    prune.custom_from_mask(model[0], "weight", np.zeros((4, 1, 3, 3)))
    small = prune.thin(model)
    assert small[0].weight.shape == (2, 1, 3, 3)    # relu(-0.5) = 0 goes; relu(0.5) feeds the padding border
    x = mc.tensor(np.random.default_rng(0).random((1, 1, 6, 6), dtype=np.float32))
    np.testing.assert_allclose(small(x).data, model(x).data, rtol=1e-6)


def test_thinning_errors():
    with pytest.raises(TypeError, match="Sequential"):
        prune.thin(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="Sequential between layers 0 and 2"):
        prune.thin(nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()), nn.Linear(2, 2)))


# ----- sensitivity ---------------------------------------------------------------------------------------
def test_sensitivity_scan_prunes_one_layer_at_a_time():
    model = mlp()
    x = mc.randn(6, 8)
    dense_out = model(x).data.copy()

    def eval_fn(m):   # how far the outputs move
        return float(np.abs(m(x).data - dense_out).max())

    table = prune.sensitivity_scan(model, ["0", "4"], [0.0, 0.5, 1.0], eval_fn)
    assert [(r.layer, r.sparsity) for r in table] == [(n, s) for n in ("0", "4") for s in (0.0, 0.5, 1.0)]
    assert table[0].metric == 0.0 and table[1].metric > 0 and table[5].metric > 0
    assert not prune.is_pruned(model)
    import matplotlib
    matplotlib.use("Agg")
    ax = prune.plot_sensitivity(table)
    assert len(ax.lines) == 2 and ax.get_xscale() == "function"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [100 * r.metric for r in table if r.layer == "0"])
