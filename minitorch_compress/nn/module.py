"""``Module``: the container that owns parameters, buffers and child modules, as in PyTorch.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it, so
``named_parameters()``, ``state_dict()``, ``train()``/``eval()`` find it without
being told. Buffers are tensors that belong to the model but are not trained
(pruning masks, observer statistics). Forward pre-hooks run before ``forward`` and
may replace its inputs or recompute attributes (pruning recomputes ``weight`` there).
A layer that keeps state in another form (a packed int8 weight, a CSR matrix) puts plain arrays
in its state dict and rebuilds that state from them (``_save_to_state_dict``/``_load_from_state_dict``).
"""
from collections import OrderedDict, namedtuple
import itertools

import numpy as np

from ..tensor import Tensor, tensor_data

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A tensor that is a trainable part of a module (``requires_grad=True`` by default)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else tensor_data(data), requires_grad)

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
        """Every module's own entries (``_save_to_state_dict``: parameters and persistent buffers unless it
        says otherwise) by dotted name, as tensors sharing the module's data."""
        state = OrderedDict()
        for prefix, module in self.named_modules():
            module._save_to_state_dict(state, f"{prefix}." if prefix else "")
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into this module's parameters and buffers (in place, so optimizers keep working);
        a layer with state in another form rebuilds it from its entries.

        Missing, unexpected or wrongly-shaped keys raise a ``ValueError`` naming them
        (with ``strict=False`` missing/unexpected keys are returned instead). Every module checks
        its entries before any is loaded, so a checkpoint that raises changes nothing.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"load_state_dict for {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}")
        values = {k: (v.data if isinstance(v, Tensor) else np.asarray(v)) for k, v in state_dict.items() if k in own}
        loads, wrong = [], []
        for prefix, module in self.named_modules():
            try:
                loads.append(module._load_from_state_dict(values, f"{prefix}." if prefix else ""))
            except ValueError as error:
                wrong.append(str(error))
        if wrong:
            raise ValueError(f"load_state_dict for {type(self).__name__}: " + "; ".join(wrong))
        for load in loads:
            load()
        return IncompatibleKeys(missing, unexpected)

    def _save_to_state_dict(self, destination, prefix):
        """Put this module's own entries (not its children's) in ``destination`` as ``prefix + name``.

        A layer whose state is not all in parameters and buffers overrides this and
        ``_load_from_state_dict`` (PyTorch's names) to store plain arrays and rebuild from them.
        """
        for name, value in self._state_tensors():
            destination[prefix + name] = Tensor(value.data)

    def _load_from_state_dict(self, state, prefix):
        """Check this module's own entries of ``state`` (arrays by full key; an absent one keeps its
        value) and return a function that loads them; a ``ValueError`` names the wrong ones.

        Checking and loading are separate so that ``load_state_dict`` can check every module first.
        """
        own = {prefix + name: value for name, value in self._state_tensors()}
        check_shapes(own, state)
        present = [(own[key].data, state[key]) for key in own if key in state]

        def load():
            for target, value in present:
                np.copyto(target, value, casting="unsafe")
        return load

    def _state_tensors(self):
        """(name, tensor) for this module's parameters and persistent buffers that are not None."""
        items = list(self._parameters.items()) + [
            (n, b) for n, b in self._buffers.items() if n not in self._non_persistent_buffers]
        return [(name, value) for name, value in items if value is not None]

    def _state_entries(self, state, prefix):
        """This module's own entries by local name, for ``_load_from_state_dict`` overrides: the arrays
        in ``state`` (a ``ValueError`` names any whose shape differs from this module's), else its own."""
        own = OrderedDict()
        self._save_to_state_dict(own, prefix)
        check_shapes(own, state)
        return {key[len(prefix):]: state[key] if key in state else value.data for key, value in own.items()}

    # ----- printing --------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ")" if not lines else head + "\n  " + "\n  ".join(lines) + "\n)"


def check_shapes(own, state):
    """A ``ValueError`` naming every key of ``own`` whose array in ``state`` has another shape."""
    wrong = [f"{key}: checkpoint {state[key].shape} vs model {value.shape}"
             for key, value in own.items() if key in state and state[key].shape != value.shape]
    if wrong:
        raise ValueError("shape mismatch for " + "; ".join(wrong))


def _with_handles(hooks):
    return [(RemovableHandle(hooks, key), hook) for key, hook in hooks.items()]


def _as_buffer(name, value):
    if value is None or isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return Tensor(value)
    raise TypeError(f"buffer {name!r} must be a Tensor, ndarray or None, got {type(value).__name__}")
