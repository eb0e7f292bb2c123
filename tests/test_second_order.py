"""Second-order pruning: the Hessian against known matrices and loss differences, OBS's exactness
on a quadratic, OBD/OBS saliencies against the drop-one oracle."""
import copy

import numpy as np
import pytest

import minitorch_compress as mc
import minitorch_compress.functional as F
from minitorch_compress import nn, prune
from minitorch_compress.prune import second_order as so


def quadratic_problem(seed=0, n=20, d=4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n)
    model = nn.Linear(d, 1, bias=False).double()
    return model, mc.tensor(X, dtype=np.float64), mc.tensor(y[:, None], dtype=np.float64)


def test_hessian_of_a_quadratic_loss_is_its_known_matrix():
    model, X, y = quadratic_problem()
    H = so.hessian(model, [(model, "weight")], X, y, F.mse_loss)
    np.testing.assert_allclose(H, 2 * X.data.T @ X.data / len(X.data), rtol=1e-6, atol=1e-8)


def tiny_network(seed=0):
    mc.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    X, y = mc.tensor(rng.standard_normal((30, 4))), mc.tensor(rng.integers(0, 3, 30))
    opt = mc.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    for _ in range(300):   # close to a minimum, where the second-order theory applies
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    return model, X, y


def test_hessian_entries_match_second_differences_of_the_loss():
    model, X, y = tiny_network()
    params = [(model[0], "weight"), (model[2], "weight")]
    H = so.hessian(model, params, X, y)
    assert H.shape == (35, 35) and np.array_equal(H, H.T)
    flat = so._Flat(model, params, F.cross_entropy, X.data.astype(np.float64), y)   # the loss at w + steps
    w, h = flat.get(), 1e-3
    for i, j in [(0, 0), (3, 17), (20, 34), (34, 34)]:
        def at(a, b):
            step = np.zeros_like(w)
            step[i] += a * h
            step[j] += b * h
            return flat.loss(w + step)
        second = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h * h)
        assert abs(H[i, j] - second) < 1e-5 + 1e-4 * abs(second)


