"""Argument checks shared by the kernels: clear errors before any Numba code runs."""
import numpy as np


def as_array(x, name):
    """The NumPy array behind ``x`` (an ndarray or anything with a ``.data`` array, such as a Tensor)."""
    data = x if isinstance(x, np.ndarray) else getattr(x, "data", None)
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array or Tensor, got {type(x).__name__}")
    return data


def check_matrix(x, name, dtypes):
    """``x`` as a 2-D array of one of ``dtypes`` (no conversion: a wrong dtype is an error)."""
    x = as_array(x, name)
    if x.dtype not in [np.dtype(d) for d in dtypes]:
        wanted = " or ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(f"{name} must have dtype {wanted}, got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
    return x


def check_inner(a_shape, b_shape, a_axis=1, b_axis=0, what="a @ b"):
    """The shared (contracted) dimension of two operands, or a ValueError naming both shapes."""
    if a_shape[a_axis] != b_shape[b_axis]:
        raise ValueError(f"shapes {a_shape} and {b_shape} do not match for {what}")
    return a_shape[a_axis]


def unwrap(x):
    """The array behind a Tensor (its ``.data``); NumPy values, numbers and lists pass through."""
    if isinstance(x, (np.ndarray, np.generic, int, float, list, tuple)):
        return x
    return getattr(x, "data", x)
