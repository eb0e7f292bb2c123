"""Exercises and their autograder.

``Checker`` is what check cells use, ``submission_report`` what a learner runs before
submitting; ``python -m minitorch_compress.grading`` releases student notebooks and grades a
class (see ``exercises/README.md``).
"""
from .checker import Checker

__all__ = ["Checker", "submission_report"]


def submission_report(path=None):
    """Print which answer cells of the saved notebook are still stubs and which cells the
    learner added (not graded); see ``notebook.submission_report``."""
    from .notebook import submission_report as report  # nbformat only when asked: check cells stay light
    report(path)
