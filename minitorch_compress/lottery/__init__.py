"""Lottery tickets (Frankle & Carbin 2019): sparse subnetworks that, rewound to their early
weights, train as well as the dense network.

- ``IterativeMagnitudePruning``: train, prune, rewind, repeat; every round saved and reproducible.
- ``rewind``, ``dense_state``, ``RewindPoint``: resetting survivors to theta_0 or theta_k.
- ``apply_masks``, ``reinitialized``, ``random_masks``: tickets' masks on other weights, and the controls.
"""
from .rewind import RewindPoint, dense_state, rewind
from .controls import apply_masks, random_masks, reinitialized
from .iterative_pruning import IterativeMagnitudePruning

__all__ = ["RewindPoint", "dense_state", "rewind", "apply_masks", "random_masks", "reinitialized",
           "IterativeMagnitudePruning"]
