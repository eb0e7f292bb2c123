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
When checks fail, the lines below the summary say why (expected vs got, the exception), one
indented line each: the learner reads them in the notebook, the grader reads only the first line.
"""
import contextlib
import io
import re
import warnings

import numpy as np

REASON_CHARS = 300  # a reason line is cut after this many characters


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
        """Print the summary line, then one line per failed check saying why.

        Returns None, so a cell ending in ``check.done()`` shows the line and nothing else.
        """
        failed = [label for label, ok, _, _ in self.results if not ok]
        passed, total = len(self.results) - len(failed), len(self.results)
        line = f"{self.name}: {passed}/{total} passed"
        if failed:
            line += f" (failed: {', '.join(failed)})"
        print(line)
        for label, ok, expected, got in self.results:
            if not ok:
                print(_reason(label, expected, got))

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
        except (Exception, SystemExit) as error:  # the learner's bug is a failed check, never a crash
            got, ok = f"raised {type(error).__name__}: {error}", False
        self.results.append((label, ok, expected, got))
        return ok


def _as_array(value):
    if hasattr(value, "numpy") and callable(value.numpy):  # mc.Tensor (and torch tensors)
        value = value.numpy()
    return np.asarray(value)


def _equal(got, expected):
    if isinstance(expected, str):
        return isinstance(got, str) and got == expected
    got, expected = _as_array(got), _as_array(expected)
    if got.dtype == object and expected.dtype != object:
        return False  # numbers are expected: an object's own __eq__ must not decide
    return got.shape == expected.shape and bool(np.array_equal(got, expected))


def _close(got, expected, rtol, atol):
    got, expected = _as_array(got), _as_array(expected)
    if got.dtype == object and expected.dtype != object:
        return False
    got, expected = got.astype(np.float64), expected.astype(np.float64)
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
    text = " ".join(np.array2string(array, precision=6, threshold=24, separator=", ").split())
    return text if array.ndim == 0 else f"{text} (shape {array.shape})"


def _reason(label, expected, got):
    """One indented line: why check ``label`` failed (newlines shown as ``\\n``, cut to length)."""
    text = f"{label}: expected {_describe(expected)}, got {_describe(got)}"
    text = text.replace("\r", "").replace("\n", "\\n")  # a reason never starts a line of its own
    return "  - " + (text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 3] + "...")


def parse_summary(text, name):
    """``(passed, total)`` from the summary line of check ``name``: the first line of ``text``
    (what the check cell printed), or None if that line is not a summary line."""
    first = text.split("\n", 1)[0]
    found = re.fullmatch(rf"{re.escape(name)}: (\d+)/(\d+) passed( \(failed: .*\))?", first)
    if not found:
        return None
    passed, total = int(found[1]), int(found[2])
    return (passed, total) if passed <= total else None
