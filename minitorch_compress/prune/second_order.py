"""Second-order pruning: the Hessian of the loss, Optimal Brain Damage and Optimal Brain Surgeon.

Around a minimum w* (gradient ~ 0), removing weights changes the loss by the Taylor expansion

    dL = g^T dw + 1/2 dw^T H dw + O(|dw|^3),      H = d^2 L / dw^2,

whose first term vanishes. Zeroing weight k alone (dw = -w_k e_k) costs about 1/2 h_kk w_k^2:
**OBD**'s saliency (LeCun, Denker & Solla 1990), which keeps only the diagonal of H. **OBS**
(Hassibi & Stork 1993) also lets the other weights move to compensate: minimising dL subject to
e_q^T dw = -w_q gives

    dw = -w_q / [H^-1]_qq * H^-1 e_q,              saliency L_q = w_q^2 / (2 [H^-1]_qq),

and after removing q, H^-1 of the remaining weights is H^-1 - H^-1 e_q e_q^T H^-1 / [H^-1]_qq.

Everything here works on a float64 copy of the model and a fixed batch ``(X, y)``; parameters are
given as ``(module, name)`` pairs (of the copy's original, matched by position), flattened and
concatenated in that order into one vector of n weights.

- ``hessian``: the exact n x n Hessian, column j by central differences of the engine's
  (analytic) gradient, (g(w + h e_j) - g(w - h e_j)) / 2h, then symmetrised: 2n backward passes
  and n^2 numbers, so for networks of a few thousand weights. Differencing gradients (not losses)
  keeps the error at O(h^2) relative to the gradient, which float64 resolves.
- ``hessian_vector_product``: H v the same way, two backward passes for any n.
- ``hessian_diagonal``: the exact diagonal (from ``hessian``), Hutchinson's estimate
  E[z * (H z)] with random signs z (Bekas et al. 2007; used at scale), or the empirical Fisher
  mean of per-example squared gradients (a Gauss-Newton-like approximation near a minimum).
- ``drop_one``: the oracle, the measured loss increase from zeroing each weight alone.
- ``OBD``: a ``Criterion`` with saliency 1/2 h_kk w_k^2, usable wherever ``Magnitude()`` is.
- ``obs_prune``: OBS, one weight at a time with the correction above, applied as pruning masks.
"""
import copy

import numpy as np

from .. import functional as F
from ..random import get_rng
from ..tensor import no_grad
from .criteria import Criterion
from .methods import custom_from_mask, pruned_tensor


class _Flat:
    """The chosen parameters of a float64 copy of a model as one vector, and the loss around it."""

    def __init__(self, model, parameters, loss_fn, X, y):
        parameters = list(parameters)
        if not parameters:
            raise ValueError("parameters is empty: give (module, name) pairs")
        index = {id(m): i for i, m in enumerate(model.modules())}
        for module, name in parameters:
            if id(module) not in index:
                raise ValueError(f"{type(module).__name__} in parameters is not a submodule of the model")
        self.model = copy.deepcopy(model).double().eval()
        modules = list(self.model.modules())
        self.tensors, masks = [], []
        for module, name in parameters:
            copy_module = modules[index[id(module)]]
            params, buffers = dict(copy_module.named_parameters(recurse=False)), dict(copy_module.named_buffers(recurse=False))
            if name + "_orig" in params and name + "_mask" in buffers:   # pruned: the mask stays applied
                self.tensors.append(params[name + "_orig"])
                masks.append(buffers[name + "_mask"].data.ravel() != 0)
            elif name in params:
                self.tensors.append(params[name])
                masks.append(np.ones(params[name].size, bool))
            else:
                raise ValueError(f"{type(module).__name__} has no parameter {name!r}")
        self.sizes = [t.size for t in self.tensors]
        self.alive = np.concatenate(masks)     # weights not pruned already
        self.loss_fn, self.X, self.y = loss_fn, X, y

    @property
    def n(self):
        return sum(self.sizes)

    def get(self):
        return np.concatenate([t.data.ravel() for t in self.tensors]) * self.alive

    def set(self, w):
        for t, part in zip(self.tensors, np.split(w, np.cumsum(self.sizes)[:-1])):
            t.data[...] = part.reshape(t.shape)

    def loss(self, w=None):
        if w is not None:
            self.set(w)
        with no_grad():
            return float(self.loss_fn(self.model(self.X), self.y).data)

    def gradient(self, w=None, X=None, y=None):
        if w is not None:
            self.set(w)
        self.model.zero_grad()
        self.loss_fn(self.model(self.X if X is None else X), self.y if y is None else y).backward()
        return np.concatenate([(np.zeros(t.shape) if t.grad is None else t.grad).ravel() for t in self.tensors])

    def hvp(self, w, v, eps):
        """H v at w by central differences of the gradient along v."""
        scale = eps / max(np.abs(v).max(), 1e-300)
        return (self.gradient(w + scale * v) - self.gradient(w - scale * v)) / (2 * scale)

    def split(self, vector):
        return np.split(vector, np.cumsum(self.sizes)[:-1])


