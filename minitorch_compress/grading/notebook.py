"""Source notebooks, their metadata, and the notebooks made from them.

A source notebook marks graded cells with ``cell.metadata["grading"]``:

* ``{"kind": "answer", "id": "dropout_mask"}``: the learner's code; the solution sits
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION``.
  Optional: ``"forbid": ["prune.AGP", ...]``, names the answer may not use (see ``policy``).
* ``{"kind": "check", "id": "check_dropout_mask", "points": 4}``: runs a ``Checker`` and
  stores its one-line output, which nbval compares against. Optional: ``"hidden": true`` (left
  out of the released notebook, graded all the same), ``"task"``: the task's name in the grades
  (default: the id of the answer cell the check follows, else the check's id).

From it we make the released student notebook (``release``) and the notebook actually graded
for a submission (``rebuild``: the source with only the learner's answer cells swapped in).
Every notebook is written in one canonical form, so regenerating changes no byte.
"""
import glob
import os
import re
from dataclasses import dataclass

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

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
    forbid = info.get("forbid", [])
    if not (isinstance(forbid, list) and all(isinstance(n, str) and re.fullmatch(r"\w+(\.\w+)*", n)
                                             for n in forbid)) or (forbid and kind != "answer"):
        raise ValueError(f"grading cell {cell_id!r}: 'forbid' must be a list of dotted names "
                         f"on an answer cell, got {forbid!r}")
    if not isinstance(info.get("hidden", False), bool) or (info.get("hidden") and kind != "check"):
        raise ValueError(f"grading cell {cell_id!r}: 'hidden' must be true or false, on a check cell")
    if not isinstance(info.get("task", ""), str):
        raise ValueError(f"grading cell {cell_id!r}: 'task' must be a string")
    return info


@dataclass(frozen=True)
class Task:
    """One graded task: its check cell, its name in the grades, and the answer cell it checks."""
    check_id: str
    name: str
    points: float
    expected: str            # the check cell's stored output line
    answer_id: str = None    # the answer cell right before it (None for an extra, e.g. hidden, check)
    hidden: bool = False


def tasks(source):
    """The ``Task`` of every check cell of a source notebook, in notebook order."""
    found, answer = [], None
    for cell, info in ((cell, grading_info(cell)) for cell in source.cells):
        if info and info["kind"] == "answer":
            answer = info["id"]
        elif info:
            expected = checks_line(cell, info["id"])
            owner = None if info.get("hidden") else answer
            found.append(Task(info["id"], info.get("task") or owner or info["id"], info["points"],
                              expected, owner, info.get("hidden", False)))
            if owner:
                answer = None
    names = [task.name for task in found]
    if len(set(names)) != len(names):
        raise ValueError(f"two tasks have the same name: {names}")
    return found


def checks_line(cell, check_id):
    """The one line a source check cell stores, which must say ``n/n passed``."""
    summary = parse_summary(stored_stdout(cell), check_id)
    if summary is None or summary[0] != summary[1] or stored_stdout(cell).strip().count("\n"):
        raise ValueError(f"check cell {check_id!r} must store the output "
                         f"'{check_id}: n/n passed', got {stored_stdout(cell)!r}")
    return stored_stdout(cell).strip()


def validate_source(source):
    """Raise ValueError unless ``source`` is a well-formed source notebook; returns its ``tasks``."""
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
    found = tasks(source)
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


HOW_GRADED = (
    "**How this notebook is graded.** Only the answer cells (the cells that say `# YOUR CODE HERE`) are "
    "graded: the grader takes them from your notebook and runs them with the original text of every other "
    "cell, so code you write in a cell you added is thrown away; put all that an answer needs in its "
    "answer cell. A check cell prints one line, `check_...: k/n passed`, and under it why each failed "
    "check failed. An answer may not call the library function it asks you to write (the grader parses "
    "your code), nor change the library or the checks.{hidden} Before you submit, save the notebook and run "
    "its last cell.")
