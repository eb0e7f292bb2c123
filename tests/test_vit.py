"""The vision transformer: patches against a hand loop, the forward pass against its formula,
gradients against finite differences (float64), torchvision's names and shapes, bad input."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn
from minitorch_compress.gradcheck import gradcheck
from minitorch_compress.vit import VisionTransformer, patchify


def test_patchify_matches_a_hand_loop_and_a_strided_convolution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 12)).astype(np.float32)
    tokens = patchify(mc.tensor(x), 4).data
    assert tokens.shape == (2, 6, 48)
    for n in range(2):
        for gi in range(2):
            for gj in range(3):
                expected = [x[n, c, 4 * gi + u, 4 * gj + v] for c in range(3) for u in range(4) for v in range(4)]
                np.testing.assert_array_equal(tokens[n, gi * 3 + gj], expected)
    # the patch Linear is torchvision's conv_proj: Conv2d(C, D, kernel_size=p, stride=p), its weight flattened
    conv = nn.Conv2d(3, 5, 4, stride=4)
    by_conv = conv(mc.tensor(x)).data.reshape(2, 5, 6).transpose(0, 2, 1)
    by_tokens = tokens @ conv.weight.data.reshape(5, -1).T + conv.bias.data
    np.testing.assert_allclose(by_tokens, by_conv, rtol=1e-5, atol=1e-5)


def tiny(**kwargs):
    mc.manual_seed(0)
    config = dict(image_size=8, patch_size=4, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=12, num_classes=3)
    model = VisionTransformer(**{**config, **kwargs})
    model.heads.head.weight.data[...] = mc.get_rng().standard_normal(model.heads.head.weight.shape)   # not zero
    return model


def test_shapes_names_and_initialisation():
    model = tiny(in_channels=2)
    x = mc.randn(5, 2, 8, 8)
    assert model(x).shape == (5, 3)
    assert model.seq_length == 5 and model.class_token.shape == (1, 1, 8)
    assert model.encoder.pos_embedding.shape == (1, 5, 8) and len(model.encoder.layers) == 2
    names = [name for name, _ in model.named_parameters()]
    assert names[:3] == ["class_token", "patch_proj.weight", "patch_proj.bias"]
    assert "encoder.layers.encoder_layer_1.self_attn.in_proj_weight" in names and names[-2:] == ["heads.head.weight",
                                                                                              "heads.head.bias"]
    layer = model.encoder.layers[0]
    assert layer.norm_first and layer.self_attn.batch_first and layer.norm1.eps == 1e-6
    fresh = VisionTransformer(8, 4, 1, 2, 8, 12, num_classes=3)
    assert not fresh.heads.head.weight.data.any() and not fresh.class_token.data.any()
    # flattened images (mc.data's default) are read as (N, C, H, W)
    np.testing.assert_array_equal(model(x.reshape(5, -1)).data, model(x).data)


def test_forward_is_the_formula():
    model = tiny().double().eval()
    x = mc.tensor(np.random.default_rng(1).standard_normal((3, 1, 8, 8)), dtype=np.float64)
    tokens = patchify(x, 4).data @ model.patch_proj.weight.data.T + model.patch_proj.bias.data
    z = np.concatenate([np.broadcast_to(model.class_token.data, (3, 1, 8)), tokens], axis=1)
    z = mc.tensor(z + model.encoder.pos_embedding.data, dtype=np.float64)
    for layer in model.encoder.layers:
        h = layer.norm1(z)
        z = z + layer.self_attn(h, h, h)[0]
        z = z + layer.linear2(nn.functional.gelu(layer.linear1(layer.norm2(z))))
    expected = model.encoder.ln(z).data[:, 0] @ model.heads.head.weight.data.T + model.heads.head.bias.data
    np.testing.assert_allclose(model(x).data, expected, atol=1e-12)


def test_gradients_match_finite_differences_in_float64():
    model = tiny().double()
    x = mc.tensor(np.random.default_rng(2).standard_normal((2, 1, 8, 8)), requires_grad=True, dtype=np.float64)
    checked = [model.class_token, model.encoder.pos_embedding, model.patch_proj.weight,
               model.encoder.layers[0].self_attn.in_proj_weight, model.encoder.ln.weight]
    assert gradcheck(lambda x, *params: model(x), [x] + checked)


def test_the_stack_can_be_replaced_by_layerdrop_or_shared_layers():
    from minitorch_compress import layerdrop, sharing
    model = tiny().eval()
    x = mc.randn(2, 1, 8, 8)
    before = model(x).data
    model.encoder.layers = layerdrop.LayerDrop(list(model.encoder.layers), p=0.5)
    np.testing.assert_array_equal(model.eval()(x).data, before)     # eval mode: every layer runs
    shared = tiny()
    shared.encoder.layers = sharing.SharedLayers(lambda: nn.TransformerEncoderLayer(8, 2, 12, 0.0, "gelu", 1e-6, True,
                                                                                    True), 4)
    assert shared(x).shape == (2, 3)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="image_size=28 is not divisible by patch_size=5"):
        VisionTransformer(28, 5, 1, 2, 8, 12, num_classes=10)
    with pytest.raises(ValueError, match="hidden_dim=10 is not divisible by num_heads=4"):
        VisionTransformer(28, 7, 1, 4, 10, 12, num_classes=10)
    with pytest.raises(ValueError, match="num_layers"):
        VisionTransformer(28, 7, 0, 2, 8, 12, num_classes=10)
    with pytest.raises(ValueError, match="dropout"):
        VisionTransformer(28, 7, 1, 2, 8, 12, dropout=1.5, num_classes=10)
    model = tiny()
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\) images, got shape \(2, 1, 8, 9\)"):
        model(mc.randn(2, 1, 8, 9))
    with pytest.raises(TypeError, match="ndarray"):
        model(np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="not divisible by patch_size=3"):
        patchify(mc.randn(1, 1, 8, 8), 3)
    for bad in (0, 2.0):
        with pytest.raises(ValueError, match="patch_size must be a positive int"):
            patchify(mc.randn(1, 1, 8, 8), bad)