def hessian(model, parameters, X, y, loss_fn=F.cross_entropy, eps=1e-4):
    """The exact Hessian (n x n, float64) of ``loss_fn(model(X), y)`` w.r.t. ``parameters``."""
    flat = _Flat(model, parameters, loss_fn, X, y)
    w = flat.get()
    H = np.column_stack([flat.hvp(w, np.eye(1, flat.n, j)[0], eps) for j in range(flat.n)])
    return (H + H.T) / 2


def hessian_vector_product(model, parameters, X, y, v, loss_fn=F.cross_entropy, eps=1e-4):
    """H v by central differences of the gradient along v: two backward passes."""
    flat = _Flat(model, parameters, loss_fn, X, y)
    v = np.asarray(v, np.float64)
    if v.shape != (flat.n,):
        raise ValueError(f"v must have shape ({flat.n},), one entry per weight, got {v.shape}")
    return flat.hvp(flat.get(), v, eps)


def hessian_diagonal(model, parameters, X, y, loss_fn=F.cross_entropy, method="exact", samples=64):
    """diag(H): ``"exact"``, ``"hutchinson"`` (``samples`` random-sign probes, from the package
    generator) or ``"fisher"`` (mean over the examples of X of each weight's squared gradient)."""
    if method == "exact":
        return np.diag(hessian(model, parameters, X, y, loss_fn)).copy()
    flat = _Flat(model, parameters, loss_fn, X, y)
    if method == "hutchinson":
        rng, w = get_rng(), flat.get()
        probes = [rng.choice([-1.0, 1.0], flat.n) for _ in range(samples)]
        return np.mean([z * flat.hvp(w, z, 1e-4) for z in probes], axis=0)
    if method == "fisher":
        return np.mean([flat.gradient(X=X[i:i + 1], y=y[i:i + 1]) ** 2 for i in range(len(X))], axis=0)
    raise ValueError(f"method must be 'exact', 'hutchinson' or 'fisher', got {method!r}")


def drop_one(model, parameters, X, y, loss_fn=F.cross_entropy):
    """The oracle: for each weight k, L(w with w_k = 0) - L(w), measured (n + 1 forward passes)."""
    flat = _Flat(model, parameters, loss_fn, X, y)
    w = flat.get()
    base = flat.loss(w)
    increases = np.empty(flat.n)
    for k in range(flat.n):
        dropped = w.copy()
        dropped[k] = 0.0
        increases[k] = flat.loss(dropped) - base
    return increases


