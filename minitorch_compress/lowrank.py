"""Low-rank factorisation of a ``Linear`` layer by truncated SVD (Denton et al. 2014, "Exploiting
Linear Structure Within Convolutional Networks for Efficient Evaluation", arXiv:1404.0736).

With W = U S V^T (singular values s_1 >= s_2 >= ...), the best rank-r approximation in the
Frobenius norm is W_r = U_r S_r V_r^T (Eckart & Young 1936), with ||W - W_r||_F^2 = sum_{i>r} s_i^2.
It runs as two layers, x -> (sqrt(S_r) V_r^T) x -> (U_r sqrt(S_r)) (...) + b:
Linear(in, r, bias=False) then Linear(r, out), r (in + out) weights and multiply-adds per
example instead of in * out, a saving when r < in * out / (in + out).

The SVD is ``kernels.svd`` (one-sided Jacobi), not LAPACK's, whose last bits depend on the CPU.
The rank is chosen by an energy threshold: the smallest r whose singular values keep a fraction
``energy`` of sum_i s_i^2 (= ||W||_F^2).
"""
import copy

import numpy as np

from .kernels import svd
from .table import Table
from .nn import Linear, Module, Sequential
from .validation import check_int, check_number


def energy_rank(singular_values, energy):
    """The smallest r with sum_{i<=r} s_i^2 >= energy * sum_i s_i^2."""
    check_number("energy", energy, 0, 1, low_open=True)
    s2 = np.asarray(singular_values, dtype=np.float64) ** 2
    if s2.ndim != 1 or s2.size == 0:
        raise ValueError(f"singular values must be a non-empty 1-D array, got shape {s2.shape}")
    kept = np.cumsum(s2) / s2.sum()
    # min: rounding may leave the last fraction a hair below 1
    return int(min(np.searchsorted(kept, energy) + 1, s2.size))


def factorize(linear, rank=None, energy=None):
    """Two ``Linear`` layers (in -> rank -> out, in a ``Sequential``) computing the rank-``rank``
    truncated SVD of ``linear``; give ``rank`` or ``energy``, not both."""
    if not isinstance(linear, Linear):
        raise TypeError(f"factorize expects an nn.Linear, got {type(linear).__name__}")
    if (rank is None) == (energy is None):
        raise ValueError("give exactly one of rank and energy")
    w = linear.weight.data
    u, s, vt = svd(w)   # Jacobi rotations in a fixed order: the same factors on every CPU
    if energy is not None:
        rank = energy_rank(s, energy)
    check_int(f"rank (weight shape {w.shape})", rank, 1, s.size)
    root = np.sqrt(s[:rank])
    first = Linear(linear.in_features, int(rank), bias=False)
    second = Linear(int(rank), linear.out_features, bias=linear.bias is not None)
    first.weight.data = (root[:, None] * vt[:rank]).astype(w.dtype)
    second.weight.data = (u[:, :rank] * root).astype(w.dtype)
    if linear.bias is not None:
        second.bias.data = linear.bias.data.copy()
    return Sequential(first, second)


def factorize_model(model, energy):
    """A copy of ``model`` with every ``Linear`` replaced by its factorisation at ``energy``
    where that has fewer weights, and a table of what was done per layer."""
    if not isinstance(model, Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    model = copy.deepcopy(model)
    rows = []
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, Linear):
                continue
            factorized = factorize(child, energy=energy)
            rank = factorized[0].out_features
            before, after = child.in_features * child.out_features, rank * (child.in_features + child.out_features)
            if after < before:
                parent.add_module(name, factorized)
            rows.append((f"{parent_name}.{name}" if parent_name else name, f"{child.out_features}x{child.in_features}",
                         rank, before, min(before, after)))
    return model, Table(["layer", "shape", "rank", "weights", "weights_after"], rows)
