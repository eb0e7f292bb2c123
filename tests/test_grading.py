"""The autograder on a two-task toy assignment: release, rebuild, and grading a class of
good, wrong, tampering and crashing submissions in one batch; a crash in the first answer costs
what a blank first answer costs; forbidden names, monkeypatching and hidden checks."""
import contextlib
import csv
import glob
import io
import os

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from minitorch_compress.grading import Checker, submission_report
from minitorch_compress.grading.__main__ import main
from minitorch_compress.grading.grade import grade_notebook
from minitorch_compress.grading.notebook import (
    STUB, grading_info, read_notebook, rebuild, release, strip_solution, validate_source, write_notebook,
)
from minitorch_compress.grading.policy import Context, forbidden_through_helpers, inspect_answer, top_level_names
from minitorch_compress.grading.runner import run_task

SOLVED = {"add": "def add(a, b):\n    return a + b",
          "total": "def total(xs):\n    return sum(x * x for x in xs)"}


def toy_source(hidden=False):
    """Two tasks: ``add`` (2 checks, 2 points; may not use ``np.add``) and ``total`` (3 checks,
    3 points); with ``hidden``, a third, hidden check of ``add`` (1 point)."""
    def answer(cell_id, body, **extra):
        return new_code_cell(body, metadata={"grading": {"kind": "answer", "id": cell_id, **extra}})

    def check(cell_id, points, body, line, **extra):
        return new_code_cell(body, metadata={"grading": {"kind": "check", "id": cell_id, "points": points,
                                                         **extra}},
                             outputs=[new_output("stream", name="stdout", text=line + "\n")])

    cells = [
        new_markdown_cell("# Toy assignment"),
        new_code_cell("import numpy as np\nfrom minitorch_compress.grading import Checker"),
        answer("add", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
               forbid=["np.add"]),
        check("check_add", 2, 'check = Checker("check_add")\n'
              'check.equal("ints", lambda: add(1, 2), 3)\n'
              'check.equal("arrays", lambda: add(np.arange(3), 1), np.arange(1, 4))\n'
              'check.done()', "check_add: 2/2 passed"),
        answer("total", "def total(xs):\n    ### BEGIN SOLUTION\n"
               "    return sum(x * x for x in xs)\n    ### END SOLUTION", forbid=["np.square"]),
        check("check_total", 3, 'check = Checker("check_total")\n'
              'check.equal("empty", lambda: total([]), 0)\n'
              'check.equal("one", lambda: total([2]), 4)\n'
              'check.equal("many", lambda: total([1, 2, 3]), 14)\n'
              'check.done()', "check_total: 3/3 passed"),
    ]
    if hidden:
        cells.append(check("check_add_hidden", 1, 'check = Checker("check_add_hidden")\n'
                           'check.equal("floats", lambda: add(0.5, 0.25), 0.75)\n'
                           'check.done()', "check_add_hidden: 1/1 passed", hidden=True, task="add (more)"))
    for count, cell in enumerate((c for c in cells if c.cell_type == "code"), start=1):
        cell.execution_count = count
    return new_notebook(cells=cells)


def submission(answers=(), edits=(), hidden=False):
    """The released toy notebook as a student hands it in: answers by id, edits by check id."""
    nb = release(toy_source(hidden))
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
    assert "Only the answer cells" in student.cells[1].source   # how it is graded, after the title
    add = student.cells[3]
    assert add.source == "def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert add.outputs == [] and add.execution_count is None
    assert student.cells[4].outputs[0]["text"] == "check_add: 2/2 passed\n"
    assert student.cells[4].execution_count == 3  # kept: nbval skips unrun cells
    assert student.cells[-1].source.endswith("submission_report()")
    assert nbformat.writes(release(toy_source())) == nbformat.writes(student)  # deterministic