class OBD(Criterion):
    """Optimal Brain Damage's saliency 1/2 h_kk w_k^2 (LeCun et al. 1990), with h_kk the diagonal
    of the Hessian of ``loss_fn`` on the batch ``(X, y)`` (``method`` as in ``hessian_diagonal``)."""

    def __init__(self, X, y, loss_fn=F.cross_entropy, method="exact"):
        if method not in ("exact", "hutchinson", "fisher"):
            raise ValueError(f"method must be 'exact', 'hutchinson' or 'fisher', got {method!r}")
        self.X, self.y, self.loss_fn, self.method = X, y, loss_fn, method

    def scores(self, model, layer="", name="weight"):
        module = dict(model.named_modules()).get(layer)
        if module is None:
            raise ValueError(f"the model has no submodule {layer!r}")
        w = pruned_tensor(module, name)
        h = hessian_diagonal(model, [(module, name)], self.X, self.y, self.loss_fn, self.method)
        return 0.5 * h.reshape(w.shape) * w.astype(np.float64) ** 2

    def __repr__(self):
        return f"OBD(method={self.method!r})"


def obs_prune(model, parameters, X, y, amount, loss_fn=F.cross_entropy, damping=1e-4, H=None):
    """Optimal Brain Surgeon: remove ``amount`` (a fraction of all the weights of ``parameters``, or
    a count) of the still unpruned weights, one at a time, each time the one of least saliency
    w_q^2 / (2 [H^-1]_qq), moving the others by dw = -w_q / [H^-1]_qq H^-1 e_q.

    H is the exact Hessian (or ``H``, one computed before by ``hessian`` for the same model,
    parameters and batch, to reuse across calls) plus ``damping`` times the mean of its diagonal on
    the diagonal (a singular or indefinite H away from an exact minimum has no useful inverse).
    Weights pruned before stay at zero: H^-1 is the inverse of H restricted to the unpruned weights,
    so calling again with the same ``H`` continues the same sequence of removals. The corrected
    weights are written into ``model`` and the removed ones masked (``prune.custom_from_mask``).
    Returns the predicted loss increase of each removal, in order.
    """
    flat = _Flat(model, parameters, loss_fn, X, y)
    n = flat.n
    count = int(round(amount * n)) if isinstance(amount, float) else int(amount)
    if not 0 <= count <= n:
        raise ValueError(f"amount={amount!r} asks for {count} of {n} weights")
    w, alive = flat.get(), flat.alive.copy()
    if count > alive.sum():
        raise ValueError(f"amount={amount!r} asks for {count} weights but only {alive.sum()} are left unpruned")
    if H is None:
        H = hessian(model, parameters, X, y, loss_fn)
    H = np.asarray(H, np.float64)
    if H.shape != (n, n):
        raise ValueError(f"H must have shape ({n}, {n}), one row and column per weight, got {H.shape}")
    H = H + damping * max(np.mean(np.diag(H)), 1e-12) * np.eye(n)
    rows = np.flatnonzero(alive)                   # the weights H_inv has rows for
    H_inv = np.linalg.inv(H[np.ix_(rows, rows)])   # the inverse of H restricted to the unpruned weights
    live = np.ones(rows.size, bool)
    predicted = []
    for _ in range(count):
        diag = np.where(live, np.diag(H_inv), np.inf)
        saliency = np.where(live, w[rows] ** 2 / (2 * diag), np.inf)
        j = int(np.argmin(saliency))
        predicted.append(saliency[j])
        w[rows] -= w[rows[j]] / H_inv[j, j] * H_inv[:, j]
        w[rows[j]] = 0.0
        H_inv -= np.outer(H_inv[:, j], H_inv[j, :]) / H_inv[j, j]
        live[j] = False
        if live.sum() < 0.75 * live.size:         # drop the removed rows: later steps cost less
            rows, H_inv, live = rows[live], H_inv[np.ix_(live, live)], live[live]
    alive[:] = False
    alive[rows[live]] = True
    for (module, name), part, mask in zip(parameters, flat.split(w), flat.split(alive)):
        params = dict(module.named_parameters(recurse=False))
        param = params.get(name + "_orig", params.get(name))
        param.data[...] = part.reshape(param.shape).astype(param.dtype)
        custom_from_mask(module, name, mask.reshape(param.shape).astype(param.dtype))
    return np.array(predicted)
