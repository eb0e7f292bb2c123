"""Layers for transformers: LayerNorm, Embedding, GELU, and batched products with broadcasting."""
import math

import numpy as np
import pytest

import minitorch_compress as mc
import minitorch_compress.functional as F
from minitorch_compress import nn
from minitorch_compress.gradcheck import gradcheck


def t64(*shape, seed=0):
    return mc.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True, dtype=np.float64)


def test_layer_norm_formula_and_gradients():
    x, w, b = t64(2, 3, 4), t64(4, seed=1), t64(4, seed=2)
    out = F.layer_norm(x, 4, w, b).data
    mean, var = x.data.mean(axis=-1, keepdims=True), x.data.var(axis=-1, keepdims=True)
    np.testing.assert_allclose(out, (x.data - mean) / np.sqrt(var + 1e-5) * w.data + b.data, atol=1e-12)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, 4, w, b), [x, w, b])
    w2, b2 = t64(3, 4, seed=3), t64(3, 4, seed=4)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (3, 4), w, b), [x, w2, b2])   # over two dims
    ln = nn.LayerNorm(4)
    y = ln(mc.randn(5, 4) * 3 + 1).data
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-5)
    assert list(ln.state_dict()) == ["weight", "bias"] and nn.LayerNorm(4, bias=False).bias is None
    with pytest.raises(ValueError, match="does not end in"):
        ln(mc.randn(4, 5))


def test_embedding_picks_rows_and_accumulates_gradients():
    mc.manual_seed(0)
    emb = nn.Embedding(5, 3, padding_idx=0)
    assert np.all(emb.weight.data[0] == 0) and abs(emb.weight.data[1:].std() - 1) < 0.6
    idx = np.array([[1, 2, 1], [0, 4, 1]])
    out = emb(idx)
    np.testing.assert_array_equal(out.data, emb.weight.data[idx])
    out.backward(np.ones((2, 3, 3), np.float32))
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [0, 3, 1, 0, 1])   # index 1 used three times
    w = t64(5, 3)
    assert gradcheck(lambda w: F.embedding(idx, w), [w])
    with pytest.raises(ValueError, match=r"lie in \[0, 5\)"):
        emb(np.array([5]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([1.0]))


def test_gelu_is_x_times_the_normal_cdf():
    x = np.linspace(-7, 7, 57)
    exact = np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(F.gelu(mc.tensor(x, dtype=np.float64)).data, exact, rtol=1e-9, atol=1e-14)
    approx = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(F.gelu(mc.tensor(x, dtype=np.float64), "tanh").data, approx, rtol=1e-12, atol=1e-14)
    for mode in ("none", "tanh"):
        assert gradcheck(lambda a: F.gelu(a, mode), [t64(3, 4)])
    assert nn.GELU("tanh")(mc.tensor([1.0])).shape == (1,)
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("sigmoid")


def test_batched_products_broadcast_and_sum_their_gradients():
    a, b = t64(2, 3, 4, 5), t64(3, 5, 2, seed=1)    # b broadcast over the leading 2
    np.testing.assert_allclose((a @ b).data, np.matmul(a.data, b.data), atol=1e-12)
    assert gradcheck(lambda a, b: a @ b, [a, b])
    q = mc.randn(2, 4, 6, 8)
    np.testing.assert_allclose((q @ q.transpose(-1, -2)).data, np.matmul(q.data, q.data.swapaxes(-1, -2)),
                               rtol=1e-5, atol=1e-5)
    s = F.softmax(q, dim=2).data
    np.testing.assert_allclose(s.sum(axis=2), 1, atol=1e-6)


def attention_by_hand(q_in, k_in, v_in, w, b, wo, bo, heads, blocked):
    """Multi-head attention from its formula, in float64 NumPy, batch first."""
    e = q_in.shape[-1]
    d = e // heads
    q, k, v = (x @ w[i * e:(i + 1) * e].T + b[i * e:(i + 1) * e] for i, x in enumerate((q_in, k_in, v_in)))
    outs, weights = [], []
    for h in range(heads):
        part = slice(h * d, (h + 1) * d)
        scores = q[..., part] @ k[..., part].swapaxes(-1, -2) / np.sqrt(d)
        scores = np.where(blocked, -np.inf, scores)
        p = np.exp(scores - scores.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        outs.append(p @ v[..., part])
        weights.append(p)
    return np.concatenate(outs, axis=-1) @ wo.T + bo, np.mean(weights, axis=0)


def test_multihead_attention_is_its_formula():
    mc.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).double()
    bound = np.sqrt(6 / (8 + 24))
    assert mha.in_proj_weight.shape == (24, 8) and np.abs(mha.in_proj_weight.data).max() <= bound
    assert np.all(mha.in_proj_bias.data == 0) and np.all(mha.out_proj.bias.data == 0)
    rng = np.random.default_rng(0)
    for p in (mha.in_proj_bias, mha.out_proj.bias):   # nonzero biases, to check they are used
        p.data[...] = rng.standard_normal(p.shape)
    q, kv = t64(3, 4, 8), t64(3, 5, 8, seed=1)
    causal = np.triu(np.ones((4, 5), bool), k=1)
    padding = np.zeros((3, 5), bool)
    padding[1, 3:] = True
    out, weights = mha(q, kv, kv, key_padding_mask=padding, attn_mask=causal)
    expected, expected_weights = attention_by_hand(q.data, kv.data, kv.data, mha.in_proj_weight.data,
                                                   mha.in_proj_bias.data, mha.out_proj.weight.data,
                                                   mha.out_proj.bias.data, 2, causal | padding[:, None, :])
    np.testing.assert_allclose(out.data, expected, atol=1e-12)
    np.testing.assert_allclose(weights.data, expected_weights, atol=1e-12)
    assert np.all(weights.data[1, :, 3:] == 0) and np.all(weights.data[:, 0, 1:] == 0)
    assert gradcheck(lambda q, kv: mha(q, kv, kv, attn_mask=causal)[0], [q, kv])
    # sequence first, as PyTorch's default
    seq_first = nn.MultiheadAttention(8, 2).double()
    seq_first.load_state_dict(mha.state_dict())
    out2, _ = seq_first(q.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1), attn_mask=causal)
    np.testing.assert_allclose(out2.transpose(0, 1).data, mha(q, kv, kv, attn_mask=causal)[0].data, atol=1e-12)
    assert mha(q, kv, kv, need_weights=False)[1] is None
    assert mha(q, kv, kv, average_attn_weights=False)[1].shape == (3, 2, 4, 5)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(10, 3)


