"""``save``/``load`` for state dicts, as ``.npz`` files.

Loading uses ``allow_pickle=False``: a checkpoint is data only and can never run code.
Saving writes a temporary file beside the target and renames it into place, so a crash
mid-write leaves the previous checkpoint intact.
"""
from collections import OrderedDict
import os
import zipfile

import numpy as np

from .files import write_atomic
from .tensor import Tensor


def save(state_dict, path):
    """Write a mapping of names to tensors/arrays (a ``state_dict()``) to ``path``."""
    if not hasattr(state_dict, "items"):
        raise TypeError(f"save expects a mapping of names to tensors, got {type(state_dict).__name__}")
    arrays = OrderedDict()
    for name, value in state_dict.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"state dict key {name!r} must be a non-empty str without '/'")
        array = value.data if isinstance(value, Tensor) else np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"state dict value for {name!r} is not numeric (dtype object)")
        arrays[name] = array
    write_atomic(path, lambda f: np.savez(f, **arrays), binary=True)


def load(path):
    """Read a file written by ``save``: an ordered dict of names to tensors."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return OrderedDict((name, Tensor(archive[name])) for name in archive.files)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise ValueError(f"{path} is not a valid minitorch_compress checkpoint: {error}") from error
