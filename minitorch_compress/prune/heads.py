"""Attention-head importance and pruning (Michel, Levy & Neubig 2019, "Are Sixteen Heads Really
Better than One?", arXiv:1905.10650).

Each head h of a ``MultiheadAttention`` gets a gate xi_h multiplying its output before the output
projection (the module's ``head_mask``): out = concat_h(xi_h head_h) W_o^T + b_o. With all xi = 1 the
model is unchanged; xi_h = 0 removes head h. A head's importance is how much the loss L moves when
its gate moves (the first-order Taylor estimate of the loss change from masking it, their eq. 2)::

    I_h = E_x | dL(x) / dxi_h |

``head_importance`` accumulates |dL_batch/dxi_h| over the batches of a loader (the mean over batches;
as in the paper's code, github.com/pmichel31415/are-16-heads-really-better-than-1, and HF's
``run_bertology.py``, the absolute value is taken of each batch's gradient: batches of one example
give the per-example expectation) and, as that code does, divides each layer's scores by their L2
norm (``normalize=True``: I_h / (||I_layer||_2 + 1e-20)), so that layers are comparable.
``mask_heads`` then sets to 0 the gates of the least important heads over the whole model (globally,
Michel et al.'s section 4.2), already masked heads staying masked.

``prune_heads`` removes heads physically (HF transformers' ``prune_heads``): head h's rows
h*D .. (h+1)*D of the query, key and value blocks of ``in_proj_weight``/``in_proj_bias`` and the same
columns of ``out_proj.weight``; ``num_heads`` drops and each kept head keeps its head_dim (and
1/sqrt(head_dim) scaling), so the pruned module computes exactly what the masked one did, with
fewer multiplications. ``remove_masked_heads`` does that for every head whose gate is 0.

All of these work on float attention: on a quantized one (``quant.DynamicMultiheadAttention``, whose
projections are int8 ``DynamicLinear`` layers with no ``in_proj_weight`` and no gradient) they raise
TypeError: choose and prune heads before quantizing.
"""
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from .. import functional as F
from ..nn import Linear, Module, MultiheadAttention, Parameter
from ..tensor import Tensor
from ..validation import check_number, is_int


def attention_modules(model):
    """(name, module) of every ``MultiheadAttention`` in ``model`` (``model`` itself included), in order."""
    if not isinstance(model, Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, MultiheadAttention)]
    if not found:
        raise ValueError(f"{type(model).__name__} has no MultiheadAttention")
    return found


def _float_attention_modules(model):
    """``attention_modules(model)``, each checked to be a float MultiheadAttention (TypeError otherwise)."""
    modules = attention_modules(model)
    for name, mha in modules:
        _check_float(name, mha)
    return modules


def _check_float(name, mha):
    if not isinstance(mha.out_proj, Linear) or not isinstance(getattr(mha, "in_proj_weight", None), Parameter):
        raise TypeError(f"{name or 'the module'} is a quantized {type(mha).__name__} (out_proj "
                        f"{type(mha.out_proj).__name__}): head masks, importance and pruning work on float "
                        f"MultiheadAttention, prune heads before quantizing")


def _gates(mha):
    """The module's head gates as a float array (ones where no mask is set)."""
    if mha.head_mask is None:
        return np.ones(mha.num_heads, mha.in_proj_weight.dtype)
    return np.array(mha.head_mask.data, mha.in_proj_weight.dtype)


def head_masks(model):
    """{attention module name: its (num_heads,) gates as an array}, ones where none is set."""
    return OrderedDict((name, _gates(m)) for name, m in _float_attention_modules(model))


def set_head_masks(model, masks):
    """Set the gates xi of the named attention modules (a dict as ``head_masks`` returns); None removes a mask."""
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks must be a dict {{attention module name: gates or None}}, got {type(masks).__name__}")
    modules = dict(_float_attention_modules(model))
    for name, mask in masks.items():
        if name not in modules:
            raise ValueError(f"no MultiheadAttention named {name!r}; the model has {list(modules)}")
        mha = modules[name]
        if mask is None:
            mha.head_mask = None
            continue
        mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask, mha.in_proj_weight.dtype)
        if mask.shape != (mha.num_heads,):
            raise ValueError(f"mask of shape {mask.shape} for {name!r} does not fit num_heads={mha.num_heads}")
        mha.head_mask = Tensor(mask)


