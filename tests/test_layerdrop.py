"""LayerDrop (Fan et al. 2019): skipping residual layers while training, pruning them at inference."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress.layerdrop import LayerDrop, ResidualBlock, every_other, prune_layers, residual_mlp


def stack(p, depth=6):
    mc.manual_seed(0)
    return LayerDrop([ResidualBlock(5) for _ in range(depth)], p)


def run_layers(x, layers):
    for layer in layers:
        x = x + layer.fc2(layer.fc1(x).relu())
    return x


def inputs():
    return mc.tensor(np.random.default_rng(0).standard_normal((4, 5)))


def test_residual_block_is_x_plus_a_two_layer_mlp():
    block = stack(0.0).layers[0]
    x = inputs().data
    w1, b1, w2, b2 = block.fc1.weight.data, block.fc1.bias.data, block.fc2.weight.data, block.fc2.bias.data
    np.testing.assert_allclose(block(mc.tensor(x)).data, x + np.maximum(x @ w1.T + b1, 0) @ w2.T + b2, rtol=1e-5)


def test_eval_mode_is_deterministic_and_runs_every_layer():
    model = stack(0.9).eval()
    x = inputs()
    first, second = model(x).data, model(x).data
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, run_layers(x, model.layers).data, rtol=1e-6)


def test_training_mode_skips_layers_with_probability_p():
    model = stack(0.3, depth=10).train()
    calls = []
    for i, layer in enumerate(model.layers):
        layer.register_forward_hook(lambda m, args, out, i=i: calls.append(i))
    x = inputs()
    mc.manual_seed(1)
    outputs = {model(x).data.tobytes() for _ in range(400)}
    assert len(outputs) > 100                                   # different layers dropped each time
    kept = len(calls) / 4000
    assert abs(kept - 0.7) < 3 * np.sqrt(0.7 * 0.3 / 4000), kept   # within 3 standard deviations
    np.testing.assert_array_equal(stack(1.0).train()(x).data, x.data)   # p = 1: the identity
    np.testing.assert_array_equal(stack(0.0).train()(x).data, stack(0.0).eval()(x).data)


def test_every_other_prunes_depths_that_are_multiples_of_one_over_the_rate():
    assert every_other(6, 0.5) == [0, 2, 4]
    assert every_other(8, 0.25) == [0, 1, 2, 4, 5, 6]
    assert every_other(7, 1 / 3) == [0, 1, 3, 4, 6]
    for rate in (0, 0.6, 1.0, -0.5):
        with pytest.raises(ValueError, match=rf"rate \(every other layer at most\) must be a finite number in \(0, 0.5\], got {rate!r}"):
            every_other(6, rate)


def test_pruned_stack_runs_the_kept_layers_of_the_original():
    model = stack(0.5).eval()
    pruned = prune_layers(model, 0.5).eval()
    assert len(pruned.layers) == 3 and all(pruned.layers[i] is model.layers[2 * i] for i in range(3))
    x = inputs()
    np.testing.assert_allclose(pruned(x).data, run_layers(x, [model.layers[i] for i in (0, 2, 4)]).data, rtol=1e-6)
    with pytest.raises(TypeError, match="expected a LayerDrop, got ResidualBlock"):
        prune_layers(model.layers[0])


def test_residual_mlp_shapes_and_bad_probability():
    mc.manual_seed(0)
    model = residual_mlp(784, 32, 4, 10, p=0.2)
    assert isinstance(model[2], LayerDrop) and len(model[2].layers) == 4
    assert model(mc.tensor(np.zeros((3, 784)))).shape == (3, 10)
    with pytest.raises(ValueError, match="p=1.5"):
        LayerDrop([], 1.5)