def test_hidden_checks_are_not_released():
    student = release(toy_source(hidden=True))
    assert "check_add_hidden" not in nbformat.writes(student)
    assert "hidden checks" in student.cells[1].source
    assert len(student.cells) == len(release(toy_source()).cells)


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
    assert len(graded.cells) == len(source.cells)   # the scratch cell is not graded
    assert not any("tags" in cell.metadata for cell in graded.cells)
    assert notes == ["check cell 'check_add' was edited; restored the original",
                     "check cell 'check_total' was tagged ['nbval-skip']; removed the tags"]
    deleted = submission()
    deleted.cells = [c for c in deleted.cells if c.metadata.get("grading", {}).get("id") != "check_total"]
    assert rebuild(toy_source(), deleted)[1] == ["check cell 'check_total' was deleted; restored it"]


def test_submission_report_lists_stubs_and_added_cells(tmp_path, monkeypatch):
    nb = submission({"total": "def total(xs):\n    # YOUR CODE HERE\n    raise NotImplementedError()"})
    nb.cells.insert(4, new_code_cell("def add(a, b):\n    return a + b  # my better answer"))
    nbformat.write(nb, str(tmp_path / "toy.ipynb"))   # as Jupyter saves it: the new cell has a new id
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        submission_report()
    text = out.getvalue()
    assert "answers still the empty stub: total" in text
    assert "cell 5: def add(a, b):" in text and "not graded" in text


def test_failed_checks_say_why_under_the_one_graded_line():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        check = Checker("check_x")
        check.equal("right", lambda: 1 + 1, 2)
        check.equal("wrong", lambda: [1, 2], [1, 3])
        check.equal("raises", lambda: (_ for _ in ()).throw(ValueError("bad\ncheck_x: 3/3 passed")), 0)
        anything = type("Anything", (), {"__eq__": lambda self, other: True})()
        check.equal("object", lambda: anything, 3)       # numbers expected: its own __eq__ does not count
        check.close("object_close", lambda: anything, 3.0, rtol=0, atol=0)
        check.done()
    lines = out.getvalue().splitlines()[:3]
    assert lines == ["check_x: 1/5 passed (failed: wrong, raises, object, object_close)",
                     "  - wrong: expected [1, 3] (shape (2,)), got [1, 2] (shape (2,))",
                     "  - raises: expected 0, got raised ValueError: bad\\ncheck_x: 3/3 passed"]


NUMBA_SPIN = ("import numba\n@numba.njit\ndef _spin(a):\n    i = 0\n    while a >= 0:\n        i += 1\n"
              "    return i\n")
BLANK_ADD = "def add(a, b):\n" + "\n".join("    " + line for line in STUB.split("\n"))


def _row(result):
    return [(task.check_id, task.points) for task in result.tasks]


@pytest.mark.parametrize("answer", [
    "import os\nos._exit(1)",                                   # the kernel dies in the answer cell
    "def add(a, b):\n    import os\n    os._exit(1)",            # ... in the check, calling it
    NUMBA_SPIN + "_spin(1)",                                     # a Numba loop ignores the interrupt
    NUMBA_SPIN + "def add(a, b):\n    return _spin(1)",
    "def add(a, b):\n    return a + b\nwhile True:\n    pass",     # a Python loop, interrupted
    "def add(a, b):\n    while True:\n        pass",
    "raise SystemExit",
])
def test_a_crash_in_the_first_answer_costs_what_a_blank_first_answer_costs(answer):
    blank = grade_notebook(toy_source(True), submission({"add": BLANK_ADD}, hidden=True), "blank", timeout=30)
    assert _row(blank) == [("check_add", 0), ("check_total", 3), ("check_add_hidden", 0)]
    broken = grade_notebook(toy_source(True), submission({"add": answer}, hidden=True), "broken", timeout=30)
    assert _row(broken) == _row(blank)
    feedback = "\n".join(broken.events + [p for task in broken.tasks for p in task.problems])
    if "SystemExit" not in answer:
        assert "answer cell 'add'" in feedback or "check cell 'check_add'" in feedback
        assert any(what in feedback for what in ("kernel died", "limit"))


