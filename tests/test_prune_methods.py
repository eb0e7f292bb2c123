"""The PyTorch-compatible pruning core, against torch.nn.utils.prune's rules on hand-checked cases.

Every weight below is tie-free, so the masks PyTorch's topk would give are unique; the expected
masks are worked out by hand in the comments.
"""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn, prune
from minitorch_compress.gradcheck import gradcheck
from pruning_helpers import linear_with, mask_of

# |W| sorted: 0.05 (1,2) < 0.1 (0,0) < 0.2 (1,0) < 0.3 (0,2) < 0.5 (0,1) < 0.6 (1,1)
W6 = np.array([[0.1, -0.5, 0.3], [-0.2, 0.6, -0.05]], np.float32)

# Rows A, B, C with distinct norms:     L1     L2      Linf
#   A = [-2.0, .01, -.02, .03]          2.06   2.0004  2.0
#   B = [.9, -.91, .92, -.93]           3.66   1.8301  0.93
#   C = [-1.3, 1.0, .2, -.04]           2.54   1.6528  1.3
# lowest: L1 -> A, L2 -> C, Linf -> B
ABC = np.array([[-2.0, 0.01, -0.02, 0.03], [0.9, -0.91, 0.92, -0.93], [-1.3, 1.0, 0.2, -0.04]], np.float32)


# ----- reparametrisation ------------------------------------------------------------------------
def test_reparametrisation_keys_and_hook():
    layer = linear_with(W6)
    original = layer.weight
    prune.l1_unstructured(layer, "weight", amount=2)
    assert list(layer.state_dict()) == ["bias", "weight_orig", "weight_mask"]
    assert [n for n, _ in layer.named_parameters()] == ["bias", "weight_orig"]
    assert [n for n, _ in layer.named_buffers()] == ["weight_mask"]
    assert layer.weight_orig is original                    # an optimizer built earlier still works
    np.testing.assert_array_equal(layer.weight_orig.data, W6)  # the original values are kept
    np.testing.assert_array_equal(layer.weight.data, W6 * mask_of(layer))
    assert prune.is_pruned(layer) and prune.is_pruned(nn.Sequential(nn.ReLU(), layer))


def test_forward_pre_hook_recomputes_weight_from_orig():
    layer = linear_with(W6, bias=[0.0, 0.0])
    prune.l1_unstructured(layer, "weight", amount=3)
    layer.weight_orig.data[...] = 1.0                        # as an optimizer step would
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    out = layer(mc.tensor(x))
    # mask keeps (0,1), (0,2), (1,1): row 0 sums x1 + x2, row 1 is x1
    np.testing.assert_allclose(out.data, [[5.0, 2.0]])


def test_gradient_reaches_orig_only_through_the_mask():
    layer = linear_with(W6).double()
    prune.l1_unstructured(layer, "weight", amount=3)
    x = mc.tensor(np.random.default_rng(0).standard_normal((4, 3)), dtype=np.float64)
    assert gradcheck(lambda w: layer(x), [layer.weight_orig])
    layer.weight_orig.grad = None
    layer(x).sum().backward()
    assert np.all(layer.weight_orig.grad[mask_of(layer) == 0] == 0)
    assert np.all(layer.weight_orig.grad[mask_of(layer) == 1] != 0)


# ----- unstructured ------------------------------------------------------------------------------
@pytest.mark.parametrize("amount, expected", [
    (0.5, [[0, 1, 1], [0, 1, 0]]),      # round(3.0) = 3: 0.05, 0.1, 0.2
    (2, [[0, 1, 1], [1, 1, 0]]),        # an int is a count: 0.05, 0.1
    (0.75, [[0, 1, 0], [0, 1, 0]]),     # round(4.5) = 4 (half to even), not 5
    (0.25, [[0, 1, 1], [1, 1, 0]]),     # round(1.5) = 2
    (0.0, [[1, 1, 1], [1, 1, 1]]),
    (1.0, [[0, 0, 0], [0, 0, 0]]),
])
def test_l1_unstructured_masks(amount, expected):
    layer = prune.l1_unstructured(linear_with(W6), "weight", amount)
    np.testing.assert_array_equal(mask_of(layer), expected)


