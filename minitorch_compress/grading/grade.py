"""Grade a class: rebuild every submission, run it once in one kernel, score each task.

A submission runs top to bottom in one fresh kernel (the source notebook with only the
learner's answer cells swapped in). When a cell kills the kernel or runs past its time limit,
the submission runs again from the start without it: an answer cell is replaced by its empty
stub, a check cell is left out and its task earns nothing. So a crash or a runaway loop costs
exactly what a blank answer in that cell costs (an answer) or that task's points (a check).

A task's points come from the first line its check cell printed in that run: full points
when it equals the line stored in the source, else the share ``k/n`` it reports (rounded to 2
decimals), and nothing when the cell printed no summary line. An answer that uses a name its
task forbids earns that task nothing; an answer that tampers (see ``policy``) is not run.
"""
import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from .checker import parse_summary
from .notebook import grading_info, is_stub, read_notebook, rebuild, strip_solution, validate_source
from .policy import Context, forbidden_through_helpers, inspect_answer, top_level_names
from .runner import run_cells

OWN_CELL_TIMEOUT = 600  # seconds a cell of the notebook itself (not an answer or check) may run


@dataclass
class TaskResult:
    """One task of one submission: points, what its check printed, and what went wrong."""
    task: object                  # notebook.Task
    points: float = 0.0
    got: str = ""                 # the check cell's output: the graded line, then why checks failed
    problems: list = field(default_factory=list)
    not_attempted: bool = False   # its answer cell is still the released stub

    @property
    def check_id(self):
        return self.task.check_id

    @property
    def max_points(self):
        return self.task.points


@dataclass
class StudentResult:
    """All tasks of one submission, or the error that kept it from being graded."""
    student: str
    tasks: list = field(default_factory=list)
    restored: list = field(default_factory=list)   # cells of the submission not used as handed in
    events: list = field(default_factory=list)     # crashes, time-outs, tampering: what happened
    error: str = ""                                # why the submission was not graded at all
    runs: int = 0                                  # kernels started for it
    late: float = 0.0                              # hours handed in after the deadline (0: on time)

    @property
    def total(self):
        return round(sum(task.points for task in self.tasks), 2)

    @property
    def not_attempted(self):
        return bool(self.tasks) and all(task.not_attempted for task in self.tasks if task.task.answer_id)


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


def grade_class(source_path, submissions_dir, assignment, timeout=120, jobs=None, shard=None,
                students=None, deadline=None):
    """Grade ``submissions_dir/<student>/<assignment>.ipynb`` for every student folder (of the
    shard, see ``class_list``; or only ``students``), ``jobs`` submissions at a time (default:
    the CPU count). ``deadline`` (an aware ``datetime``, optional): each result's ``late`` is the
    hours by which its notebook's modification time passed it (see ``hours_late``).

    Returns ``(tasks, [StudentResult])`` with students sorted by name.
    """
    tasks = validate_source(read_notebook(source_path))
    everyone = class_list(submissions_dir, shard)
    unknown = sorted(set(students or ()) - set(everyone))
    if unknown:
        raise ValueError(f"no such student folder in {submissions_dir!r}: {', '.join(unknown)}")
    students = sorted(students) if students else everyone
    paths = [os.path.join(submissions_dir, student, f"{assignment}.ipynb") for student in students]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(students) or 1))
    # Worker processes, started fresh (no fork of this process): each runs kernels one at a time.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(grade_file, [os.path.abspath(source_path)] * len(paths), paths,
                                students, [timeout] * len(paths), [deadline] * len(paths)))
    return tasks, results


def grade_file(source_path, path, student, timeout, deadline=None):
    """Grade the submission at ``path``; a missing or unreadable file is a row with an error."""
    notes = []
    if not os.path.exists(path):  # a misnamed file: the folder's only notebook, said so
        folder = os.path.dirname(path)
        others = sorted(n for n in os.listdir(folder) if n.endswith(".ipynb")) if os.path.isdir(folder) else []
        if len(others) == 1:
            notes.append(f"graded {others[0]}: there was no {os.path.basename(path)}")
            path = os.path.join(folder, others[0])
    try:
        submission = read_notebook(path)
    except FileNotFoundError:
        return StudentResult(student, error=f"no submission: {os.path.basename(path)} is missing")
    except Exception as error:  # any unreadable file is that student's row, not the batch's
        return StudentResult(student, error=f"unreadable notebook: {type(error).__name__}: {_first_line(error)}")
    result = grade_notebook(_source(source_path), submission, student, timeout)
    result.restored[:0] = notes
    if deadline is not None:
        result.late = hours_late(path, deadline)
    return result


def hours_late(path, deadline):
    """Hours from ``deadline`` (an aware ``datetime``) to the file's modification time, rounded to
    2 decimals; 0 when it is not later. The modification time is what the collection kept (an LMS
    bulk download or ``cp -p`` keeps it; a plain copy resets it to the copying time)."""
    if deadline.tzinfo is None:
        raise ValueError(f"deadline must carry a time zone, got {deadline.isoformat()}")
    return max(0.0, round((os.path.getmtime(path) - deadline.timestamp()) / 3600, 2))


