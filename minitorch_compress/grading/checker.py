"""``Checker``: the helper every check cell uses.

A check cell must never raise and must print exactly one deterministic line, because
nbval compares that line with the one stored in the source notebook and the grader reads
the points from the ``k/n`` in it::

    check = Checker("check_quantize")
    check.equal("zero_point", lambda: calculate_qparams(-1.0, 3.0)[1], 64)
    check.close("scale", lambda: calculate_qparams(-1.0, 3.0)[0], 4 / 255, rtol=0, atol=1e-9)
    check.done()      # prints "check_quantize: 2/2 passed"

Each check receives the learner's code as a zero-argument function, so an exception,
a stray ``print`` or a warning inside it is caught here and cannot change the cell's output.
"""
import contextlib
import io
import json
import os
import re
import warnings

import numpy as np

# The grader sets this to a file path; each finished check cell appends one JSON line
# with expected-vs-got details for the feedback file (the cell itself prints one line only).
DETAILS_ENV = "MC_GRADING_DETAILS"


class Checker:
    """Counts named checks of one check cell and prints the cell's one-line summary."""

    def __init__(self, name):
        if not isinstance(name, str) or not name:
            raise ValueError(f"a check needs a non-empty name, got {name!r}")
        self.name = name
        self.results = []  # (label, passed, expected, got)

    def equal(self, label, actual, expected):
        """Pass if ``actual()`` equals ``expected`` exactly (same shape and values for arrays)."""
        return self._record(label, actual, expected, _equal)

    def close(self, label, actual, expected, *, rtol, atol):
        """Pass if ``actual()`` matches ``expected`` within explicit tolerances (same shape)."""
        return self._record(label, actual, expected,
                            lambda got, exp: _close(got, exp, rtol, atol))

    def true(self, label, predicate):
        """Pass if ``predicate()`` returns something truthy."""
        return self._record(label, predicate, True, lambda got, exp: bool(got))

    def raises(self, label, action, exception):
        """Pass if ``action()`` raises ``exception`` (e.g. ``ValueError`` for a bad argument)."""
        def run():
            try:
                action()
            except exception:
                return f"raised {exception.__name__}"
            return "returned without raising"
        return self._record(label, run, f"raised {exception.__name__}", _equal)

    def done(self):
        """Print the summary line and hand the details to the grader.

        Returns None, so a cell ending in ``check.done()`` shows the line and nothing else.
        """
        failed = [label for label, ok, _, _ in self.results if not ok]
        passed, total = len(self.results) - len(failed), len(self.results)
        line = f"{self.name}: {passed}/{total} passed"
        if failed:
            line += f" (failed: {', '.join(failed)})"
        print(line)
        self._write_details(passed, total)

    def _record(self, label, actual, expected, compare):
        if any(label == seen for seen, _, _, _ in self.results):
            raise ValueError(f"check label {label!r} used twice in {self.name}")
        try:
            # Learner code may print or warn (Numba warnings carry per-run paths): swallow
            # both so the cell's output stays the one summary line.
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = actual()
                ok = bool(compare(got, expected))
        except Exception as error:  # the learner's bug is a failed check, never a crash
            got, ok = f"raised {type(error).__name__}: {error}", False
        self.results.append((label, ok, expected, got))
        return ok

    def _write_details(self, passed, total):
        path = os.environ.get(DETAILS_ENV)
        if not path:
            return
        failures = [{"label": label, "expected": _describe(exp), "got": _describe(got)}
                    for label, ok, exp, got in self.results if not ok]
        record = {"check": self.name, "passed": passed, "total": total, "failures": failures}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def _as_array(value):
    if hasattr(value, "numpy") and callable(value.numpy):  # mc.Tensor (and torch tensors)
        value = value.numpy()
    return np.asarray(value)


def _equal(got, expected):
    if isinstance(expected, str):
        return isinstance(got, str) and got == expected
    got, expected = _as_array(got), _as_array(expected)
    return got.shape == expected.shape and bool(np.array_equal(got, expected))


def _close(got, expected, rtol, atol):
    got, expected = _as_array(got).astype(np.float64), _as_array(expected).astype(np.float64)
    return got.shape == expected.shape and bool(np.allclose(got, expected, rtol=rtol, atol=atol))


def _describe(value):
    """A short, readable rendering of a value for the feedback file."""
    if isinstance(value, str):
        return value
    try:
        array = _as_array(value)
    except Exception:
        return repr(value)[:300]
    if array.dtype == object:
        return repr(value)[:300]
    text = np.array2string(array, precision=6, threshold=24, separator=", ")
    return text if array.ndim == 0 else f"{text} (shape {array.shape})"


def parse_summary(text, name):
    """``(passed, total)`` from the last summary line of check ``name`` in ``text``, or None."""
    found = re.findall(rf"^{re.escape(name)}: (\d+)/(\d+) passed", text, flags=re.MULTILINE)
    if not found:
        return None
    passed, total = map(int, found[-1])
    return (passed, total) if passed <= total else None
