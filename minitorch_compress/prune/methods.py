"""Pruning by masks, exactly as ``torch.nn.utils.prune`` does it.

Pruning parameter ``name`` of a module re-parametrises it:

- the trained values move to the parameter ``<name>_orig`` (the same ``Parameter`` object, so an
  optimizer built before pruning keeps working);
- a buffer ``<name>_mask`` of 0s and 1s records which entries survive;
- a forward pre-hook (the pruning method itself) recomputes ``module.<name> = <name>_orig * <name>_mask``
  before every forward, so the gradient reaches ``<name>_orig`` only where the mask is 1.

Pruning the same parameter again compounds (``PruningContainer``): the new method only looks at
what the previous masks left alive, and ``amount`` counts from that remainder. ``remove`` makes
the pruning permanent. The state-dict keys are ``<name>_orig`` and ``<name>_mask``, as in PyTorch,
so a checkpoint of a pruned model loads into a fresh model once that model has been given the same
re-parametrisation (``identity(module, name)``).

``amount`` is a fraction in [0, 1] (``round(amount * n)`` units, with Python's ``round``) or an
int count. Masks are computed on NumPy arrays: ``compute_mask(t, default_mask)`` receives and
returns arrays shaped like the parameter.
"""
from abc import ABC, abstractmethod
import numbers

import numpy as np

from ..nn import Module, Parameter
from ..random import get_rng
from ..tensor import Tensor


def _array(x, name):
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, (np.ndarray, list, tuple)):
        return np.asarray(x)
    raise TypeError(f"{name} must be a Tensor or an array, got {type(x).__name__}")


def _check_module(module):
    if not isinstance(module, Module):
        raise TypeError(f"expected an nn.Module, got {type(module).__name__}")


def pruned_tensor(module, name):
    """``module.<name>`` as the next forward will see it, as a NumPy array.

    For a pruned parameter that is ``<name>_orig * <name>_mask`` computed now (``module.<name>``
    itself is only refreshed by the next forward); otherwise the parameter's data.
    """
    _check_module(module)
    params, buffers = dict(module.named_parameters(recurse=False)), dict(module.named_buffers(recurse=False))
    if name + "_orig" in params and name + "_mask" in buffers:
        return params[name + "_orig"].data * buffers[name + "_mask"].data
    if name in params:
        return params[name].data
    raise ValueError(f"{type(module).__name__} has no parameter {name!r}; its parameters are {sorted(params)}")


def _current(module, name):
    """The tensor that pruning starts from: ``module.<name>`` (masked if already pruned)."""
    _check_module(module)
    if not isinstance(name, str):
        raise TypeError(f"parameter name must be a str, got {type(name).__name__}")
    params = dict(module.named_parameters(recurse=False))
    if name in params or (name + "_orig" in params and BasePruningMethod.find(module, name)[1] is not None):
        return getattr(module, name)
    names = [n[:-5] if n.endswith("_orig") else n for n in params]
    raise ValueError(f"{type(module).__name__} has no parameter {name!r}; its parameters are {names}")