def test_hessian_vector_product_and_diagonals():
    model, X, y = tiny_network(1)
    params = [(model[2], "weight")]
    H = so.hessian(model, params, X, y)
    v = np.random.default_rng(0).standard_normal(15)
    np.testing.assert_allclose(so.hessian_vector_product(model, params, X, y, v), H @ v, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(so.hessian_diagonal(model, params, X, y), np.diag(H))
    mc.manual_seed(0)
    hutchinson = so.hessian_diagonal(model, params, X, y, method="hutchinson", samples=400)
    # E[z * Hz] = diag(H); the error of 400 probes is about |off-diagonal row| / 20
    assert np.abs(hutchinson - np.diag(H)).max() < 3 * np.sqrt((H ** 2).sum(1) - np.diag(H) ** 2).max() / 20
    fisher = so.hessian_diagonal(model, params, X, y, method="fisher")
    per_example = []
    for i in range(30):   # each example's gradient, by the engine directly
        model.zero_grad()
        F.cross_entropy(model(X[i:i + 1]), y[i:i + 1]).backward()
        per_example.append(model[2].weight.grad.ravel().astype(np.float64) ** 2)
    np.testing.assert_allclose(fisher, np.mean(per_example, axis=0), rtol=1e-4, atol=1e-9)


def test_obs_on_a_quadratic_predicts_the_loss_increase_exactly():
    model, X, y = quadratic_problem(1)
    w_star = np.linalg.lstsq(X.data, y.data[:, 0], rcond=None)[0]          # the minimum
    model.weight.data[...] = w_star[None, :]
    before = F.mse_loss(model(X), y).item()
    predicted = so.obs_prune(model, [(model, "weight")], X, y, 1, F.mse_loss, damping=0.0)
    after = F.mse_loss(model(X), y).item()
    assert prune.is_pruned(model) and (model.weight.data == 0).sum() == 1
    assert np.isclose(after - before, predicted[0], rtol=1e-6)
    # and the correction is the best one: re-fitting the other weights gives the same loss
    keep = model.weight_mask.data[0] != 0
    refit = np.linalg.lstsq(X.data[:, keep], y.data[:, 0], rcond=None)[0]
    assert np.isclose(after, np.mean((X.data[:, keep] @ refit - y.data[:, 0]) ** 2), rtol=1e-8)


def test_saliencies_against_the_drop_one_oracle():
    # With a squared-error loss the loss is exactly quadratic in the last layer's weights; at their
    # minimum (least squares) OBD's 1/2 h_kk w_k^2 is the oracle's measured increase, exactly
    model, X, _ = tiny_network(2)
    targets = np.eye(3)[np.random.default_rng(2).integers(0, 3, 30)]
    with mc.no_grad():
        hidden = model[1](model[0](X)).data.astype(np.float64)
    solution = np.linalg.lstsq(np.c_[hidden, np.ones(30)], targets, rcond=None)[0]
    model[2].weight.data[...], model[2].bias.data[...] = solution[:-1].T, solution[-1]
    Y = mc.tensor(targets, dtype=np.float64)
    params = [(model[2], "weight")]
    oracle = so.drop_one(model, params, X, Y, F.mse_loss)
    obd = prune.OBD(X, Y, F.mse_loss).scores(model, "2").ravel()
    np.testing.assert_allclose(obd, oracle, rtol=1e-4, atol=1e-9)
    # OBS lets the others compensate: its saliency w^2 / (2 [H^-1]_qq) never exceeds OBD's, and
    # removing its choice costs what it predicts
    H_inv = np.linalg.inv(so.hessian(model, params, X, Y, F.mse_loss))
    w = model[2].weight.data.ravel()
    obs = w ** 2 / (2 * np.diag(H_inv))
    assert np.all(obs <= obd * (1 + 1e-6))
    before = F.mse_loss(model(X), Y).item()
    predicted = so.obs_prune(model, params, X, Y, 1, F.mse_loss, damping=0.0)
    assert np.isclose(predicted[0], obs.min(), rtol=1e-6)
    assert np.isclose(F.mse_loss(model(X), Y).item() - before, predicted[0], rtol=1e-5)


def test_obd_is_a_criterion_and_obs_respects_earlier_pruning():
    model, X, y = tiny_network(3)
    prune.prune_model(model, 0.5, criterion=prune.OBD(X, y), scope="global")
    assert prune.weight_sparsity(model) == pytest.approx(0.5, abs=0.02)
    already = (model[0].weight_mask.data == 0).sum()
    predicted = so.obs_prune(model, [(model[0], "weight")], X, y, 3)
    assert len(predicted) == 3 and (model[0].weight_mask.data == 0).sum() == already + 3
    with pytest.raises(ValueError, match="only"):
        so.obs_prune(model, [(model[0], "weight")], X, y, 20)


def test_errors():
    model, X, y = tiny_network(4)
    with pytest.raises(ValueError, match="method"):
        prune.OBD(X, y, method="newton")
    with pytest.raises(ValueError, match="not a submodule"):
        so.hessian(model, [(nn.Linear(2, 2), "weight")], X, y)
    with pytest.raises(ValueError, match="no parameter"):
        so.hessian(model, [(model[0], "gamma")], X, y)
    with pytest.raises(ValueError, match="shape"):
        so.hessian_vector_product(model, [(model[0], "weight")], X, y, np.ones(3))


def test_obs_reuses_a_hessian_and_continues_the_same_sequence():
    # Pruning 6 then 4 more with the same H removes what pruning 10 at once removes, with the same
    # weights after (up to the float32 rounding of the weights stored between the two calls)
    model, X, y = tiny_network(5)
    params = lambda m: [(m[0], "weight"), (m[2], "weight")]
    H = so.hessian(model, params(model), X, y)
    once, twice = copy.deepcopy(model), copy.deepcopy(model)
    at_once = so.obs_prune(once, params(once), X, y, 10, damping=0.1, H=H)
    first = so.obs_prune(twice, params(twice), X, y, 6, damping=0.1, H=H)
    second = so.obs_prune(twice, params(twice), X, y, 4, damping=0.1, H=H)
    np.testing.assert_allclose(np.r_[first, second], at_once, rtol=1e-5)
    for (a, name), (b, _) in zip(params(once), params(twice)):
        np.testing.assert_array_equal(getattr(a, name + "_mask").data, getattr(b, name + "_mask").data)
        np.testing.assert_allclose(getattr(a, name).data, getattr(b, name).data, rtol=1e-5, atol=1e-7)
    assert sum(int((getattr(m, n + "_mask").data == 0).sum()) for m, n in params(twice)) == 10
    with pytest.raises(ValueError, match="shape"):
        so.obs_prune(model, params(model), X, y, 1, H=np.eye(3))


def test_obs_leaves_earlier_pruned_weights_at_zero_and_matches_the_reduced_problem():
    # On a quadratic loss, OBS after masking weight 0 must equal OBS on the problem without input 0
    model, X, y = quadratic_problem(2, n=40, d=5)
    prune.custom_from_mask(model, "weight", np.array([[0, 1, 1, 1, 1]], np.float64))
    reduced = nn.Linear(4, 1, bias=False).double()
    reduced.weight.data[...] = model.weight_orig.data[:, 1:]
    predicted = so.obs_prune(model, [(model, "weight")], X, y, 1, F.mse_loss, damping=0.0)
    expected = so.obs_prune(reduced, [(reduced, "weight")], mc.tensor(X.data[:, 1:], dtype=np.float64), y, 1,
                            F.mse_loss, damping=0.0)
    np.testing.assert_allclose(predicted, expected, rtol=1e-6)
    np.testing.assert_allclose(model.weight.data[:, 1:], reduced.weight.data, rtol=1e-6, atol=1e-12)
    assert model.weight.data[0, 0] == 0