def test_l1_unstructured_importance_scores_replace_the_weights():
    scores = np.array([[6, 5, 4], [3, 2, 1]], np.float32)
    layer = prune.l1_unstructured(linear_with(W6), "weight", 2, importance_scores=mc.tensor(scores))
    np.testing.assert_array_equal(mask_of(layer), [[1, 1, 1], [1, 0, 0]])


def test_repeated_unstructured_pruning_counts_from_the_remainder():
    layer = prune.l1_unstructured(linear_with(W6), "weight", 0.5)   # prunes 0.05, 0.1, 0.2
    prune.l1_unstructured(layer, "weight", 0.5)                    # round(0.5 * 3) = 2 of 0.3, 0.5, 0.6
    np.testing.assert_array_equal(mask_of(layer), [[0, 0, 0], [0, 1, 0]])
    hook = [h for _, h in layer.forward_pre_hooks()][0]
    assert isinstance(hook, prune.PruningContainer) and len(hook) == 2
    assert len(layer.forward_pre_hooks()) == 1


def test_random_unstructured_counts_and_compounds():
    mc.manual_seed(0)
    layer = prune.random_unstructured(linear_with(ABC), "weight", 0.5)
    first = mask_of(layer).copy()
    assert first.sum() == 6
    prune.random_unstructured(layer, "weight", 0.5)               # round(0.5 * 6) = 3 of the survivors
    second = mask_of(layer)
    assert second.sum() == 3 and np.all(second <= first)
    mc.manual_seed(0)
    again = prune.random_unstructured(linear_with(ABC), "weight", 0.5)
    np.testing.assert_array_equal(mask_of(again), first)          # seeded by mc.manual_seed


# ----- structured --------------------------------------------------------------------------------
@pytest.mark.parametrize("n, pruned_row", [(1, 0), (2, 2), (np.inf, 1), ("fro", 2)])
def test_ln_structured_dim0_prunes_the_row_of_smallest_norm(n, pruned_row):
    layer = prune.ln_structured(linear_with(ABC), "weight", amount=1, n=n, dim=0)
    expected = np.ones((3, 4))
    expected[pruned_row] = 0
    np.testing.assert_array_equal(mask_of(layer), expected)


@pytest.mark.parametrize("n, pruned_col", [(1, 0), (2, 2), (np.inf, 1)])
def test_ln_structured_dim1_prunes_the_column_of_smallest_norm(n, pruned_col):
    layer = prune.ln_structured(linear_with(ABC.T.copy()), "weight", amount=0.34, n=n, dim=1)  # round(1.02) = 1
    expected = np.ones((4, 3))
    expected[:, pruned_col] = 0
    np.testing.assert_array_equal(mask_of(layer), expected)


def test_ln_structured_keeps_the_largest_channels_of_a_conv_weight():
    conv = nn.Conv2d(2, 4, 3)
    scale = np.array([0.3, -0.1, 0.4, 0.2], np.float32)        # filter o is constant scale[o]
    conv.weight.data[...] = scale[:, None, None, None]
    prune.ln_structured(conv, "weight", amount=0.5, n=2, dim=0)
    kept = mask_of(conv).reshape(4, -1)
    np.testing.assert_array_equal(kept.min(axis=1), [1, 0, 1, 0])
    np.testing.assert_array_equal(kept.max(axis=1), [1, 0, 1, 0])


def test_repeated_structured_pruning_skips_dead_channels():
    layer = prune.ln_structured(linear_with(ABC), "weight", 1, n=1, dim=0)   # A (L1 2.06) goes
    prune.ln_structured(layer, "weight", 1, n=1, dim=0)   # among B (3.66), C (2.54): C goes
    np.testing.assert_array_equal(mask_of(layer), [[0] * 4, [1] * 4, [0] * 4])
    prune.ln_structured(layer, "weight", 0.5, n=1, dim=0)  # round(0.5 * 1 channel left) = 0
    np.testing.assert_array_equal(mask_of(layer), [[0] * 4, [1] * 4, [0] * 4])