class ParameterHook(ABC):
    """A forward pre-hook that recomputes ``module.<name>`` before every forward from tensors it
    stores on the module under ``<name><suffix>`` (``STORED``): the mechanism of
    ``torch.nn.utils.prune``, shared by the pruning methods (``<name>_orig * <name>_mask``) and
    k-means weight sharing (``quant.kmeans``: ``<name>_centroids[<name>_indices]``).
    """
    STORED = ()
    _tensor_name = None

    @abstractmethod
    def compute_weight(self, module):
        """``module.<name>`` from the stored tensors, differentiable in the stored parameters."""

    def __call__(self, module, inputs):
        setattr(module, self._tensor_name, self.compute_weight(module))

    @classmethod
    def hooks(cls, module):
        """(handle, hook) for the ``cls`` instances among ``module``'s forward pre-hooks."""
        return [(k, h) for k, h in module.forward_pre_hooks() if isinstance(h, cls)]

    @classmethod
    def find(cls, module, name):
        """(handle, hook) of the ``cls`` hook acting on ``module.<name>``, or (None, None)."""
        found = [(k, h) for k, h in cls.hooks(module) if h._tensor_name == name]
        if len(found) > 1:
            raise RuntimeError(f"{len(found)} {cls.__name__} hooks act on {name!r} of {type(module).__name__}; "
                               "expected one (pruning combines its methods in one PruningContainer)")
        return found[0] if found else (None, None)

    def register(self, module):
        """Set ``module.<name>`` now and recompute it before every forward."""
        setattr(module, self._tensor_name, self.compute_weight(module))
        return module.register_forward_pre_hook(self)

    def permanent_parameter(self, module):
        """The plain ``Parameter`` that ``remove`` leaves as ``module.<name>``: a new one holding the
        computed value (pruning overrides this to keep ``<name>_orig``'s object)."""
        return Parameter(self.compute_weight(module).data.copy())

    def remove(self, module):
        """Make ``module.<name>`` a plain parameter holding the computed value and drop the stored
        tensors (the caller removes the hook's handle)."""
        param = self.permanent_parameter(module)
        for suffix in self.STORED:
            if hasattr(module, self._tensor_name + suffix):
                delattr(module, self._tensor_name + suffix)
        setattr(module, self._tensor_name, param)   # registering the parameter replaces the plain attribute


class BasePruningMethod(ParameterHook):
    """A way of computing a mask; also the forward pre-hook that applies it.

    Subclasses set ``PRUNING_TYPE`` (``"unstructured"``, ``"structured"`` or ``"global"``), which
    tells ``PruningContainer`` which part of an already pruned tensor a new mask is computed on,
    and implement ``compute_mask(t, default_mask)``.
    """
    PRUNING_TYPE = None
    STORED = ("_orig", "_mask")

    @abstractmethod
    def compute_mask(self, t, default_mask):
        """The mask for importance scores ``t`` (an array) on top of ``default_mask`` (same shape)."""

    def apply_mask(self, module):
        """``<name>_mask * <name>_orig``: the pruned tensor, differentiable in ``<name>_orig``."""
        if self._tensor_name is None:
            raise RuntimeError(f"{type(self).__name__} has not been applied to a module yet")
        mask = getattr(module, self._tensor_name + "_mask")
        orig = getattr(module, self._tensor_name + "_orig")
        return Tensor(mask.data.astype(orig.dtype, copy=False)) * orig

    compute_weight = apply_mask

    @classmethod
    def apply(cls, module, name, *args, importance_scores=None, **kwargs):
        """Prune ``module.<name>`` with ``cls(*args, **kwargs)``, compounding any earlier pruning.

        ``importance_scores`` (same shape as the parameter) replaces the parameter's values when
        ranking. The module is changed only once the mask has been computed, so a bad argument
        leaves it as it was.
        """
        orig = _current(module, name)
        method = cls(*args, **kwargs)
        method._tensor_name = name
        old_key, old = BasePruningMethod.find(module, name)
        if old is not None:
            method = PruningContainer(*(old if isinstance(old, PruningContainer) else [old]), method)

        scores = orig.data if importance_scores is None else _array(importance_scores, "importance_scores")
        if scores.shape != orig.shape:
            raise ValueError(f"importance_scores shape {scores.shape} does not match parameter "
                             f"{name!r} of shape {orig.shape}")
        default_mask = np.ones_like(orig.data) if old is None else getattr(module, name + "_mask").data.copy()
        mask = method.compute_mask(scores, default_mask)

        if old is None:
            module.register_parameter(name + "_orig", orig)
            delattr(module, name)
        else:
            old_key.remove()   # replaced by the container holding it
        module.register_buffer(name + "_mask", Tensor(np.asarray(mask, dtype=orig.dtype)))
        method.register(module)
        return method

    def prune(self, t, default_mask=None, importance_scores=None):
        """``t`` times the mask this method computes for it (without touching any module)."""
        values = _array(t, "t")
        scores = values if importance_scores is None else _array(importance_scores, "importance_scores")
        if scores.shape != values.shape:
            raise ValueError(f"importance_scores shape {scores.shape} does not match t of shape {values.shape}")
        default_mask = np.ones_like(values) if default_mask is None else _array(default_mask, "default_mask")
        return values * self.compute_mask(scores, default_mask)

    def permanent_parameter(self, module):
        """``<name>_orig`` (the same ``Parameter``, so an optimizer keeps it) holding ``orig * mask``;
        ``remove`` makes the pruning permanent with it."""
        weight = self.apply_mask(module)
        orig = getattr(module, self._tensor_name + "_orig")
        orig.data = weight.data
        return orig