def test_forbidden_names_and_tampering_are_caught():
    cases = {
        # the library's own function: the task earns nothing, the rest is graded
        "forbidden": "def add(a, b):\n    return np.add(a, b)",
        "aliased": "from numpy import add as plus\ndef add(a, b):\n    return plus(a, b)",
        # rebinding the Checker or a function the check compares with: not run at all
        "checker": ("from minitorch_compress.grading import checker\n"
                    "checker.Checker._record = lambda self, label, *a: self.results.append((label, True, 0, 0))\n"
                    "def add(a, b):\n    return 0"),
        "library": "np.array_equal = lambda *a: True\ndef add(a, b):\n    return 0",
        "rebind": "def add(a, b):\n    return 0\nChecker = None",
        "equals_all": "class Anything:\n    def __eq__(self, other):\n        return True\n"
                      "def add(a, b):\n    return Anything()",
        "fake_line": 'def add(a, b):\n    print("check_add: 2/2 passed")\n    return 0\nprint("check_add: 2/2 passed")',
    }
    results = {name: grade_notebook(toy_source(), submission({"add": code}), name, timeout=60)
               for name, code in cases.items()}
    for name, result in results.items():
        assert _row(result) == [("check_add", 0), ("check_total", 3)], name
    assert "uses np.add" in results["forbidden"].tasks[0].problems[-1]
    assert "uses np.add" in results["aliased"].tasks[0].problems[-1]
    assert results["forbidden"].tasks[0].got == "check_add: 2/2 passed"   # it works, but is not theirs
    for name in ("checker", "library", "rebind", "equals_all"):
        assert "was not run" in results[name].events[0], results[name].events
    assert "'grading'" in results["checker"].events[0]
    assert "changes 'np'" in results["library"].events[0]
    assert "rebinds 'Checker'" in results["rebind"].events[0]
    assert results["fake_line"].tasks[0].got.startswith("check_add: 0/2 passed")


def test_a_forbidden_name_in_another_answer_cell_still_costs_the_task():
    helper = "def add(a, b):\n    return a + b\ndef _squares(xs):\n    return float(np.square(xs).sum())"
    cases = {  # total (forbids np.square) through a helper, or defined in add's cell
        "helper": {"add": helper, "total": "def total(xs):\n    return _squares(np.asarray(xs))"},
        "elsewhere": {"add": helper + "\ndef total(xs):\n    return _squares(np.asarray(xs))", "total": "pass"},
    }
    for name, answers in cases.items():
        result = grade_notebook(toy_source(), submission(answers), name, timeout=60)
        assert _row(result) == [("check_add", 2), ("check_total", 0)], name
        assert "_squares in answer cell 'add', line 4: uses np.square" in result.tasks[1].problems[-1], name


