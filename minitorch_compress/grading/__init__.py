"""Exercises and their autograder.

``Checker`` is what check cells use; ``python -m minitorch_compress.grading`` releases
student notebooks and grades a class (see ``exercises/README.md``).
"""
from .checker import Checker

__all__ = ["Checker"]
