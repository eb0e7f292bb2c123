"""Source notebooks, their metadata, and the notebooks made from them.

A source notebook marks graded cells with ``cell.metadata["grading"]``:

* ``{"kind": "answer", "id": "dropout_mask"}``: the learner's code; the solution sits
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION``.
* ``{"kind": "check", "id": "check_dropout_mask", "points": 4}``: runs a ``Checker`` and
  stores its one-line output, which nbval compares against.

From it we make the released student notebook (``release``), the notebook actually graded
for a submission (``rebuild``: the source with only the learner's answer cells swapped in)
and one small notebook per check (``task_notebook``), so each check runs in its own kernel.
Every notebook is written in one canonical form, so regenerating changes no byte.
"""
import os
import re

import nbformat

from ..files import write_text_atomic
from .checker import parse_summary

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
KINDS = ("answer", "check")
# nbval reads these from tags or comments; a source notebook must not use them, and the
# rebuilt notebook drops all learner metadata, so none can switch a check off.
NBVAL_TAGS = ("nbval-skip", "nbval-ignore-output", "nbval-raises-exception", "raises-exception",
              "nbval-check-output")
NBVAL_COMMENT = re.compile(r"^\s*#\s*(NBVAL_\w+|PYTEST_VALIDATE_IGNORE_OUTPUT)\s*$", re.MULTILINE)


def read_notebook(path):
    """Read a notebook; a malformed file raises (``ValueError`` for JSON, nbformat errors)."""
    return nbformat.read(os.fspath(path), as_version=4)


def write_notebook(nb, path):
    """Write ``nb`` in canonical form (sorted keys, no run metadata), atomically."""
    text = nbformat.writes(canonical(nb))
    write_text_atomic(path, text)