@functools.lru_cache(maxsize=4)
def _source(path):
    return read_notebook(path)


def grade_notebook(source, submission, student, timeout=120):
    """Grade one submission (a notebook) against ``source``; returns a ``StudentResult``."""
    tasks = validate_source(source)
    graded, restored = rebuild(source, submission)
    result = StudentResult(student, restored=restored)
    cells = [cell for cell in graded.cells if cell.cell_type == "code"]
    infos = [grading_info(cell) or {} for cell in cells]
    stubs = {info["id"]: strip_solution(cell.source, info["id"])
             for cell, info in zip(_code(source), infos) if info.get("kind") == "answer"}
    context = Context([c.source for c, i in zip(cells, infos) if not i],
                      [c.source for c, i in zip(cells, infos) if i.get("kind") == "check"])

    # Before running anything: what the answers' code does (parsed, not run).
    untouched, forbidden, answer_notes, answers_so_far = set(), {}, {}, []
    for cell, source_cell, info in zip(cells, _code(source), infos):
        if info.get("kind") != "answer":
            continue
        answers_so_far.append((info["id"], cell.source))
        if cell.source == stubs[info["id"]] or is_stub(cell.source):
            untouched.add(info["id"])
        tampering, uses = inspect_answer(cell.source, context, info.get("forbid", []))
        if tampering:
            cell.source = stubs[info["id"]]
            _note(result, answer_notes, info["id"],
                  f"answer cell {info['id']!r} was not run (graded as the empty stub): "
                  + "; ".join(tampering))
        # The task's own functions (as the solution names them), wherever an answer defines them.
        roots = top_level_names(strip_solution(source_cell.source, info["id"]))
        uses += forbidden_through_helpers(roots, answers_so_far, context, info.get("forbid", []), info["id"])
        if uses:
            forbidden[info["id"]] = uses

    # Run it; a cell that kills the kernel or runs out of time is stubbed or left out, and again.
    dropped = {}
    for _ in range(len(cells) + 1):
        kept = [(cell, info) for cell, info in zip(cells, infos) if info.get("id") not in dropped]
        # The notebook's own cells (imports, data) are trusted: a loaded machine must not fail them.
        records = run_cells([cell.source for cell, _ in kept],
                            [timeout if info else max(timeout, OWN_CELL_TIMEOUT) for _, info in kept])
        result.runs += 1
        fatal = next(((cell, info, record) for (cell, info), record in zip(kept, records)
                      if record["status"] == "died"
                      or (record["status"] == "timeout" and info.get("kind") == "answer")), None)
        if fatal is None:
            break
        cell, info, record = fatal
        if info.get("kind") == "answer":
            cell.source = stubs[info["id"]]
            _note(result, answer_notes, info["id"],
                  f"answer cell {info['id']!r}: {record['error']}; graded it as the empty stub")
        elif info.get("kind") == "check":
            dropped[info["id"]] = f"check cell {info['id']!r}: {record['error']}"
            result.events.append(dropped[info["id"]])
        else:
            result.events.append(f"a cell of the notebook (not one of yours) failed: {record['error']}")
            break
    by_id = {info.get("id"): record for (_, info), record in zip(kept, records) if info}
    for (cell, info), record in zip(kept, records):
        if info.get("kind") == "answer" and record["status"] == "error" and info["id"] not in untouched:
            answer_notes.setdefault(info["id"], []).append(
                f"answer cell {info['id']!r} raised {record['error'][:300]}")

    for task in tasks:
        task_result = TaskResult(task, not_attempted=task.answer_id in untouched)
        result.tasks.append(task_result)
        task_result.problems += answer_notes.get(task.answer_id, [])
        record = by_id.get(task.check_id)
        if task.check_id in dropped:
            task_result.problems.append(dropped[task.check_id])
        elif record is None:
            task_result.problems.append("the check did not run: the notebook stopped before it")
        else:
            _score(task_result, record)
        if task.answer_id in forbidden:
            task_result.points = 0.0
            task_result.problems.append(
                f"answer cell {task.answer_id!r} uses what this task asks you to write: "
                + "; ".join(forbidden[task.answer_id]) + " (no points for this task)")
    return result


def _score(task_result, record):
    task = task_result.task
    task_result.got = record["stdout"].strip()
    first = task_result.got.split("\n", 1)[0]
    if record["status"] != "ok":
        task_result.problems.append(f"check cell {task.check_id!r}: {record['error'][:300]}")
    if record["status"] == "ok" and first == task.expected:
        task_result.points = float(task.points)
        return
    printed = parse_summary(task_result.got, task.check_id)
    if printed and record["status"] == "ok" and printed[1] == parse_summary(task.expected, task.check_id)[1]:
        task_result.points = round(task.points * printed[0] / printed[1], 2)
    elif record["status"] == "ok":
        task_result.problems.append("the check cell printed no summary line")


def _note(result, notes, answer_id, text):
    result.events.append(text)
    notes.setdefault(answer_id, []).append(text)


def _code(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else ""
