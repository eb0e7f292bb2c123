"""Channel pruning across dependencies (prune/dependencies.py) and thinning a CNN with BatchNorm and
residual blocks: the thinned dense model computes what the masked one does."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn, prune
from minitorch_compress.blocks import BasicBlock, DepthwiseSeparable, Fire, InvertedResidual


def randomise_bn(model, seed=0):
    """BatchNorms with affine parameters and running statistics far from their initial 1s and 0s."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.weight.data[...] = rng.random(m.num_features) + 0.5
            m.bias.data[...] = rng.standard_normal(m.num_features)
            m.running_mean.data[...] = rng.standard_normal(m.num_features)
            m.running_var.data[...] = rng.random(m.num_features) + 0.5
    return model


def resnet():
    mc.manual_seed(0)
    return randomise_bn(nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                      BasicBlock(8, 8), BasicBlock(8, 12, stride=2),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 3)))


def test_groups_of_a_residual_network():
    groups = {g.name: g for g in prune.channel_groups(resnet())}
    assert list(groups) == ["input", "0", "3.conv1", "4.conv1", "4.shortcut.0", "7"]
    stem = groups["0"]   # the stem's channels run through block 3's identity shortcut: one group
    assert stem.producers == ["0", "3.conv2"] and stem.channelwise == ["1", "3.bn2"]
    assert stem.consumers == ["3.conv1", "4.conv1", "4.shortcut.0"] and stem.size == 8 and not stem.fixed
    out = groups["4.shortcut.0"]   # a projection shortcut and the block's conv2 write the same channels
    assert out.producers == ["4.shortcut.0", "4.conv2"] and out.channelwise == ["4.shortcut.1", "4.bn2"]
    assert out.consumers == ["7"]
    assert groups["input"].fixed and groups["7"].fixed and groups["3.conv1"].consumers == ["3.conv2"]


def test_group_scores_sum_the_producers_filters():
    model = resnet()
    group = next(g for g in prune.channel_groups(model) if g.name == "0")
    w0, w1 = model[0].weight.data, model[3].conv2.weight.data
    expected = (w0 ** 2).sum(axis=(1, 2, 3)) + (w1 ** 2).sum(axis=(1, 2, 3))    # squared L2 norm across the group
    np.testing.assert_allclose(group.scores(model, prune.Magnitude(2)), expected, rtol=1e-5)


def test_pruning_a_residual_group_masks_every_member():
    model = resnet()
    prune.prune_channels(model, {"0": 0.5}, prune.Magnitude(2))
    group = next(g for g in prune.channel_groups(model) if g.name == "0")
    scores = (model[0].weight_orig.data ** 2).sum(axis=(1, 2, 3)) + (model[3].conv2.weight_orig.data ** 2).sum(axis=(1, 2, 3))
    gone = np.sort(np.argsort(scores)[:4])
    np.testing.assert_array_equal(np.flatnonzero(prune.pruned_channels(model, group)), gone)
    for conv in (model[0], model[3].conv2):
        assert not conv.weight.data[gone].any() and conv.weight.data[np.setdiff1d(range(8), gone)].all()
    for bn in (model[1], model[3].bn2):
        assert not bn.weight.data[gone].any() and not bn.bias.data[gone].any()
    for reader in (model[3].conv1, model[4].conv1, model[4].shortcut[0]):
        assert not prune.pruned_tensor(reader, "weight")[:, gone].any()
    # the channels are 0 after the add, in training and in eval mode
    x = mc.randn(4, 1, 8, 8)
    for training in (True, False):
        model.train(training)
        assert not model[3](model[2](model[1](model[0](x)))).data[:, gone].any()


@pytest.mark.parametrize("criterion", [prune.Magnitude(2), prune.Random()])
def test_thinned_residual_cnn_computes_the_masked_outputs(criterion):
    model = resnet()
    mc.manual_seed(1)
    prune.prune_channels(model, 0.5, criterion)
    small = prune.thin(model)
    assert [small[0].out_channels, small[3].conv1.out_channels, small[4].conv1.out_channels,
            small[4].conv2.out_channels, small[4].shortcut[0].out_channels] == [4, 4, 6, 6, 6]
    assert small[1].num_features == 4 and small[1].running_mean.shape == (4,) and small[7].in_features == 6
    assert small[3].conv1.weight.shape == (4, 4, 3, 3) and not prune.is_pruned(small)
    x = mc.randn(5, 1, 8, 8)
    for training in (False, True):   # eval: running statistics; training: batch statistics
        model.train(training)
        small.train(training)
        np.testing.assert_allclose(small(x).data, model(x).data, rtol=1e-5, atol=1e-6)
    assert mc.metrics.flops(small, mc.zeros(1, 1, 8, 8))[0] < 0.4 * mc.metrics.flops(model, mc.zeros(1, 1, 8, 8))[0]