def canonical(nb):
    """A copy of ``nb`` without what changes from run to run or machine to machine.

    Drops timing and widget metadata, the Python version in ``language_info``, and gives
    each cell a stable id (its grading id, or ``cell-<index>``).
    """
    nb = nbformat.from_dict(nb)
    nb.metadata = nbformat.from_dict({
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    nb.nbformat, nb.nbformat_minor = 4, 5
    for index, cell in enumerate(nb.cells):
        for key in ("execution", "collapsed", "scrolled", "ExecuteTime"):
            cell.metadata.pop(key, None)
        info = cell.metadata.get("grading")
        cell.id = info["id"] if info else f"cell-{index}"
    return nb


def grading_info(cell):
    """The cell's validated grading metadata, or None for an ordinary cell."""
    info = cell.get("metadata", {}).get("grading")
    if info is None:
        return None
    kind, cell_id = info.get("kind"), info.get("id")
    if kind not in KINDS:
        raise ValueError(f"grading kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(cell_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", cell_id):
        raise ValueError(f"grading id must be 1-64 letters, digits, '_' or '-', got {cell_id!r}")
    if cell.cell_type != "code":
        raise ValueError(f"grading cell {cell_id!r} must be a code cell, got {cell.cell_type!r}")
    points = info.get("points")
    if kind == "check" and not (isinstance(points, (int, float)) and points > 0):
        raise ValueError(f"check cell {cell_id!r} needs positive points, got {points!r}")
    return info


def checks(source):
    """``[(check_id, points, expected_line)]`` in notebook order, from a source notebook."""
    found = []
    for cell in source.cells:
        info = grading_info(cell)
        if info and info["kind"] == "check":
            summary = parse_summary(stored_stdout(cell), info["id"])
            if summary is None or summary[0] != summary[1]:
                raise ValueError(f"check cell {info['id']!r} must store the output "
                                 f"'{info['id']}: n/n passed', got {stored_stdout(cell)!r}")
            found.append((info["id"], info["points"], stored_stdout(cell).strip()))
    return found


def validate_source(source):
    """Raise ValueError unless ``source`` is a well-formed source notebook; returns ``checks``."""
    seen = set()
    for cell in source.cells:
        info = grading_info(cell)
        tags = [t for t in cell.metadata.get("tags", []) if t in NBVAL_TAGS]
        if tags or (cell.cell_type == "code" and NBVAL_COMMENT.search(cell.source)):
            raise ValueError(f"source cell {cell.source[:40]!r} uses an nbval marker {tags}; "
                             "checks must print a deterministic line instead")
        if info is None:
            continue
        if info["id"] in seen:
            raise ValueError(f"grading id {info['id']!r} is used twice")
        seen.add(info["id"])
        if info["kind"] == "answer":
            strip_solution(cell.source, info["id"])  # raises on missing or unbalanced markers
    found = checks(source)
    if not found:
        raise ValueError("a source notebook needs at least one check cell")
    return found


def strip_solution(text, cell_id):
    """Replace every solution region in ``text`` with the indented ``STUB``."""
    lines, out, indent = text.split("\n"), [], None
    regions = 0
    for line in lines:
        marker = line.strip()
        if marker == BEGIN:
            if indent is not None:
                raise ValueError(f"answer cell {cell_id!r}: nested {BEGIN!r}")
            indent = line[: len(line) - len(line.lstrip())]
        elif marker == END:
            if indent is None:
                raise ValueError(f"answer cell {cell_id!r}: {END!r} without {BEGIN!r}")
            out.extend(indent + stub_line for stub_line in STUB.split("\n"))
            indent, regions = None, regions + 1
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise ValueError(f"answer cell {cell_id!r}: {BEGIN!r} without {END!r}")
    if regions == 0:
        raise ValueError(f"answer cell {cell_id!r} has no {BEGIN!r} region")
    return "\n".join(out)


def release(source):
    """The student notebook: solutions stubbed out, answer outputs cleared, checks kept."""
    validate_source(source)
    student = canonical(source)
    for cell in student.cells:
        info = grading_info(cell)
        if info and info["kind"] == "answer":
            cell.source = strip_solution(cell.source, info["id"])
            cell.outputs, cell.execution_count = [], None
    return student


def rebuild(source, submission):
    """The notebook to grade: ``source`` with the learner's answer cells swapped in.

    Returns ``(notebook, notes)``; ``notes`` says, in words for the feedback file, which
    cells of the submission were not used as they were (edited or deleted checks, missing
    answers, nbval tags).
    """
    validate_source(source)
    released = release(source)
    by_id = {}
    for cell in submission.get("cells", []):
        info = cell.get("metadata", {}).get("grading")
        if isinstance(info, dict) and isinstance(info.get("id"), str):
            by_id.setdefault(info["id"], cell)
    notes = []
    graded = canonical(source)
    for cell, released_cell in zip(graded.cells, released.cells):
        info = grading_info(cell)
        if info is None:
            continue
        theirs = by_id.get(info["id"])
        if info["kind"] == "answer":
            if theirs is None:
                notes.append(f"answer cell {info['id']!r} was missing; graded the empty stub")
                cell.source = released_cell.source
            else:
                cell.source = theirs.get("source", "")
                if isinstance(cell.source, list):  # nbformat allows a list of lines
                    cell.source = "".join(cell.source)
            cell.outputs, cell.execution_count = [], None
        elif theirs is None:
            notes.append(f"check cell {info['id']!r} was deleted; restored it")
        else:
            their_source = theirs.get("source", "")
            if isinstance(their_source, list):
                their_source = "".join(their_source)
            if their_source != cell.source:
                notes.append(f"check cell {info['id']!r} was edited; restored the original")
            tags = theirs.get("metadata", {}).get("tags", [])
            if any(tag in NBVAL_TAGS for tag in tags):
                notes.append(f"check cell {info['id']!r} was tagged {tags}; removed the tags")
    return graded, notes


def task_notebook(graded, check_id):
    """The cells up to check ``check_id``, without the other checks: one task's notebook."""
    task = nbformat.from_dict(graded)
    cells = []
    for cell in task.cells:
        info = grading_info(cell)
        if info and info["kind"] == "check":
            if info["id"] == check_id:
                cells.append(cell)
                task.cells = cells
                return task
            continue
        cells.append(cell)
    raise ValueError(f"unknown check id {check_id!r}")


def code_index(nb, cell_id):
    """nbval's number ("Cell N") for the code cell whose id is ``cell_id``."""
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for index, cell in enumerate(code_cells):
        if cell.get("id") == cell_id:
            return index
    raise ValueError(f"no code cell with id {cell_id!r}")


def stored_stdout(cell):
    """Everything ``cell`` printed to stdout, as stored in the notebook."""
    return "".join(out.get("text", "") for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream" and out.get("name") == "stdout")
