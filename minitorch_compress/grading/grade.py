"""Grade a class: rebuild every submission, run each check in its own process, score it.

A task's points come from nbval's verdict on its check cell: full points when nbval
passes; otherwise the share ``k/n`` that the (restored) check cell actually printed,
and nothing when it printed no summary line (timeout, dead kernel, error).
"""
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .checker import parse_summary
from .notebook import code_index, grading_info, read_notebook, rebuild, task_notebook, validate_source
from .runner import GRACE_SECONDS, run_task

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class TaskResult:
    """One check of one submission: points, and what to tell the learner about it."""
    check_id: str
    max_points: float
    points: float = 0.0
    expected: str = ""            # the check cell's stored output line
    got: str = ""                 # what it printed in this run
    failures: list = field(default_factory=list)   # [{"label", "expected", "got"}]
    problems: list = field(default_factory=list)   # timeouts, crashes, failing answer cells


@dataclass
class StudentResult:
    """All tasks of one submission, or the error that kept it from being graded."""
    student: str
    tasks: list = field(default_factory=list)
    restored: list = field(default_factory=list)
    error: str = ""

    @property
    def total(self):
        return round(sum(task.points for task in self.tasks), 2)


def class_list(submissions_dir, shard=None):
    """The student folders of ``submissions_dir``, sorted; hidden ones (``.ipynb_checkpoints``,
    ``.git``) are not students. ``shard=(k, n)`` keeps the k-th of n slices (1-based): every n-th
    student from the k-th on, so that n graders (a job array, a CI matrix) share a class and
    ``merge`` joins their CSVs."""
    if not os.path.isdir(submissions_dir):
        raise ValueError(f"submissions directory {submissions_dir!r} does not exist")
    students = sorted(name for name in os.listdir(submissions_dir)
                      if not name.startswith(".") and os.path.isdir(os.path.join(submissions_dir, name)))
    if shard is None:
        return students
    k, n = shard
    if not (isinstance(k, int) and isinstance(n, int) and 1 <= k <= n):
        raise ValueError(f"shard must be K/N with 1 <= K <= N, got {k}/{n}")
    return students[k - 1::n]


def grade_class(source_path, submissions_dir, assignment, timeout=120, jobs=None, shard=None):
    """Grade ``submissions_dir/<student>/<assignment>.ipynb`` for every student folder (of the
    shard, see ``class_list``).

    Tasks of all students run in parallel, ``jobs`` (default ``os.cpu_count()``) at a time.
    Returns ``(checks, [StudentResult])`` with students sorted by name.
    """
    source = read_notebook(source_path)
    checks = validate_source(source)
    students = class_list(submissions_dir, shard)
    results, work = [], []
    for student in students:
        result = StudentResult(student)
        results.append(result)
        path = os.path.join(submissions_dir, student, f"{assignment}.ipynb")
        try:
            graded, result.restored = rebuild(source, read_notebook(path))
        except FileNotFoundError:
            result.error = f"no submission: {assignment}.ipynb is missing"
        except Exception as error:  # any unreadable file is that student's row, not the batch's
            result.error = f"unreadable notebook: {type(error).__name__}: {_first_line(error)}"
        else:
            for check_id, points, expected in checks:
                result.tasks.append(TaskResult(check_id, points, expected=expected))
                work.append((result.tasks[-1], graded))
    # Threads suffice: each task's work happens in its own pytest and kernel processes.
    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        list(pool.map(lambda item: grade_task(item[1], item[0], timeout), work))
    return checks, results


def grade_task(graded, task, timeout):
    """Run ``task``'s check on the rebuilt notebook ``graded``; fill in ``task`` in place."""
    nb = task_notebook(graded, task.check_id)
    try:
        run = run_task(nb, timeout)
    except Exception as error:
        task.problems.append(f"the grader could not run this task: {error}")
        return task
    task.failures = [f for d in run["details"] if d["check"] == task.check_id for f in d["failures"]]
    check_index = code_index(nb, task.check_id)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for index, record in sorted(run["cells"].items()):
        info = grading_info(code_cells[index])
        if index != check_index and record["outcome"] == "failed" and info:
            task.problems.append(f"answer cell {info['id']!r} failed: {_summary(record['message'])}")
    record = run["cells"].get(check_index)
    if record is None:
        task.problems.append(
            f"time limit exceeded: the task ran past {timeout + GRACE_SECONDS} s and was killed"
            if run["killed"] else f"the check did not run; log: {run['log'][-500:]}")
        return task
    task.got = record["stdout"].strip()
    if record["outcome"] == "passed":
        task.points = task.max_points
        return task
    if record["message"]:
        task.problems.append(_summary(record["message"]))
    expected_total = parse_summary(task.expected, task.check_id)[1]
    printed = parse_summary(record["stdout"], task.check_id)
    if printed and printed[1] == expected_total:
        task.points = round(task.max_points * printed[0] / printed[1], 2)
    return task


def _summary(message):
    """The telling line of an nbval failure report, without colour codes."""
    lines = [line.strip() for line in ANSI.sub("", message).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Cell ") and ":" in line:
            head = line.split(":", 1)[1].strip()
            errors = [l for l in lines if re.match(r"^\w*(Error|Exception|Interrupt)\b", l)]
            return f"{head}: {errors[-1]}" if errors and "exception" in head else head
    return lines[-1] if lines else "failed"


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else ""