class PruningContainer(BasePruningMethod):
    """The pruning methods applied, in order, to one parameter (PyTorch's iterative pruning).

    A new mask is computed only on what the previous masks left: the entries still 1
    (``"unstructured"``), the channels along ``dim`` not yet entirely 0 (``"structured"``), or
    the whole tensor (``"global"``); it is then written back into the combined mask.
    """

    def __init__(self, *methods):
        self._pruning_methods = ()
        if methods:
            self._tensor_name = methods[0]._tensor_name
        for method in methods:
            self.add_pruning_method(method)

    def add_pruning_method(self, method):
        if not isinstance(method, BasePruningMethod):
            raise TypeError(f"{type(method).__name__} is not a BasePruningMethod")
        if method._tensor_name != self._tensor_name:
            raise ValueError(f"PruningContainer acts on {self._tensor_name!r}, cannot add a method "
                             f"acting on {method._tensor_name!r}")
        self._pruning_methods += (method,)

    def __len__(self):
        return len(self._pruning_methods)

    def __iter__(self):
        return iter(self._pruning_methods)

    def __getitem__(self, index):
        return self._pruning_methods[index]

    def compute_mask(self, t, default_mask):
        method = self._pruning_methods[-1]
        mask = default_mask.astype(t.dtype)
        if method.PRUNING_TYPE == "unstructured":
            slc = mask == 1
        elif method.PRUNING_TYPE == "structured":
            if not hasattr(method, "dim"):
                raise AttributeError("structured pruning methods need a `dim` attribute")
            dim = _normalize_dim(t, method.dim)
            others = tuple(d for d in range(t.ndim) if d != dim)
            slc = [slice(None)] * t.ndim
            slc[dim] = mask.sum(axis=others) != 0
            slc = tuple(slc)
        elif method.PRUNING_TYPE == "global":
            slc = (slice(None),) * t.ndim
        else:
            raise ValueError(f"unknown PRUNING_TYPE {method.PRUNING_TYPE!r}")
        mask[slc] = method.compute_mask(t[slc], default_mask=mask[slc])
        return mask


class Identity(BasePruningMethod):
    """Prunes nothing: a mask of ones (sets up the re-parametrisation, e.g. before loading a checkpoint)."""
    PRUNING_TYPE = "unstructured"

    def compute_mask(self, t, default_mask):
        return default_mask


class _Unstructured(BasePruningMethod):
    """Zero the ``amount`` (still unpruned) entries that rank lowest by ``ranking(t)``."""
    PRUNING_TYPE = "unstructured"

    def __init__(self, amount):
        _validate_pruning_amount_init(amount)
        self.amount = amount

    def compute_mask(self, t, default_mask):
        k = _compute_nparams_toprune(self.amount, t.size)
        _validate_pruning_amount(k, t.size)
        mask = default_mask.copy()
        if k:
            mask.reshape(-1)[np.argsort(self.ranking(t).reshape(-1), kind="stable")[:k]] = 0
        return mask


class RandomUnstructured(_Unstructured):
    """Zero ``amount`` of the (still unpruned) entries, chosen uniformly at random."""

    def ranking(self, t):
        return get_rng().random(t.shape)


class L1Unstructured(_Unstructured):
    """Zero the ``amount`` (still unpruned) entries of smallest absolute value (Han et al., 2015)."""

    def ranking(self, t):
        return np.abs(t)


class _Structured(BasePruningMethod):
    """Zero the ``amount`` whole channels along ``dim`` that rank lowest by ``ranking(t, dim)``."""
    PRUNING_TYPE = "structured"

    def compute_mask(self, t, default_mask):
        _validate_structured_pruning(t)
        dim = _normalize_dim(t, self.dim)
        n_channels = t.shape[dim]
        k = _compute_nparams_toprune(self.amount, n_channels)
        _validate_pruning_amount(k, n_channels)
        if k == 0:
            return default_mask
        keep = np.zeros(n_channels, dtype=bool)
        keep[np.argsort(self.ranking(t, dim), kind="stable")[k:]] = True
        shape = [1] * t.ndim
        shape[dim] = n_channels
        return np.broadcast_to(keep.reshape(shape), t.shape).astype(t.dtype) * default_mask