HIDDEN_NOTE = " When grading, hidden checks that you do not see here also test your answers."
BEFORE_SUBMITTING = (
    "## Before you submit\n\nSave the notebook, then run the cell below: it lists the answer cells "
    "that are still the empty stub, and the code cells you added, which grading ignores.")
REPORT_CELL = "from minitorch_compress.grading import submission_report\nsubmission_report()"


def release(source):
    """The student notebook: solutions stubbed out, answer outputs cleared, hidden checks left
    out, a note on how it is graded after the title and a "before you submit" cell at the end."""
    found = validate_source(source)
    cells = []
    for cell in nbformat.from_dict(source).cells:
        info = grading_info(cell)
        if info and info.get("hidden"):
            continue
        if info and info["kind"] == "answer":
            cell.source = strip_solution(cell.source, info["id"])
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
        if len(cells) == 1:
            hidden = HIDDEN_NOTE if any(task.hidden for task in found) else ""
            cells.append(new_markdown_cell(HOW_GRADED.format(hidden=hidden)))
    cells += [new_markdown_cell(BEFORE_SUBMITTING), new_code_cell(REPORT_CELL)]
    student = nbformat.from_dict(source)
    student.cells = cells
    return canonical(student)


def is_stub(text):
    """Whether an answer cell's ``text`` still holds the released stub somewhere."""
    lines = [line.strip() for line in text.split("\n")]
    first, second = (line.strip() for line in STUB.split("\n"))
    return any(a == first and b == second for a, b in zip(lines, lines[1:]))


def submission_report(path=None):
    """Print, for the learner's saved notebook ``path`` (default: the one open in Jupyter, or the
    only notebook here), the answer cells that are still stubs and the code cells they added."""
    if path is None:
        session = os.environ.get("JPY_SESSION_NAME", "")
        here = sorted(glob.glob("*.ipynb"))
        path = session if session.endswith(".ipynb") and os.path.isfile(session) else (
            here[0] if len(here) == 1 else None)
    if path is None or not os.path.isfile(path):
        print("Could not tell which notebook this is: call submission_report('<its file name>.ipynb').")
        return
    nb = read_notebook(path)
    stubs, added = [], []
    for index, cell in enumerate(nb.cells, start=1):
        info = cell.get("metadata", {}).get("grading") or {}
        if cell.cell_type != "code":
            continue
        if info.get("kind") == "answer" and is_stub(cell.source):
            stubs.append(info.get("id", f"cell {index}"))
        elif not info and cell.source.strip() and not re.fullmatch(r"cell-\d+", cell.get("id") or ""):
            first = next(line for line in cell.source.split("\n") if line.strip())
            added.append(f"cell {index}: {first.strip()[:60]}")
    print(f"{os.path.basename(path)} as saved:")
    print("- answers still the empty stub: " + (", ".join(stubs) if stubs else "none"))
    if added:
        print("- cells you added (not graded; move what an answer needs into its answer cell):")
        print("\n".join(f"    {line}" for line in added))
    else:
        print("- no added code cells")


def rebuild(source, submission):
    """The notebook to grade: ``source`` with the learner's answer cells swapped in.

    Returns ``(notebook, notes)``; ``notes`` says, in words for the feedback file, which
    cells of the submission were not used as they were (edited or deleted checks, missing
    answers, nbval tags).
    """
    validate_source(source)
    by_id = {}
    for cell in submission.get("cells", []):
        info = cell.get("metadata", {}).get("grading")
        if isinstance(info, dict) and isinstance(info.get("id"), str):
            by_id.setdefault(info["id"], cell)
    notes = []
    graded = canonical(source)
    for cell in graded.cells:
        info = grading_info(cell)
        if info is None or info.get("hidden"):
            continue
        theirs = by_id.get(info["id"])
        if info["kind"] == "answer":
            if theirs is None:
                notes.append(f"answer cell {info['id']!r} was missing; graded the empty stub")
                cell.source = strip_solution(cell.source, info["id"])
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
