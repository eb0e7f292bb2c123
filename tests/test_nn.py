"""nn: module registration, hooks, modes, state dicts, initialisation and layer gradients."""
import math

import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn
from minitorch_compress.gradcheck import gradcheck


def mlp():
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Dropout(0.5), nn.Linear(3, 2))


def test_parameters_are_found_by_name_in_order():
    model = mlp()
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert [p.shape for p in model.parameters()] == [(3, 4), (3,), (2, 3), (2,)]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert [n for n, _ in model.named_modules()] == ["", "0", "1", "2", "3"]
    assert len(list(model.children())) == 4


def test_buffers_registration_and_deletion():
    layer = nn.Linear(2, 2)
    layer.register_buffer("mask", mc.ones(2, 2))
    layer.register_buffer("scratch", mc.zeros(1), persistent=False)
    assert [n for n, _ in layer.named_buffers()] == ["mask", "scratch"]
    assert list(layer.state_dict()) == ["weight", "bias", "mask"]
    del layer.weight
    assert "weight" not in dict(layer.named_parameters()) and not hasattr(layer, "weight")
    layer.weight = mc.ones(2, 2)  # a plain attribute now, as pruning does
    assert "weight" not in dict(layer.named_parameters())


def test_registration_errors():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="'weight'"):
        layer.weight = mc.ones(2, 2)
    with pytest.raises(ValueError, match="'a.b'"):
        layer.register_parameter("a.b", None)
    with pytest.raises(ValueError, match="'in_features'"):
        layer.register_buffer("in_features", mc.ones(1))
    with pytest.raises(TypeError, match="Tensor"):
        layer.register_parameter("extra", mc.ones(1))
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 3)


def test_train_and_eval_reach_every_module():
    model = mlp()
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    x = mc.ones(10, 4)
    model.eval()
    np.testing.assert_array_equal(model(x).data, model(x).data)  # dropout is off


def test_forward_pre_hook_and_forward_hook_can_be_removed():
    layer = nn.Linear(2, 2)
    seen = []
    pre = layer.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = layer.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    np.testing.assert_allclose(layer(mc.ones(1, 2)).data, layer.bias.data[None])
    assert seen == [(1, 2)]
    pre.remove()
    post.remove()
    assert not np.allclose(layer(mc.ones(1, 2)).data, layer.bias.data[None])
    assert seen == [(1, 2)]


def test_state_dict_round_trip_and_errors_name_the_keys():
    a, b = mlp(), mlp()
    b.load_state_dict(a.state_dict())
    x = mc.randn(3, 4)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).data, b(x).data)
    state = a.state_dict()
    del state["3.bias"]
    state["extra"] = mc.ones(1)
    with pytest.raises(ValueError, match=r"missing keys \['3.bias'\], unexpected keys \['extra'\]"):
        b.load_state_dict(state)
    result = b.load_state_dict(state, strict=False)
    assert result.missing_keys == ["3.bias"] and result.unexpected_keys == ["extra"]
    bad = a.state_dict()
    bad["0.weight"] = mc.ones(4, 3)
    with pytest.raises(ValueError, match=r"0.weight: checkpoint \(4, 3\) vs model \(3, 4\)"):
        b.load_state_dict(bad)


def test_load_state_dict_copies_in_place_so_optimizers_keep_their_parameters():
    a, b = mlp(), mlp()
    weight = b[0].weight
    b.load_state_dict(a.state_dict())
    assert b[0].weight is weight
    np.testing.assert_array_equal(weight.data, a[0].weight.data)


def test_sequential_indexing():
    model = mlp()
    assert isinstance(model[0], nn.Linear) and model[-1] is model[3]
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is model[0]
    model[1] = nn.Tanh()
    assert isinstance(model[1], nn.Tanh)
    with pytest.raises(IndexError, match="index 9"):
        model[9]


def test_linear_and_conv_initialisation_follows_pytorch():
    mc.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)  # kaiming_uniform(a=sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert layer.weight.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    conv = nn.Conv2d(3, 8, 5)
    conv_bound = 1 / math.sqrt(3 * 5 * 5)
    assert np.abs(conv.weight.data).max() <= conv_bound
    assert conv.weight.data.std() == pytest.approx(conv_bound / math.sqrt(3), rel=0.1)
    assert conv.weight.shape == (8, 3, 5, 5) and layer.weight.dtype == np.float32


def test_layer_gradients_in_float64():
    mc.manual_seed(0)
    linear = nn.Linear(3, 2).double()
    x = mc.tensor(np.random.default_rng(1).standard_normal((4, 3)), requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda x, w, b: linear(x), [x, linear.weight, linear.bias])
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1).double()
    img = mc.tensor(np.random.default_rng(2).standard_normal((2, 2, 5, 5)), requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda x, w, b: conv(x), [img, conv.weight, conv.bias])


def test_flatten_and_maxpool_modules():
    x = mc.randn(2, 3, 4, 4)
    assert nn.Flatten()(x).shape == (2, 48)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 2, 2)


def test_repr_reads_like_pytorch():
    text = repr(nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU()))
    assert text == "Sequential(\n  (0): Linear(in_features=4, out_features=3, bias=False)\n  (1): ReLU()\n)"


def test_forward_pre_hooks_are_listed_in_order_and_removable_through_their_handles():
    layer = nn.Linear(2, 2)
    first, second = (lambda m, a: None), (lambda m, a: None)
    layer.register_forward_pre_hook(first)
    layer.register_forward_pre_hook(second)
    hooks = layer.forward_pre_hooks()
    assert [h for _, h in hooks] == [first, second]
    hooks[0][0].remove()
    assert [h for _, h in layer.forward_pre_hooks()] == [second]


def test_delattr_removes_plain_and_registered_attributes():
    layer = nn.Linear(2, 2)
    layer.note = "plain"
    del layer.note
    assert not hasattr(layer, "note")
    del layer.bias
    assert "bias" not in dict(layer.named_parameters())
    with pytest.raises(AttributeError):
        del layer.missing


def test_a_rejected_checkpoint_changes_nothing_and_names_every_wrong_key():
    a, b = mlp(), mlp()
    before = [p.data.copy() for p in b.parameters()]
    bad = a.state_dict()
    bad["0.bias"] = mc.ones(4)
    bad["3.weight"] = mc.ones(3, 2)
    with pytest.raises(ValueError, match=r"0.bias: checkpoint \(4,\) vs model \(3,\).*3.weight: checkpoint \(3, 2\)"):
        b.load_state_dict(bad)
    assert all(np.array_equal(p.data, old) for p, old in zip(b.parameters(), before))