class RandomStructured(_Structured):
    """Zero ``amount`` whole channels along ``dim``, chosen at random."""

    def __init__(self, amount, dim=-1):
        _validate_pruning_amount_init(amount)
        self.amount, self.dim = amount, dim

    def ranking(self, t, dim):
        return get_rng().random(t.shape[dim])


class LnStructured(_Structured):
    r"""Zero the ``amount`` channels along ``dim`` of smallest L\ :sub:`n` norm (Li et al., 2017).

    A channel's norm is taken over all the other dimensions: for a conv weight (out, in, kh, kw)
    and ``dim=0`` that is one norm per filter. ``n`` is a number, ``inf``, ``-inf`` or ``"fro"``
    (= 2), as ``torch.norm``'s ``p``.
    """

    def __init__(self, amount, n, dim=-1):
        _validate_pruning_amount_init(amount)
        if n == "fro":
            n = 2
        if isinstance(n, bool) or not isinstance(n, numbers.Real) or np.isnan(n):
            raise ValueError(f"norm order n={n!r} must be a number, inf, -inf or 'fro'")
        self.amount, self.n, self.dim = amount, n, dim

    def ranking(self, t, dim):
        return _compute_norm(t, self.n, dim)


class CustomFromMask(BasePruningMethod):
    """Apply a given mask (multiplied into any earlier one)."""
    PRUNING_TYPE = "global"

    def __init__(self, mask):
        self.mask = np.asarray(_array(mask, "mask"))

    def compute_mask(self, t, default_mask):
        if default_mask.shape != self.mask.shape:
            raise ValueError(f"mask shape {self.mask.shape} does not match parameter shape {default_mask.shape}")
        return default_mask * self.mask.astype(default_mask.dtype)


# ----- the functional interface (what lessons call) ------------------------------------------------
def identity(module, name):
    """Re-parametrise ``module.<name>`` with a mask of ones (nothing is pruned)."""
    Identity.apply(module, name)
    return module


def random_unstructured(module, name, amount):
    RandomUnstructured.apply(module, name, amount)
    return module


def l1_unstructured(module, name, amount, importance_scores=None):
    L1Unstructured.apply(module, name, amount, importance_scores=importance_scores)
    return module


def random_structured(module, name, amount, dim):
    RandomStructured.apply(module, name, amount, dim)
    return module


def ln_structured(module, name, amount, n, dim, importance_scores=None):
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def custom_from_mask(module, name, mask):
    CustomFromMask.apply(module, name, mask)
    return module


def global_unstructured(parameters, pruning_method, importance_scores=None, **kwargs):
    """Prune several parameters as one: their scores are concatenated and ranked together.

    ``parameters`` is an iterable of ``(module, name)``; ``importance_scores`` an optional dict
    mapping some of those pairs to score tensors. ``pruning_method`` must be unstructured
    (``L1Unstructured``, ``RandomUnstructured``); ``amount`` counts over all the parameters.
    """
    parameters = list(parameters)
    if not parameters:
        raise ValueError("global_unstructured got no parameters")
    importance_scores = {} if importance_scores is None else importance_scores
    if not isinstance(importance_scores, dict):
        raise TypeError(f"importance_scores must be a dict, got {type(importance_scores).__name__}")
    method = pruning_method(**kwargs)
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(f"global_unstructured needs an unstructured pruning method, got {pruning_method.__name__} "
                        f"of PRUNING_TYPE {method.PRUNING_TYPE!r}")
    tensors = [_current(module, name) for module, name in parameters]
    scores, masks = [], []
    for (module, name), t in zip(parameters, tensors):
        s = _array(importance_scores.get((module, name), t), "importance score")
        if s.shape != t.shape:
            raise ValueError(f"importance score shape {s.shape} does not match parameter {name!r} of shape {t.shape}")
        scores.append(s.reshape(-1))
        pruned = BasePruningMethod.find(module, name)[1] is not None
        mask = getattr(module, name + "_mask").data if pruned else np.ones(t.shape, t.dtype)
        masks.append(mask.reshape(-1))
    method._tensor_name = "temp"
    final = PruningContainer(method).compute_mask(np.concatenate(scores), np.concatenate(masks))
    start = 0
    for (module, name), t in zip(parameters, tensors):
        custom_from_mask(module, name, final[start:start + t.size].reshape(t.shape))
        start += t.size


