"""Granularity: which weights are pruned together.

A granularity splits a weight tensor into groups, given as an array of group ids shaped like the
weight (``group_ids(shape)``). A group's score is the mean of its elements' scores, and a group is
pruned as a whole, so the same criterion ranks single weights, neurons, filters or blocks:

- ``Element()``: every weight on its own (unstructured; Han et al., 2015).
- ``Channel(dim)``: all weights sharing an index along ``dim``. For a Linear weight (out, in),
  ``dim=0`` is an output neuron (a row), ``dim=1`` an input feature (a column); for a conv weight
  (out, in, kh, kw), ``dim=0`` is a filter and ``dim=1`` an input channel (Li et al., 2017).
- ``Block(rows, cols)``: tiles of ``rows x cols`` over the first two dimensions (a conv block
  spans its whole kernels), the unit of block-sparse kernels (Gray et al., 2017).
- ``NM(n, m)``: semi-structured; in every run of ``m`` consecutive weights along the input
  dimension keep the ``n`` best (2:4 is what NVIDIA's sparse tensor cores run; Mishra et al., 2021).
  The sparsity is fixed at 1 - n/m, and N:M is a per-group rule, so it is always local.

``local_mask(scores, alive, sparsity)`` prunes ``round(sparsity * number of groups)`` groups of one
tensor. Groups already dead (every element masked, ``alive`` false) rank lowest, so masks only
ever shrink; a group that is partly masked keeps its masked elements at 0.
"""
from abc import ABC, abstractmethod

import numpy as np

from ..validation import check_int, check_positive


def group_scores(ids, scores, alive):
    """Per group: the mean score, -inf for dead groups; and the group sizes."""
    ids = ids.reshape(-1)
    sizes = np.bincount(ids)
    means = np.bincount(ids, weights=scores.reshape(-1)) / sizes
    means[np.bincount(ids, weights=alive.reshape(-1)) == 0] = -np.inf
    return means, sizes


class Granularity(ABC):
    @abstractmethod
    def group_ids(self, shape):
        """An int array of ``shape``: the group of every element, numbered 0, 1, ... ."""

    def local_mask(self, scores, alive, sparsity):
        """Boolean keep-mask pruning ``round(sparsity * n_groups)`` lowest-scoring groups of one tensor."""
        ids = self.group_ids(scores.shape)
        means, _ = group_scores(ids, scores, alive)
        keep = np.ones(means.size, dtype=bool)
        keep[np.argsort(means, kind="stable")[:round(sparsity * means.size)]] = False
        return keep[ids]

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Element(Granularity):
    def group_ids(self, shape):
        return np.arange(int(np.prod(shape))).reshape(shape)


class Channel(Granularity):
    def __init__(self, dim=0):
        self.dim = check_int("dim", dim)

    def group_ids(self, shape):
        if len(shape) < 2 or not -len(shape) <= self.dim < len(shape):
            raise ValueError(f"Channel(dim={self.dim}) needs a weight of at least 2 dimensions "
                             f"with that dim, got shape {tuple(shape)}")
        dim = self.dim % len(shape)
        index = np.arange(shape[dim]).reshape([-1 if d == dim else 1 for d in range(len(shape))])
        return np.broadcast_to(index, shape)


class Block(Granularity):
    def __init__(self, rows, cols):
        check_positive(rows=rows, cols=cols)
        self.rows, self.cols = rows, cols

    def group_ids(self, shape):
        if len(shape) < 2 or shape[0] % self.rows or shape[1] % self.cols:
            raise ValueError(f"Block({self.rows}, {self.cols}) does not tile a weight of shape {tuple(shape)}")
        r = np.arange(shape[0]) // self.rows
        c = np.arange(shape[1]) // self.cols
        ids = r[:, None] * (shape[1] // self.cols) + c[None, :]
        return np.broadcast_to(ids.reshape(ids.shape + (1,) * (len(shape) - 2)), shape)


class NM(Granularity):
    def __init__(self, n=2, m=4):
        check_positive(n=n, m=m)
        if n > m:
            raise ValueError(f"N:M sparsity needs n <= m, got n={n}, m={m}")
        self.n, self.m = n, m

    @property
    def sparsity(self):
        return 1 - self.n / self.m

    def group_ids(self, shape):
        """Runs of ``m`` consecutive weights along dim 1 (a conv weight: input channels, per kernel tap)."""
        if len(shape) < 2 or shape[1] % self.m:
            raise ValueError(f"{self.n}:{self.m} sparsity needs a weight whose dim 1 is a multiple of {self.m}, "
                             f"got shape {tuple(shape)}")
        moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)          # input dimension last
        ids = np.arange(int(np.prod(shape))).reshape(moved) // self.m
        return np.moveaxis(ids, -1, 1)

    def local_mask(self, scores, alive, sparsity=None):
        """Keep the ``n`` highest scores in every group of ``m`` (dead weights rank lowest)."""
        if sparsity is not None and not np.isclose(sparsity, self.sparsity):
            raise ValueError(f"{self.n}:{self.m} sparsity is always {self.sparsity:g}, got sparsity={sparsity}")
        ids = self.group_ids(scores.shape).reshape(-1)
        ranked = np.where(alive, scores, -np.inf).reshape(-1)
        order = np.lexsort((ranked, ids))              # by group, then by score within the group
        keep = np.zeros(ids.size, dtype=bool)
        keep[order.reshape(-1, self.m)[:, self.m - self.n:]] = True
        return keep.reshape(scores.shape)