def test_unstructured_then_structured_then_unstructured():
    layer = prune.l1_unstructured(linear_with(ABC), "weight", 3)     # .01, .02, .03: A keeps only -2.0
    prune.ln_structured(layer, "weight", 1, n=1, dim=0)             # masked L1: A 2.0 < C 2.54 < B 3.66
    np.testing.assert_array_equal(mask_of(layer), [[0] * 4, [1] * 4, [1] * 4])
    prune.ln_structured(layer, "weight", 1, n=1, dim=0)             # B and C alive: C goes
    prune.l1_unstructured(layer, "weight", 0.5)                     # round(0.5 * 4) = 2 of B: .9, .91
    np.testing.assert_array_equal(mask_of(layer), [[0] * 4, [0, 0, 1, 1], [0] * 4])


def test_random_structured_zeroes_whole_channels():
    mc.manual_seed(1)
    layer = prune.random_structured(linear_with(ABC), "weight", amount=2, dim=1)
    mask = mask_of(layer)
    assert np.all(mask == mask[:1])                                # constant down every column
    assert mask[0].sum() == 2
    prune.random_structured(layer, "weight", amount=1, dim=1)      # 1 of the 2 live columns
    assert mask_of(layer)[0].sum() == 1 and np.all(mask_of(layer) <= mask)


# ----- global, custom, identity, remove ---------------------------------------------------------
def two_layers():
    # all |w|: .5 .1 .3 .05 | .2 .4 .01
    first = linear_with(np.array([[0.5, -0.1], [0.3, 0.05]], np.float32))
    second = linear_with(np.array([[0.2, -0.4]], np.float32))
    third = linear_with(np.array([[0.01]], np.float32))
    return first, second, third


@pytest.mark.parametrize("amount, masks", [
    (3, ([[1, 0], [1, 0]], [[1, 1]], [[0]])),                       # .01 .05 .1
    (0.5, ([[1, 0], [1, 0]], [[0, 1]], [[0]])),                     # round(3.5) = 4: also .2
])
def test_global_unstructured_ranks_all_parameters_together(amount, masks):
    layers = two_layers()
    prune.global_unstructured([(m, "weight") for m in layers], pruning_method=prune.L1Unstructured, amount=amount)
    for layer, expected in zip(layers, masks):
        np.testing.assert_array_equal(mask_of(layer), expected)


def test_global_unstructured_respects_earlier_masks_and_importance_scores():
    first, second, third = two_layers()
    prune.l1_unstructured(first, "weight", 1)                       # .05 already gone
    scores = {(second, "weight"): mc.tensor([[9.0, 8.0]])}          # second now ranks highest
    prune.global_unstructured([(first, "weight"), (second, "weight"), (third, "weight")],
                              pruning_method=prune.L1Unstructured, importance_scores=scores, amount=2)
    # remaining scores: .5 .1 .3 | 9 8 | .01 -> prune .01 and .1
    np.testing.assert_array_equal(mask_of(first), [[1, 0], [1, 0]])
    np.testing.assert_array_equal(mask_of(second), [[1, 1]])
    np.testing.assert_array_equal(mask_of(third), [[0]])


def test_global_unstructured_rejects_structured_methods():
    with pytest.raises(TypeError, match="LnStructured"):
        prune.global_unstructured([(nn.Linear(2, 2), "weight")], pruning_method=prune.LnStructured,
                                  amount=1, n=1, dim=0)


def test_custom_from_mask_and_identity():
    layer = prune.custom_from_mask(linear_with(W6, [1.0, 2.0]), "bias", mask=[0, 1])
    np.testing.assert_array_equal(layer.bias.data, [0.0, 2.0])
    prune.custom_from_mask(layer, "bias", mask=mc.tensor([1, 0]))    # compounds: both gone
    np.testing.assert_array_equal(mask_of(layer, "bias"), [0, 0])
    fresh = prune.identity(linear_with(W6), "weight")
    np.testing.assert_array_equal(mask_of(fresh), np.ones((2, 3)))
    np.testing.assert_array_equal(fresh.weight.data, W6)