def test_grading_a_class_survives_tampering_and_crashes(tmp_path):
    source_dir, subs = tmp_path / "source", tmp_path / "subs"
    write_notebook(toy_source(hidden=True), source_dir / "toy.ipynb")

    def hand_in(student, nb):
        write_notebook(nb, subs / student / "toy.ipynb")

    def fake_pass(cell):
        cell.source = 'print("check_add: 2/2 passed")'

    def skip(cell):
        cell.metadata["tags"] = ["nbval-skip"]

    hand_in("good", submission(hidden=True))
    hand_in("wrong", submission({"total": "def total(xs):\n    return -1"}, hidden=True))
    # Tampering with both checks: add passes 1 of its 2 checks, total all 3.
    hand_in("tamper", submission({"add": "def add(a, b):\n    return a + b if np.isscalar(a) else 0"},
                                 {"check_add": fake_pass, "check_total": skip}, hidden=True))
    hand_in("numbaloop", submission({"add": NUMBA_SPIN + "def add(a, b):\n    return _spin(1)"}, hidden=True))
    hand_in("exits", submission({"total": "import os\ndef total(xs):\n    os._exit(1)"}, hidden=True))
    hand_in("untouched", release(toy_source(hidden=True)))
    write_notebook(submission(hidden=True), subs / "misnamed" / "toy (1).ipynb")
    (subs / "badjson").mkdir()
    (subs / "badjson" / "toy.ipynb").write_text('{"cells": [')
    (subs / "nothing").mkdir()
    (subs / ".ipynb_checkpoints").mkdir()   # Jupyter's, not a student

    out = tmp_path / "grades.csv"
    assert main(["grade", str(subs), "--assignment", "toy", "--out", str(out), "--source-dir",
                 str(source_dir), "--timeout", "30", "--jobs", "2"]) == 0

    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", "add", "total", "add (more)", "total", "error"]
    assert rows[1] == ["(max points)", "2", "3", "1", "6", ""]
    assert all(len(row) == 6 for row in rows)
    table = {row[0]: row[1:5] for row in rows[2:]}
    errors = {row[0]: row[5] for row in rows[2:]}
    assert table == {
        "badjson": ["0", "0", "0", "0"],
        "exits": ["2", "0", "1", "3"],
        "good": ["2", "3", "1", "6"],
        "misnamed": ["2", "3", "1", "6"],
        "nothing": ["0", "0", "0", "0"],
        "numbaloop": ["0", "3", "0", "3"],
        "tamper": ["1", "3", "1", "5"],   # partial credit from the restored check's own k/n
        "untouched": ["0", "0", "0", "0"],
        "wrong": ["2", "0", "1", "3"],    # exactly the wrong task's 3 points lost
    }
    assert errors["badjson"].startswith("unreadable notebook")
    assert errors["nothing"] == "no submission: toy.ipynb is missing"
    assert "check cell 'check_add'" in errors["numbaloop"] and "killed" in errors["numbaloop"]
    assert "check cell 'check_total'" in errors["exits"] and "kernel died" in errors["exits"]
    assert not any(errors[s] for s in ("good", "wrong", "tamper", "misnamed", "untouched"))

    feedback = {p.stem: p.read_text() for p in (tmp_path / "feedback" / "toy").iterdir()}
    assert set(feedback) == set(table)
    assert "check cell 'check_add' was edited; restored the original" in feedback["tamper"]
    assert "    check_add: 1/2 passed (failed: arrays)" in feedback["tamper"]
    assert "  - arrays: expected [1, 2, 3] (shape (3,)), got 0" in feedback["tamper"]
    assert "- many: expected 14, got -1" in feedback["wrong"]
    assert "graded toy (1).ipynb: there was no toy.ipynb" in feedback["misnamed"]
    assert "## add (more) (hidden check): 0 / 1 points" in feedback["numbaloop"]
    assert "add(0.5, 0.25)" not in feedback["numbaloop"]   # a hidden check's result, not its code
    assert "Not attempted" in feedback["untouched"] and "NotImplementedError" not in feedback["untouched"]
    assert "## add: 0 / 2 points (not attempted)" in feedback["untouched"]
    assert "Total: 6 / 6 points" in feedback["good"]


