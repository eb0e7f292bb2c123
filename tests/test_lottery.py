"""Lottery tickets: rewinding, the iterative search, its saved rounds, and the controls."""
import os

import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import lottery, nn, optim, prune
from minitorch_compress.data import DataLoader, TensorDataset
from minitorch_compress.train import evaluate, fit


def make_model():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))


def toy_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 8)).astype(np.float32)
    y = np.argmax(X[:, :3] + 0.3 * X[:, 3:6], axis=1).astype(np.int64)
    return TensorDataset(X, y)


DATA = toy_data()


def train(model, callbacks=(), optimizer=optim.SGD, **kwargs):
    kwargs = kwargs or dict(lr=0.1, momentum=0.9)
    fit(model, DataLoader(DATA, 16, shuffle=True, seed=0), optimizer(model.parameters(), **kwargs),
        epochs=3, callbacks=callbacks, progress=False)


def accuracy(model):
    return evaluate(model, DataLoader(DATA, 96)).accuracy


def search(directory, **kwargs):
    return lottery.IterativeMagnitudePruning(make_model, train, accuracy, directory, **kwargs)


# ----- rewinding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer, kwargs", [(optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
                                               (optim.Adam, dict(lr=1e-2, weight_decay=1e-3))])
def test_rewinding_restores_the_saved_survivors_and_pruned_weights_stay_zero_through_training(optimizer, kwargs):
    mc.manual_seed(0)
    model = make_model()
    initial = {k: v.copy() for k, v in lottery.dense_state(model).items()}
    train(model)
    for name in ("0", "2", "4"):
        prune.l1_unstructured(dict(model.named_modules())[name], "weight", 0.6)
    lottery.rewind(model, initial)
    for name in ("0", "2", "4"):
        layer = dict(model.named_modules())[name]
        keep = layer.weight_mask.data == 1
        np.testing.assert_array_equal(layer.weight_orig.data[keep], initial[f"{name}.weight"][keep])
        assert np.all(layer.weight_orig.data[~keep] == 0)
        np.testing.assert_array_equal(layer.bias.data, initial[f"{name}.bias"])
    train(model, optimizer=optimizer, **kwargs)
    for name in ("0", "2", "4"):
        layer = dict(model.named_modules())[name]
        keep = layer.weight_mask.data == 1
        assert np.all(layer.weight_orig.data[~keep] == 0) and np.all(prune.pruned_tensor(layer, "weight")[~keep] == 0)
        assert not np.array_equal(layer.weight_orig.data[keep], initial[f"{name}.weight"][keep])


def test_rewind_point_records_the_weights_after_k_steps():
    mc.manual_seed(0)
    model = make_model()
    at_init = {k: v.copy() for k, v in lottery.dense_state(model).items()}

    class EveryStep:
        states = []

        def on_batch_end(self, model, step, loss):
            self.states.append({n: p.data.copy() for n, p in model.named_parameters()})

    start, late, every = lottery.RewindPoint(0), lottery.RewindPoint(4), EveryStep()
    train(model, callbacks=[start, late, every])
    for name, value in at_init.items():
        np.testing.assert_array_equal(start.state[name], value)
        np.testing.assert_array_equal(late.state[name], every.states[3][name])   # after steps 0..3
    assert not np.array_equal(late.state["0.weight"], at_init["0.weight"])


def test_rewind_rejects_a_state_of_another_model():
    mc.manual_seed(0)
    model = make_model()
    state = lottery.dense_state(model)
    with pytest.raises(ValueError, match="differ from the state's"):
        lottery.rewind(model, {k: v for k, v in state.items() if k != "4.bias"})
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(16, 8\) in the model and \(8, 16\)"):
        lottery.rewind(model, state | {"0.weight": state["0.weight"].T})
    with pytest.raises(ValueError, match="non-negative int, got -1"):
        lottery.RewindPoint(-1)


# ----- the search ----------------------------------------------------------------------------------
def survivors(n, rate, rounds):
    """PyTorch's rule: each round prunes round(rate * alive) of the weights still alive."""
    for _ in range(rounds):
        n -= round(rate * n)
    return n


