"""``Module``: the container that owns parameters, buffers and child modules, as in PyTorch.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it, so
``named_parameters()``, ``state_dict()``, ``train()``/``eval()`` find it without
being told. Buffers are tensors that belong to the model but are not trained
(pruning masks, observer statistics). Forward pre-hooks run before ``forward`` and
may replace its inputs or recompute attributes (pruning recomputes ``weight`` there).
"""
from collections import OrderedDict, namedtuple
import itertools

import numpy as np

from ..tensor import Tensor, _to_array

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A tensor that is a trainable part of a module (``requires_grad=True`` by default)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else _to_array(data), requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class RemovableHandle:
    """Returned by ``register_*_hook``; ``remove()`` takes the hook out again."""
    _ids = itertools.count()

    def __init__(self, hooks, id=None):
        self.hooks, self.id = hooks, next(self._ids) if id is None else id

    def remove(self):
        self.hooks.pop(self.id, None)


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    # ----- registration ------------------------------------------------------------------
    def _check_init(self):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call Module.__init__() in {type(self).__name__}.__init__ before assigning attributes")

    def __setattr__(self, name, value):
        if isinstance(value, (Parameter, Module)):
            self._check_init()
            registry = self._parameters if isinstance(value, Parameter) else self._modules
            self._discard(name, keep=registry)
            registry[name] = value
        elif name in self.__dict__.get("_parameters", ()):
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r} (nn.Parameter or None expected)")
            self._parameters[name] = None
        elif name in self.__dict__.get("_buffers", ()):
            self._buffers[name] = _as_buffer(name, value)
        elif name in self.__dict__.get("_modules", ()):
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to child module {name!r} (nn.Module or None expected)")
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):  # called only when normal lookup fails
        for registry in ("_parameters", "_buffers", "_modules"):
            found = self.__dict__.get(registry, {})
            if name in found:
                return found[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if any(name in self.__dict__.get(r, ()) for r in ("_parameters", "_buffers", "_modules")):
            self._discard(name)
        else:
            object.__delattr__(self, name)

    def _discard(self, name, keep=None):
        """Forget ``name`` wherever it is registered (except in ``keep``, where it will be
        reassigned in place, keeping its position); True if it was registered."""
        found = False
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry and registry is not keep:
                del registry[name]
                found = True
        self._non_persistent_buffers.discard(name)
        if found or name in self.__dict__:
            self.__dict__.pop(name, None)
        return found

    def _check_new_name(self, name, kind):
        if not isinstance(name, str):
            raise TypeError(f"{kind} name must be a str, got {type(name).__name__}")
        if "." in name or name == "":
            raise ValueError(f"{kind} name {name!r} must be non-empty and contain no '.'")
        if hasattr(self, name) and name not in self._parameters and name not in self._buffers:
            raise ValueError(f"attribute {name!r} already exists on {type(self).__name__}")

    def register_parameter(self, name, param):
        self._check_init()
        self._check_new_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot register {type(param).__name__} as parameter {name!r} (nn.Parameter or None expected)")
        self._discard(name, keep=self._parameters)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        self._check_init()
        self._check_new_name(name, "buffer")
        self._discard(name, keep=self._buffers)
        self._buffers[name] = _as_buffer(name, tensor)
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        self._check_init()
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module")
        self._discard(name, keep=self._modules)
        self._modules[name] = module

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` runs before ``forward``; a non-None result replaces ``args``."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def forward_pre_hooks(self):
        """The forward pre-hooks in call order, as ``(handle, hook)`` pairs; ``handle.remove()`` takes one out."""
        return _with_handles(self._forward_pre_hooks)

    def forward_hooks(self):
        """The forward hooks in call order, as ``(handle, hook)`` pairs."""
        return _with_handles(self._forward_hooks)

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` runs after ``forward``; a non-None result replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ----- traversal -----------------------------------------------------------------------
    def named_modules(self, prefix=""):
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def _named_members(self, registry, recurse):
        modules = self.named_modules() if recurse else [("", self)]
        seen = set()
        for prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self, recurse=True):
        return self._named_members("_parameters", recurse)

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse))

    def named_buffers(self, recurse=True):
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse=True):
        return (b for _, b in self.named_buffers(recurse))

    def apply(self, fn):
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ----- modes ---------------------------------------------------------------------------
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, dtype):
        """Cast floating-point parameters and buffers (e.g. to float64 for gradient checks)."""
        dtype = np.dtype(dtype)
        for module in self.modules():
            for registry in (module._parameters, module._buffers):
                for t in registry.values():
                    if t is not None and t.dtype.kind == "f":
                        t.data = t.data.astype(dtype)
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    # ----- state -----------------------------------------------------------------------------
    def state_dict(self):
        """Every parameter and persistent buffer by dotted name, as tensors sharing the module's data."""
        state = OrderedDict()
        for prefix, module in self.named_modules():
            items = list(module._parameters.items()) + [
                (n, b) for n, b in module._buffers.items() if n not in module._non_persistent_buffers]
            for name, value in items:
                if value is not None:
                    state[f"{prefix}.{name}" if prefix else name] = Tensor(value.data)
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into this module's parameters and buffers (in place, so optimizers keep working).

        Missing, unexpected or wrongly-shaped keys raise a ``ValueError`` naming them
        (with ``strict=False`` missing/unexpected keys are returned instead).
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"load_state_dict for {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}")
        values = {k: (v.data if isinstance(v, Tensor) else np.asarray(v)) for k, v in state_dict.items() if k in own}
        wrong = [f"{k}: checkpoint {v.shape} vs model {own[k].shape}" for k, v in values.items() if v.shape != own[k].shape]
        if wrong:
            raise ValueError(f"load_state_dict for {type(self).__name__}: shape mismatch for " + "; ".join(wrong))
        for key, value in values.items():
            np.copyto(own[key].data, value, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    # ----- printing --------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ")" if not lines else head + "\n  " + "\n  ".join(lines) + "\n)"


def _with_handles(hooks):
    return [(RemovableHandle(hooks, key), hook) for key, hook in hooks.items()]


def _as_buffer(name, value):
    if value is None or isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return Tensor(value)
    raise TypeError(f"buffer {name!r} must be a Tensor, ndarray or None, got {type(value).__name__}")
