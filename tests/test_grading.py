"""The autograder on a two-task toy assignment: release, rebuild, and grading a class of
good, wrong, tampering and crashing submissions in one batch."""
import csv
import os

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from minitorch_compress.grading.__main__ import main
from minitorch_compress.grading.notebook import (
    read_notebook, rebuild, release, strip_solution, task_notebook, validate_source, write_notebook,
)
from minitorch_compress.grading.runner import run_task

SOLVED = {"add": "def add(a, b):\n    return a + b",
          "total": "def total(xs):\n    return sum(x * x for x in xs)"}


def toy_source():
    """Two tasks: ``add`` (2 checks, 2 points) and ``total`` (3 checks, 3 points)."""
    def answer(cell_id, body):
        return new_code_cell(body, metadata={"grading": {"kind": "answer", "id": cell_id}})

    def check(cell_id, points, body, line):
        return new_code_cell(body, metadata={"grading": {"kind": "check", "id": cell_id, "points": points}},
                             outputs=[new_output("stream", name="stdout", text=line + "\n")])

    cells = [
        new_markdown_cell("# Toy assignment"),
        new_code_cell("import numpy as np\nfrom minitorch_compress.grading import Checker"),
        answer("add", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"),
        check("check_add", 2, 'check = Checker("check_add")\n'
              'check.equal("ints", lambda: add(1, 2), 3)\n'
              'check.equal("arrays", lambda: add(np.arange(3), 1), np.arange(1, 4))\n'
              'check.done()', "check_add: 2/2 passed"),
        answer("total", "def total(xs):\n    ### BEGIN SOLUTION\n"
               "    return sum(x * x for x in xs)\n    ### END SOLUTION"),
        check("check_total", 3, 'check = Checker("check_total")\n'
              'check.equal("empty", lambda: total([]), 0)\n'
              'check.equal("one", lambda: total([2]), 4)\n'
              'check.equal("many", lambda: total([1, 2, 3]), 14)\n'
              'check.done()', "check_total: 3/3 passed"),
    ]
    for count, cell in enumerate((c for c in cells if c.cell_type == "code"), start=1):
        cell.execution_count = count
    return new_notebook(cells=cells)


def submission(answers=(), edits=()):
    """The released toy notebook as a student hands it in: answers by id, edits by check id."""
    nb = release(toy_source())
    sources = dict(SOLVED, **dict(answers))
    for cell in nb.cells:
        info = cell.metadata.get("grading")
        if info and info["kind"] == "answer":
            cell.source = sources[info["id"]]
        if info and info["id"] in dict(edits):
            dict(edits)[info["id"]](cell)
    return nb


def test_release_stubs_solutions_keeps_checks_and_is_canonical():
    student = release(toy_source())
    add = student.cells[2]
    assert add.source == "def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert add.outputs == [] and add.execution_count is None
    assert student.cells[3].outputs[0]["text"] == "check_add: 2/2 passed\n"
    assert student.cells[3].execution_count == 3  # kept: nbval skips unrun cells
    assert nbformat.writes(release(toy_source())) == nbformat.writes(student)  # deterministic


@pytest.mark.parametrize("body, message", [
    ("x = 1\n### BEGIN SOLUTION\nx = 2", "without"),
    ("x = 1\n### END SOLUTION", "without"),
    ("x = 1", "no '### BEGIN SOLUTION' region"),
])
def test_malformed_solution_markers_are_refused(body, message):
    with pytest.raises(ValueError, match=message):
        strip_solution(body, "cell")


def test_source_with_nbval_markers_is_refused():
    source = toy_source()
    source.cells[3].metadata["tags"] = ["raises-exception"]
    with pytest.raises(ValueError, match="nbval marker"):
        validate_source(source)
    source = toy_source()
    source.cells[1].source += "\n# NBVAL_IGNORE_OUTPUT"
    with pytest.raises(ValueError, match="nbval marker"):
        validate_source(source)


def test_rebuild_keeps_only_answers_and_reports_restorations():
    def edit(cell):
        cell.source = 'print("check_add: 2/2 passed")'

    def skip(cell):
        cell.metadata["tags"] = ["nbval-skip"]

    student = submission({"add": "def add(a, b):\n    return 0"}, {"check_add": edit, "check_total": skip})
    student.cells.insert(0, new_code_cell("print('my scratch cell')"))
    graded, notes = rebuild(toy_source(), student)
    source = toy_source()
    assert [graded.cells[i].source for i in (0, 1, 3, 5)] == [source.cells[i].source for i in (0, 1, 3, 5)]
    assert [graded.cells[i].source for i in (2, 4)] == ["def add(a, b):\n    return 0", SOLVED["total"]]
    assert not any("tags" in cell.metadata for cell in graded.cells)
    assert notes == ["check cell 'check_add' was edited; restored the original",
                     "check cell 'check_total' was tagged ['nbval-skip']; removed the tags"]
    deleted = submission()
    deleted.cells = [c for c in deleted.cells if c.metadata.get("grading", {}).get("id") != "check_total"]
    assert rebuild(toy_source(), deleted)[1] == ["check cell 'check_total' was deleted; restored it"]
    # Each task runs the cells up to its check, without the other checks.
    task = task_notebook(graded, "check_total")
    assert [c.get("id") for c in task.cells] == ["cell-0", "cell-1", "add", "total", "check_total"]


NUMBA_SPIN = ("import numba\n@numba.njit\ndef _spin(a):\n    i = 0\n    while a >= 0:\n        i += 1\n"
              "    return i\ndef add(a, b):\n    return _spin(1)")


def test_grading_a_class_survives_tampering_and_crashes(tmp_path):
    source_dir, subs = tmp_path / "source", tmp_path / "subs"
    write_notebook(toy_source(), source_dir / "toy.ipynb")

    def hand_in(student, nb):
        write_notebook(nb, subs / student / "toy.ipynb")

    def fake_pass(cell):
        cell.source = 'print("check_add: 2/2 passed")'

    def skip(cell):
        cell.metadata["tags"] = ["nbval-skip"]

    hand_in("good", submission())
    hand_in("wrong", submission({"total": "def total(xs):\n    return -1"}))
    # Tampering with both checks: add passes 1 of its 2 checks, total all 3.
    hand_in("tamper", submission({"add": "def add(a, b):\n    return a + b if np.isscalar(a) else 0"},
                                 {"check_add": fake_pass, "check_total": skip}))
    hand_in("pyloop", submission({"add": "def add(a, b):\n    while True:\n        pass"}))
    hand_in("numbaloop", submission({"add": NUMBA_SPIN}))
    hand_in("exits", submission({"total": "import os\ndef total(xs):\n    os._exit(1)"}))
    (subs / "badjson").mkdir()
    (subs / "badjson" / "toy.ipynb").write_text('{"cells": [')
    (subs / "nothing").mkdir()
    (subs / ".ipynb_checkpoints").mkdir()   # Jupyter's, not a student

    out = tmp_path / "grades.csv"
    assert main(["grade", str(subs), "--assignment", "toy", "--out", str(out), "--source-dir",
                 str(source_dir), "--timeout", "5", "--jobs", "2"]) == 0

    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", "check_add", "check_total", "total", "error"]
    assert rows[1] == ["(max points)", "2", "3", "5", ""]
    assert all(len(row) == 5 for row in rows)
    table = {row[0]: row[1:4] for row in rows[2:]}
    errors = {row[0]: row[4] for row in rows[2:]}
    assert table == {
        "badjson": ["0", "0", "0"],
        "exits": ["2", "0", "2"],
        "good": ["2", "3", "5"],
        "nothing": ["0", "0", "0"],
        "numbaloop": ["0", "3", "3"],
        "pyloop": ["0", "3", "3"],
        "tamper": ["1", "3", "4"],   # partial credit from the restored check's own k/n
        "wrong": ["2", "0", "2"],    # exactly the wrong task's 3 points lost
    }
    assert errors["badjson"].startswith("unreadable notebook")
    assert errors["nothing"] == "no submission: toy.ipynb is missing"
    assert not any(errors[s] for s in table if s not in ("badjson", "nothing"))

    feedback = {p.stem: p.read_text() for p in (tmp_path / "feedback" / "toy").iterdir()}
    assert set(feedback) == set(table)
    assert "check cell 'check_add' was edited; restored the original" in feedback["tamper"]
    assert "got output:      check_add: 1/2 passed (failed: arrays)" in feedback["tamper"]
    assert "- many: expected 14, got -1" in feedback["wrong"]
    assert "Timeout of 5 seconds exceeded" in feedback["pyloop"]
    assert "Timeout of 5 seconds exceeded" in feedback["numbaloop"]
    assert "the kernel died" in feedback["exits"]
    assert "Total: 5 / 5 points" in feedback["good"]


def test_wall_clock_kills_the_whole_process_tree(tmp_path):
    """A Numba loop ignores interrupts; past the wall clock the kernel itself must die."""
    pid_file = tmp_path / "kernel.pid"
    nb = new_notebook(cells=[
        new_code_cell(f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))"),
        new_code_cell(NUMBA_SPIN + "\nadd(1, 2)"),
    ])
    result = run_task(nb, timeout=300, wall_clock=25)
    assert result["killed"]
    assert 1 not in result["cells"]  # nbval never got to judge the spinning cell
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_shards_merge_to_the_whole_class(tmp_path):
    source_dir, subs = tmp_path / "source", tmp_path / "subs"
    write_notebook(toy_source(), source_dir / "toy.ipynb")
    write_notebook(submission(), subs / "ana" / "toy.ipynb")
    write_notebook(submission({"total": "def total(xs):\n    return -1"}), subs / "ben" / "toy.ipynb")
    (subs / "cem").mkdir()   # handed in nothing

    def grade(out, *shard):
        assert main(["grade", str(subs), "--assignment", "toy", "--out", str(tmp_path / out), "--source-dir",
                     str(source_dir), "--jobs", "2", *shard]) == 0
        return (tmp_path / out).read_text()
    whole = grade("all.csv")
    first, second = grade("1.csv", "--shard", "1/2"), grade("2.csv", "--shard", "2/2")
    assert [line.split(",")[0] for line in first.splitlines()[2:]] == ["ana", "cem"]
    assert [line.split(",")[0] for line in second.splitlines()[2:]] == ["ben"]
    assert main(["merge", str(tmp_path / "2.csv"), str(tmp_path / "1.csv"), "--out", str(tmp_path / "merged.csv")]) == 0
    assert (tmp_path / "merged.csv").read_text() == whole
    assert "ben,2,0,2," in whole and "cem,0,0,0,no submission" in whole
    with pytest.raises(ValueError, match="two shards"):
        main(["merge", str(tmp_path / "1.csv"), str(tmp_path / "all.csv"), "--out", str(tmp_path / "bad.csv")])
    (tmp_path / "other.csv").write_text(whole.replace("(max points),2,3,5", "(max points),4,3,7"))
    with pytest.raises(ValueError, match="another assignment"):
        main(["merge", str(tmp_path / "2.csv"), str(tmp_path / "other.csv"), "--out", str(tmp_path / "bad.csv")])
    with pytest.raises(SystemExit):
        main(["grade", str(subs), "--assignment", "toy", "--out", "x.csv", "--shard", "3/2"])