def _normalize_by_layer(scores):
    return OrderedDict((name, s / (np.sqrt((s * s).sum()) + 1e-20)) for name, s in scores.items())


def head_importance(model, loader, loss_fn=F.cross_entropy, normalize=True, max_batches=None):
    """{attention module name: (num_heads,) importance I_h}: the mean over the batches (x, y) of
    ``loader`` of |d loss_fn(model(x), y) / d xi_h|, each layer then divided by its L2 norm if ``normalize``.

    Runs in eval mode (no dropout) at the current gates; parameters get no gradient (their
    ``requires_grad`` flags and the model's mode are restored afterwards). Batches must be (x, y) pairs.
    """
    modules = _float_attention_modules(model)
    if max_batches is not None and (not is_int(max_batches) or max_batches < 1):
        raise ValueError(f"max_batches must be a positive int or None, got {max_batches!r}")
    saved_masks = [m.head_mask for _, m in modules]
    params = list(model.parameters())
    flags, was_training = [p.requires_grad for p in params], model.training
    totals = OrderedDict((name, np.zeros(m.num_heads, np.float64)) for name, m in modules)
    batches = 0
    try:
        model.eval()
        for p in params:
            p.requires_grad = False
        gates = [Tensor(_gates(m), requires_grad=True) for _, m in modules]
        for (_, m), gate in zip(modules, gates):
            m.head_mask = gate
        for batch in loader:
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                got = f"a {type(batch).__name__}" + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                raise TypeError(f"head_importance needs batches (x, y) for loss_fn(model(x), y), got {got}")
            x, y = batch
            for gate in gates:
                gate.grad = None
            loss = loss_fn(model(x), y)
            loss.backward()
            for (name, _), gate in zip(modules, gates):
                if gate.grad is not None:
                    totals[name] += np.abs(gate.grad)
            batches += 1
            if max_batches is not None and batches >= max_batches:
                break
    finally:
        for (_, m), mask in zip(modules, saved_masks):
            m.head_mask = mask
        for p, flag in zip(params, flags):
            p.requires_grad = flag
        model.train(was_training)
    if batches == 0:
        raise ValueError("head_importance got an empty loader")
    scores = OrderedDict((name, total / batches) for name, total in totals.items())
    return _normalize_by_layer(scores) if normalize else scores


def mask_heads(model, importance, amount):
    """Gate off (xi = 0) the least important heads over the whole model until ``amount`` of all heads
    (a fraction in [0, 1], or an int count) are masked; heads already masked stay masked and count.
    ``importance`` is a dict as ``head_importance`` returns. Ties go to the earlier head.
    Returns ``head_masks(model)``."""
    modules = _float_attention_modules(model)
    if not isinstance(importance, Mapping):
        raise TypeError(f"importance must be a dict {{attention module name: scores}}, got {type(importance).__name__}")
    total = sum(m.num_heads for _, m in modules)
    if isinstance(amount, bool) or not isinstance(amount, (int, float, np.integer, np.floating)):
        raise TypeError(f"amount must be a fraction or a number of heads, got {type(amount).__name__}")
    if is_int(amount):
        if not 0 <= amount <= total:
            raise ValueError(f"amount={amount} heads is outside [0, {total}]")
        target = int(amount)
    else:
        check_number("amount", amount, 0, 1)
        target = int(round(amount * total))
    masks = head_masks(model)
    candidates = []
    for position, (name, m) in enumerate(modules):
        if name not in importance:
            raise ValueError(f"importance has no scores for {name!r}")
        scores = np.asarray(importance[name], np.float64)
        if scores.shape != (m.num_heads,):
            raise ValueError(f"importance for {name!r} has shape {scores.shape}, expected ({m.num_heads},)")
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"importance for {name!r} is not finite at head(s) "
                             f"{np.flatnonzero(~np.isfinite(scores)).tolist()}: {scores}")
        candidates += [(scores[h], position, h, name) for h in range(m.num_heads) if masks[name][h] != 0]
    already = total - len(candidates)
    for _, _, h, name in sorted(candidates)[:max(0, target - already)]:
        masks[name][h] = 0
    set_head_masks(model, masks)
    return head_masks(model)