def test_scaled_dot_product_attention_follows_pytorch():
    # One query, two keys, d = 4: scores (q.k) / 2 = (0, ln 3), so weights (1/4, 3/4).
    q = mc.tensor([[[[2 * math.log(3) / 4] * 4]]], dtype=np.float64)
    k = mc.tensor([[[[0.0] * 4, [1.0] * 4]]], dtype=np.float64)
    v = mc.tensor([[[[4.0, 0.0], [0.0, 8.0]]]], dtype=np.float64)
    out = F.scaled_dot_product_attention(q, k, v)
    assert isinstance(out, mc.Tensor)   # the output only, as PyTorch
    np.testing.assert_allclose(out.data, [[[[1.0, 6.0]]]], atol=1e-12)
    # scale=1: scores (0, 2 ln 3) give weights (1/10, 9/10)
    np.testing.assert_allclose(F.scaled_dot_product_attention(q, k, v, scale=1.0).data, [[[[0.4, 7.2]]]], atol=1e-12)
    # is_causal: query i attends to keys 0..i, the same as a lower-triangular boolean mask (True = may attend)
    qs, ks, vs = t64(2, 3, 4, 5), t64(2, 3, 4, 5, seed=1), t64(2, 3, 4, 2, seed=2)
    causal = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)
    np.testing.assert_array_equal(causal.data, F.scaled_dot_product_attention(qs, ks, vs, np.tril(np.ones((4, 4), bool))).data)
    np.testing.assert_allclose(causal.data[:, :, 0], vs.data[:, :, 0], atol=1e-12)   # the first query sees one key
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(qs, ks, vs, np.ones((4, 4), bool), is_causal=True)
    # a query with no allowed key: output and gradients 0, not NaN (PyTorch's safe softmax)
    mask = np.ones((4, 4), bool)
    mask[2] = False
    out = F.scaled_dot_product_attention(qs, ks, vs, mask)
    assert np.all(out.data[:, :, 2] == 0) and np.all(np.isfinite(out.data))
    out.backward(np.ones(out.shape))
    assert np.all(qs.grad[:, :, 2] == 0) and np.all(np.isfinite(ks.grad))
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask), [qs, ks, vs])
    _, weights = F.attention(qs, ks, vs, mask)
    assert np.all(weights.data[:, :, 2] == 0) and np.allclose(np.delete(weights.data, 2, axis=2).sum(-1), 1)


@pytest.mark.parametrize("norm_first", [True, False])
def test_transformer_encoder_layer(norm_first):
    mc.manual_seed(1)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=norm_first).double()
    x = t64(2, 5, 8)
    sa = lambda h: layer.self_attn(h, h, h)[0]   # noqa: E731
    if norm_first:
        h = x + sa(layer.norm1(x))
        expected = h + layer.feed_forward(layer.norm2(h))
    else:
        h = layer.norm1(x + sa(x))
        expected = layer.norm2(h + layer.feed_forward(h))
    np.testing.assert_allclose(layer(x).data, expected.data, atol=1e-12)
    assert gradcheck(lambda x: layer(x), [x])