def test_vgg_with_flatten_and_fine_tuning_keeps_channels_pruned():
    mc.manual_seed(0)
    model = randomise_bn(nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                                       nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                       nn.Flatten(), nn.Linear(8 * 2 * 2, 16), nn.ReLU(), nn.Linear(16, 3)))
    prune.prune_channels(model, {"0": 0.5, "4": 0.25, "9": 0.5})
    assert not prune.pruned_tensor(model[9], "weight").reshape(16, 8, 4)[:, prune.pruned_channels(
        model, prune.channel_groups(model)[2])].any()                 # a flattened channel: its 2x2 columns
    opt = mc.optim.SGD(model.parameters(), lr=0.1)
    x, y = mc.randn(8, 1, 8, 8), mc.tensor(np.arange(8) % 3)
    for _ in range(3):   # fine-tuning: the masks hold (gradients reach only the kept weights)
        loss = mc.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    small = prune.thin(model.eval())
    assert (small[0].out_channels, small[4].out_channels, small[9].in_features, small[9].out_features) == (3, 6, 24, 8)
    np.testing.assert_allclose(small(x).data, model(x).data, rtol=1e-5, atol=1e-6)


def test_depthwise_and_inverted_residual():
    mc.manual_seed(0)
    model = randomise_bn(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU6(),
                                       InvertedResidual(4, 4, expand_ratio=2), DepthwiseSeparable(4, 6),
                                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2)))
    groups = {g.name: g for g in prune.channel_groups(model)}
    assert groups["0"].producers == ["0", "3.layers.6"] and "4.depthwise" in groups["0"].channelwise
    assert groups["3.layers.0"].channelwise == ["3.layers.1", "3.layers.3", "3.layers.4"]   # depthwise in between
    prune.prune_channels(model, 0.5)
    small = prune.thin(model.eval())
    assert small[4].depthwise.groups == small[4].depthwise.in_channels == 2 and small[3].layers[3].groups == 4
    x = mc.randn(3, 1, 6, 6)
    np.testing.assert_allclose(small(x).data, model(x).data, rtol=1e-5, atol=1e-6)


def test_mlp_neurons_are_channel_groups_too():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    prune.prune_channels(model, 0.25)
    small = prune.thin(model.eval())
    assert small[0].out_features == 6 and small[3].in_features == 6
    x = mc.randn(4, 6)
    np.testing.assert_allclose(small(x).data, model(x).data, rtol=1e-5, atol=1e-6)


def test_unsupported_graphs_are_reported():
    with pytest.raises(ValueError, match="cannot follow channels through Fire"):
        prune.channel_groups(nn.Sequential(nn.Conv2d(1, 4, 1), Fire(4, 2, 2, 2)))
    with pytest.raises(ValueError, match="groups=2"):
        prune.channel_groups(nn.Sequential(nn.Conv2d(1, 4, 1), nn.Conv2d(4, 4, 3, groups=2)))
    with pytest.raises(ValueError, match="cannot follow channels through Sigmoid"):
        prune.channel_groups(nn.Sequential(nn.Conv2d(1, 4, 1), nn.Sigmoid(), nn.Conv2d(4, 4, 1)))
    with pytest.raises(ValueError, match="affine=False"):
        prune.channel_groups(nn.Sequential(nn.Conv2d(1, 4, 1), nn.BatchNorm2d(4, affine=False)))
    with pytest.raises(ValueError, match="not prunable channel groups"):
        prune.prune_channels(resnet(), {"7": 0.5})            # the classifier's outputs are fixed
    with pytest.raises(ValueError, match="amount"):
        prune.prune_channels(resnet(), 1.5)
    with pytest.raises(TypeError, match="Criterion"):
        prune.prune_channels(resnet(), 0.5, criterion="l2")


def test_sensitivity_scan_and_channel_amounts_on_a_cnn_with_batchnorm():
    model = resnet().eval()
    x = mc.randn(4, 1, 8, 8)
    dense_out = model(x).data.copy()

    def distance(m):
        return float(np.abs(m.eval()(x).data - dense_out).max())

    table = prune.sensitivity_scan(model, ["0", "4.conv2"], [0.0, 0.5], distance)
    assert [r.metric == 0.0 for r in table] == [True, False, True, False]
    # a channel-level scan: one group at a time, as prune_channels' dict budget
    for name in ("0", "3.conv1"):
        pruned = prune.prune_channels(resnet().eval(), {name: 0.5})
        assert distance(pruned) > 0 and prune.pruned_channels(pruned, next(
            g for g in prune.channel_groups(pruned) if g.name == name)).sum() == 4
    assert not prune.is_pruned(model)