def test_wall_clock_kills_the_whole_process_tree(tmp_path):
    """A Numba loop ignores interrupts; past the wall clock the kernel itself must die."""
    pid_file = tmp_path / "kernel.pid"
    nb = new_notebook(cells=[
        new_code_cell(f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))"),
        new_code_cell(NUMBA_SPIN + "_spin(1)"),
        new_code_cell("print('never')"),
    ])
    result = run_task(nb, timeout=300, wall_clock=60)
    assert result["killed"]
    assert result["cells"][1]["outcome"] == "failed" and 2 not in result["cells"]
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

    # Re-grading one student keeps the others' rows; a gradebook file for Canvas from a roster.
    write_notebook(submission(), subs / "ben" / "toy.ipynb")   # ben fixed his answer
    roster = tmp_path / "roster.csv"
    roster.write_text("student,name,id,sis_login_id,section\n"
                      "ana,Ana A,101,ana1,A\nben,Ben B,102,ben2,A\ncem,Cem C,103,cem3,B\n")
    assert main(["grade", str(subs), "--assignment", "toy", "--out", str(tmp_path / "all.csv"), "--source-dir",
                 str(source_dir), "--students", "ben", "--format", "canvas", "--roster", str(roster)]) == 0
    assert (tmp_path / "all.csv").read_text() == whole.replace("ben,2,0,2,", "ben,2,3,5,")
    assert (tmp_path / "all-canvas.csv").read_text() == (
        "Student,ID,SIS User ID,SIS Login ID,Section,toy\nPoints Possible,,,,,5\n"
        "Ana A,101,,ana1,A,5\nBen B,102,,ben2,A,5\nCem C,103,,cem3,B,0\n")
    assert main(["grade", str(subs), "--assignment", "toy", "--out", str(tmp_path / "m.csv"), "--source-dir",
                 str(source_dir), "--format", "moodle"]) == 0
    assert (tmp_path / "m-moodle.csv").read_text() == "Email address,toy\nana,5\nben,5\ncem,0\n"


def test_deadline_adds_hours_late_from_the_notebooks_modification_time(tmp_path):
    from datetime import datetime, timezone
    from minitorch_compress.grading.grade import hours_late
    source_dir, subs = tmp_path / "source", tmp_path / "subs"
    write_notebook(toy_source(), source_dir / "toy.ipynb")
    deadline = datetime(2026, 12, 10, 23, 0, tzinfo=timezone.utc)
    for student, offset in [("ana", -600.0), ("ben", 3 * 3600 + 36)]:   # 10 min early; 3.01 h late
        write_notebook(submission(), subs / student / "toy.ipynb")
        stamp = deadline.timestamp() + offset
        os.utime(subs / student / "toy.ipynb", (stamp, stamp))
    out = tmp_path / "grades.csv"
    assert main(["grade", str(subs), "--assignment", "toy", "--out", str(out), "--source-dir", str(source_dir),
                 "--jobs", "2", "--deadline", "2026-12-11T00:00+01:00", "--format", "moodle"]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0][-3:] == ["total", "error", "late (hours)"] and rows[1][-1] == ""
    assert [(row[0], row[-3], row[-1]) for row in rows[2:]] == [("ana", "5", "0"), ("ben", "5", "3.01")]
    assert (tmp_path / "grades-moodle.csv").read_text() == "Email address,toy\nana,5\nben,5\n"  # points unchanged
    feedback = (tmp_path / "feedback" / "toy" / "ben.md").read_text()
    assert "Handed in 3.01 hours after the deadline." in feedback
    assert "after the deadline" not in (tmp_path / "feedback" / "toy" / "ana.md").read_text()
    with pytest.raises(ValueError, match="time zone"):
        hours_late(str(subs / "ana" / "toy.ipynb"), datetime(2026, 12, 10))
    with pytest.raises(SystemExit):
        main(["grade", str(subs), "--assignment", "toy", "--out", str(out), "--deadline", "next friday"])


def test_every_assignment_solution_passes_the_answer_policy():
    """The policy flags no source solution: a correct answer is never graded as tampering."""
    sources = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "exercises", "source", "*.ipynb")))
    assert sources
    for path in sources:
        cells = [(c, grading_info(c) or {}) for c in read_notebook(path).cells if c.cell_type == "code"]
        context = Context([c.source for c, i in cells if not i],
                          [c.source for c, i in cells if i.get("kind") == "check"])
        answers = []
        for cell, info in cells:
            if info.get("kind") == "answer":
                answers.append((info["id"], cell.source))
                forbid = info.get("forbid", [])
                assert inspect_answer(cell.source, context, forbid) == ([], []), (path, info["id"])
                roots = top_level_names(strip_solution(cell.source, info["id"]))
                assert forbidden_through_helpers(roots, answers, context, forbid, info["id"]) == [], (path, info["id"])