def remove(module, name):
    """Make the pruning of ``module.<name>`` permanent and drop ``<name>_orig``/``<name>_mask``."""
    _check_module(module)
    key, hook = BasePruningMethod.find(module, name)
    if hook is None:
        raise ValueError(f"parameter {name!r} of {type(module).__name__} has to be pruned before pruning can be removed")
    hook.remove(module)
    key.remove()
    return module


def is_pruned(module):
    """True if ``module`` or any module inside it carries a pruning hook."""
    _check_module(module)
    return any(BasePruningMethod.hooks(m) for m in module.modules())


def dense_parameters(model):
    """``(name, parameter, mask)`` for every parameter of ``model``, by dotted name: a pruned one
    (``<name>_orig`` with a ``<name>_mask`` buffer) under its unpruned name with its mask array,
    any other with mask None. The one place that reads the ``_orig``/``_mask`` convention."""
    _check_module(model)
    result = []
    for prefix, module in model.named_modules():
        buffers = dict(module.named_buffers(recurse=False))
        for name, param in module.named_parameters(recurse=False):
            mask = None
            if name.endswith("_orig") and name[:-5] + "_mask" in buffers:
                name, mask = name[:-5], buffers[name[:-5] + "_mask"].data
            result.append((f"{prefix}.{name}" if prefix else name, param, mask))
    return result


def pruned_parameters(model):
    """``(qualified_name, module, name)`` for every pruned parameter inside ``model``."""
    _check_module(model)
    return [(f"{prefix}.{h._tensor_name}" if prefix else h._tensor_name, m, h._tensor_name)
            for prefix, m in model.named_modules() for _, h in BasePruningMethod.hooks(m)]


# ----- PyTorch's validation and helper rules ----------------------------------------------------------
def _validate_pruning_amount_init(amount):
    """``amount`` must be a float in [0, 1] or a non-negative int."""
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(f"invalid type for amount: {amount!r}; must be an int or a float")
    if isinstance(amount, numbers.Integral):
        if amount < 0:
            raise ValueError(f"amount={amount} should either be a float in the range [0, 1] or a non-negative integer")
    elif not 0.0 <= float(amount) <= 1.0:
        raise ValueError(f"amount={amount} should either be a float in the range [0, 1] or a non-negative integer")


def _compute_nparams_toprune(amount, tensor_size):
    """An int is a count; a float is a fraction, rounded with Python's ``round`` (half to even)."""
    return int(amount) if isinstance(amount, numbers.Integral) else round(amount * tensor_size)


def _validate_pruning_amount(amount, tensor_size):
    if amount > tensor_size:
        raise ValueError(f"amount={amount} should be smaller than the number of parameters to prune={tensor_size}")


def _validate_structured_pruning(t):
    if t.ndim <= 1:
        raise ValueError(f"structured pruning needs a tensor of at least 2 dimensions, got shape {t.shape}")


def _normalize_dim(t, dim):
    if not -t.ndim <= dim < t.ndim:
        raise IndexError(f"invalid dim {dim} for a tensor of shape {t.shape}")
    return dim % t.ndim


def _compute_norm(t, n, dim):
    """L_n norm of each slice ``t[..., i, ...]`` along ``dim``, over all the other dimensions."""
    a = np.abs(np.moveaxis(t, dim, 0).reshape(t.shape[dim], -1).astype(np.float64))
    if n == np.inf:
        return a.max(axis=1)
    if n == -np.inf:
        return a.min(axis=1)
    if n == 0:
        return (a != 0).sum(axis=1).astype(np.float64)
    return (a ** n).sum(axis=1) ** (1.0 / n)