def _taken(param, index):
    """A new Parameter holding ``param.data[index]``, with its dtype and ``requires_grad``."""
    return Parameter(Tensor(np.ascontiguousarray(param.data[index])), param.requires_grad)


def _prune_attention(mha, heads):
    heads = sorted(set(heads))
    if not heads:   # nothing to remove: the module keeps its very Parameters (an optimizer still holds them)
        return
    keep = [h for h in range(mha.num_heads) if h not in heads]
    d, inner = mha.head_dim, mha.num_heads * mha.head_dim
    cols = np.array([h * d + j for h in keep for j in range(d)], np.int64)
    rows = np.concatenate([i * inner + cols for i in range(3)])
    mha.in_proj_weight = _taken(mha.in_proj_weight, rows)
    if mha.in_proj_bias is not None:
        mha.in_proj_bias = _taken(mha.in_proj_bias, rows)
    mha.out_proj.weight = _taken(mha.out_proj.weight, (slice(None), cols))
    mha.out_proj.in_features = len(cols)
    if mha.head_mask is not None:
        mha.head_mask = Tensor(np.ascontiguousarray(mha.head_mask.data[keep]))
    mha.num_heads = len(keep)


def prune_heads(module, heads):
    """Remove heads physically, in place; returns ``module``. ``module`` is a ``MultiheadAttention``
    and ``heads`` an iterable of its head indices, or ``module`` is a model and ``heads`` a dict
    {attention module name: head indices} (as HF's ``model.prune_heads({layer: heads})``).
    Indices count the module's current heads (0 .. num_heads - 1). Every entry is checked before
    any head is removed, so bad input leaves the model as it was. A module with no head to remove
    keeps its Parameters (the same objects)."""
    if isinstance(module, MultiheadAttention) and not isinstance(heads, Mapping):
        targets = {"": heads}
        modules = {"": module}
    else:
        if not isinstance(heads, Mapping):
            raise TypeError(f"for a model, heads must be a dict {{attention module name: head indices}}, "
                            f"got {type(heads).__name__}")
        modules, targets = dict(attention_modules(module)), heads
    plan = []
    for name, chosen in targets.items():
        where = name or "the module"
        if name not in modules:
            raise ValueError(f"no MultiheadAttention named {name!r}; the model has {list(modules)}")
        if isinstance(chosen, (str, bytes)) or not hasattr(chosen, "__iter__"):
            raise TypeError(f"heads for {where} must be an iterable of head indices, got {type(chosen).__name__}")
        mha, chosen = modules[name], list(chosen)
        not_int = [h for h in chosen if not is_int(h)]
        if not_int:
            raise TypeError(f"head index {not_int[0]!r} for {where} is not an int")
        bad = [h for h in chosen if not 0 <= h < mha.num_heads]
        if bad:
            raise ValueError(f"head index {bad[0]!r} is outside [0, {mha.num_heads}) for {where}")
        _check_float(name, mha)
        plan.append((mha, chosen))
    for mha, chosen in plan:
        _prune_attention(mha, chosen)
    return module


def remove_masked_heads(model):
    """``prune_heads`` every head whose gate is 0, in place; the remaining gates are kept. Returns ``model``.
    (An optimizer made before holds the old parameters: make a new one to fine-tune.)"""
    plan = {name: [h for h, g in enumerate(mask) if g == 0] for name, mask in head_masks(model).items()}
    return prune_heads(model, plan)


def count_heads(model):
    """{attention module name: num_heads}."""
    return OrderedDict((name, m.num_heads) for name, m in attention_modules(model))
