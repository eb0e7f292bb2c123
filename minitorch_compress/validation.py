"""Argument checks shared by the whole package, so that every function rejects bad input alike.

Integers are Python or NumPy integers, never bools (``True`` is an ``int`` in Python, and
``Linear(784, True)`` is a mistake); numbers are finite Python or NumPy reals, never bools. Each
check raises ``ValueError`` naming the argument and the value it got.
"""
import math
import numbers


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name, value, minimum=None, maximum=None):
    """``value`` as an ``int``; ValueError unless it is an integer (at least ``minimum`` and at most
    ``maximum``, if given)."""
    if not is_int(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is not None:
            kind = f"an int from {minimum} to {maximum}" if minimum is not None else f"an int <= {maximum}"
        else:
            kind = {None: "an int", 0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def check_positive(**values):
    """Each keyword's value must be an int >= 1 (sizes, counts, group numbers)."""
    for name, value in values.items():
        check_int(name, value, 1)


def check_non_negative(**values):
    """Each keyword's value must be an int >= 0 (steps, iterations, padding)."""
    for name, value in values.items():
        check_int(name, value, 0)


def as_pair(value, name):
    """``(value, value)`` for an int, or a pair of ints as a tuple (kernel sizes, strides, padding)."""
    pair = (value, value) if is_int(value) else tuple(value) if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(is_int(v) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(int(v) for v in pair)


def check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a ``float``; ValueError unless it is a finite real number (not a bool) in the range
    from ``low`` to ``high`` (each bound inclusive unless ``low_open``/``high_open``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if low is not None and high is not None:
            where = f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        elif low is not None:
            where = f" {'>' if low_open else '>='} {low}"
        elif high is not None:
            where = f" {'<' if high_open else '<='} {high}"
        else:
            where = ""
        raise ValueError(f"{name} must be a finite number{where}, got {value!r}")
    return float(value)