def test_each_round_prunes_the_rate_of_the_survivors_of_every_layer(tmp_path):
    mc.manual_seed(0)
    rates = {"0": 0.5, "2": 0.5, "4": 0.25}
    sizes = {"0": 8 * 16, "2": 16 * 12, "4": 12 * 3}
    imp = search(tmp_path, rate=rates)
    record = imp.run(3, controls=False)
    for r in (1, 2, 3):
        alive = {name: survivors(sizes[name], rates[name], r) for name in sizes}
        assert {name: int(m.sum()) for name, m in imp.masks(r).items()} == alive
        assert record[r].remaining == sum(alive.values()) / sum(sizes.values())
    assert record[0].remaining == 1.0
    for r in (2, 3):   # a weight pruned once stays pruned
        assert np.all(imp.masks(r)["0"] <= imp.masks(r - 1)["0"])


def test_global_scope_ranks_all_layers_together(tmp_path):
    mc.manual_seed(0)
    imp = search(tmp_path, rate=0.5, scope="global")
    imp.run(2, controls=False)
    masks = imp.masks(2)
    assert sum(int(m.sum()) for m in masks.values()) == survivors(356, 0.5, 2)
    assert len({round(m.mean(), 3) for m in masks.values()}) > 1      # layers end at different sparsities


def test_every_round_is_saved_and_reproducible_from_its_files(tmp_path):
    mc.manual_seed(0)
    imp = search(tmp_path, rate=0.4, rewind_iteration=2)
    record = imp.run(2, controls=False)
    assert sorted(os.listdir(tmp_path)) == ["masks_round_1.npz", "masks_round_2.npz", "rewind_state.npz"]
    fresh = search(tmp_path, rate=0.4, rewind_iteration=2)       # a new session, only the files
    for r in (1, 2):
        ticket = fresh.ticket(r)
        state = fresh.rewind_state()
        for name in ("0", "2", "4"):
            layer = dict(ticket.named_modules())[name]
            np.testing.assert_array_equal(layer.weight_mask.data, imp.masks(r)[name])
            np.testing.assert_array_equal(layer.weight_orig.data, state[f"{name}.weight"] * imp.masks(r)[name])
        train(ticket)
        assert accuracy(ticket) == record[r].ticket


def test_controls_keep_the_sparsity_but_change_weights_or_masks(tmp_path):
    mc.manual_seed(0)
    imp = search(tmp_path, rate=0.5)
    record = imp.run(1)
    masks, state = imp.masks(1), imp.rewind_state()
    reinit = lottery.reinitialized(make_model, masks)
    shuffled = lottery.random_masks(make_model, masks, state)
    for name in ("0", "2", "4"):
        r_layer, s_layer = dict(reinit.named_modules())[name], dict(shuffled.named_modules())[name]
        np.testing.assert_array_equal(r_layer.weight_mask.data, masks[name])
        keep = masks[name] == 1
        assert not np.allclose(r_layer.weight_orig.data[keep], state[f"{name}.weight"][keep])
        assert s_layer.weight_mask.data.sum() == masks[name].sum()
        assert not np.array_equal(s_layer.weight_mask.data, masks[name])
        s_keep = s_layer.weight_mask.data == 1
        np.testing.assert_array_equal(s_layer.weight_orig.data[s_keep], state[f"{name}.weight"][s_keep])
    assert all(0 <= v <= 1 for v in (record[1].ticket, record[1].reinit, record[1].random))
    assert record[0].reinit == record[0].random == ""


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(scope="layer"), ValueError, "unknown scope 'layer'"),
    (dict(rate=1.0), ValueError, "pruning rate 1.0"),
    (dict(rate={"0": -0.1}), ValueError, "pruning rate -0.1"),
    (dict(rate={"0": 0.5}, scope="global"), ValueError, "per-layer rates need scope='local'"),
])
def test_search_rejects_bad_settings(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        search(tmp_path, **kwargs)


def test_search_rejects_unknown_layers_rounds_and_late_rewind_points(tmp_path):
    mc.manual_seed(0)
    with pytest.raises(ValueError, match=r"rates given for \['1'\]"):
        search(tmp_path, rate={"1": 0.5}).run(1, controls=False)
    with pytest.raises(ValueError, match="rounds must be a non-negative int, got -1"):
        search(tmp_path).run(-1)
    with pytest.raises(ValueError, match="fewer than rewind_iteration=1000"):
        search(tmp_path, rewind_iteration=1000).run(1)