def test_remove_makes_pruning_permanent():
    layer = linear_with(W6)
    original = layer.weight
    prune.l1_unstructured(layer, "weight", 3)
    prune.l1_unstructured(layer, "weight", 1)
    prune.remove(layer, "weight")
    assert list(layer.state_dict()) == ["bias", "weight"]
    assert layer.weight is original and isinstance(layer.weight, nn.Parameter)
    np.testing.assert_array_equal(layer.weight.data, np.float32([[0, -0.5, 0], [0, 0.6, 0]]))
    assert not prune.is_pruned(layer) and len(layer.forward_pre_hooks()) == 0


def test_prune_method_on_a_plain_tensor():
    out = prune.L1Unstructured(amount=2).prune(W6)
    np.testing.assert_array_equal(out, np.float32([[0, -0.5, 0.3], [-0.2, 0.6, 0]]))


def test_pruned_state_dict_round_trips_through_save_and_load(tmp_path):
    mc.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    prune.l1_unstructured(model[0], "weight", 0.6)
    prune.ln_structured(model[2], "weight", 2, n=2, dim=1)
    path = tmp_path / "pruned.npz"
    mc.save(model.state_dict(), path)
    assert list(mc.load(path)) == ["0.bias", "0.weight_orig", "0.weight_mask", "2.bias", "2.weight_orig", "2.weight_mask"]

    fresh = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    with pytest.raises(ValueError, match="weight_orig"):            # like PyTorch: set up the masks first
        fresh.load_state_dict(mc.load(path))
    prune.identity(fresh[0], "weight")
    prune.identity(fresh[2], "weight")
    fresh.load_state_dict(mc.load(path))
    x = mc.randn(4, 6)
    np.testing.assert_array_equal(fresh(x).data, model(x).data)
    np.testing.assert_array_equal(mask_of(fresh[2]), mask_of(model[2]))


# ----- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("amount, error, text", [
    (-0.1, ValueError, "-0.1"), (1.5, ValueError, "1.5"), (-1, ValueError, "-1"),
    (float("nan"), ValueError, "nan"), ("0.5", TypeError, "0.5"), (True, TypeError, "True"),
])
def test_bad_amount(amount, error, text):
    with pytest.raises(error, match=text):
        prune.l1_unstructured(linear_with(W6), "weight", amount)


def test_amount_larger_than_the_parameter_leaves_the_module_unchanged():
    layer = linear_with(W6)
    with pytest.raises(ValueError, match="amount=7.*6"):
        prune.l1_unstructured(layer, "weight", 7)
    assert not prune.is_pruned(layer) and list(layer.state_dict()) == ["weight", "bias"]
    prune.l1_unstructured(layer, "weight", 4)
    with pytest.raises(ValueError, match="amount=3.*2"):            # only 2 left to prune
        prune.l1_unstructured(layer, "weight", 3)
    assert prune.is_pruned(layer) and mask_of(layer).sum() == 2
    with pytest.raises(ValueError, match="amount=4.*3"):            # channels, not weights
        prune.ln_structured(linear_with(W6), "weight", 4, n=1, dim=1)


def test_unknown_parameter_name():
    with pytest.raises(ValueError, match="'wieght'"):
        prune.l1_unstructured(nn.Linear(2, 2), "wieght", 0.5)
    with pytest.raises(ValueError, match="'weight_mask'"):
        prune.l1_unstructured(prune.identity(nn.Linear(2, 2), "weight"), "weight_mask", 0.5)


def test_remove_on_an_unpruned_module():
    with pytest.raises(ValueError, match="'weight'.*has to be pruned"):
        prune.remove(nn.Linear(2, 2), "weight")


def test_structured_pruning_needs_two_dimensions_and_a_valid_dim():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        prune.ln_structured(nn.Linear(3, 2), "bias", 1, n=1, dim=0)
    with pytest.raises(IndexError, match="dim 2"):
        prune.random_structured(nn.Linear(3, 2), "weight", 1, dim=2)


def test_importance_scores_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        prune.l1_unstructured(linear_with(W6), "weight", 1, importance_scores=np.ones((3, 2)))
