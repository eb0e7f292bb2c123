"""The package's one source of randomness.

Every random draw the package makes (weight initialisation, dropout masks, shuffling,
random pruning) comes from the generator returned by ``get_rng()``, so ``manual_seed``
makes a whole run reproducible.
"""
import numpy as np

from .validation import is_int

_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed the package's generator (like ``torch.manual_seed``)."""
    global _rng
    if not is_int(seed):
        raise TypeError(f"seed must be an int, got {seed!r}")
    _rng = np.random.default_rng(int(seed))
    return _rng


def get_rng():
    """The generator every random draw in the package uses."""
    return _rng
