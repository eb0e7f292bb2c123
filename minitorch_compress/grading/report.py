"""What the teacher and the learners read: the class CSV, gradebook files, one feedback file
per student.

Points: a task earns its points, or the share ``k/n`` of them its check printed, rounded to 2
decimals with Python's ``round``; a total is the sum of its tasks' rounded points, rounded
the same way. CSVs print them without float noise (``4``, ``2.5``, ``1.33``).
"""
import csv
import io
import os

from ..files import write_text_atomic

MAX_ROW = "(max points)"
FORMATS = ("csv", "canvas", "moodle")


def write_csv(path, tasks, results, update=False, late=False):
    """A header (task names), a row ``(max points)``, then one row per student: points per task,
    total, and an ``error`` column: why the submission was not graded (missing, not a notebook),
    or what went wrong while grading it (a crash, a time-out, tampering); empty otherwise.
    ``late=True`` (a deadline was given) adds a last column ``late (hours)``: points are not
    changed, so the late policy stays the teacher's (or the LMS's).

    ``update=True``: keep the other students' rows of the CSV already at ``path`` (re-grading a
    few students); its header and max-points row must be this assignment's."""
    rows = [["student"] + [task.name for task in tasks] + ["total", "error"] + ["late (hours)"] * late,
            [MAX_ROW] + [_number(task.points) for task in tasks]
            + [_number(sum(task.points for task in tasks)), ""] + [""] * late]
    for result in results:
        points = {task.check_id: task.points for task in result.tasks}
        rows.append([result.student] + [_number(points.get(task.check_id, 0)) for task in tasks]
                    + [_number(result.total), result.error or "; ".join(result.events)]
                    + [_number(result.late)] * late)
    if update and os.path.exists(path):
        with open(path, newline="") as f:
            old = list(csv.reader(f))
        if old[:2] != rows[:2]:
            raise ValueError(f"{path} grades another assignment (its header or max points differ)")
        fresh = {row[0] for row in rows[2:]}
        rows = rows[:2] + sorted(rows[2:] + [row for row in old[2:] if row[0] not in fresh])
    _write_rows(path, rows)


def write_gradebook(path, fmt, assignment, tasks, results, roster=None):
    """The total of every student in the columns an LMS gradebook import expects.

    ``canvas``: ``Student, ID, SIS User ID, SIS Login ID, Section, <assignment>`` with a
    ``Points Possible`` row; ``moodle``: ``Email address, <assignment>``. ``roster`` (a CSV path,
    optional) maps each submission folder (column ``student``) to those columns (``name``,
    ``id``, ``sis_user_id``, ``sis_login_id``, ``section``, ``email``); without it the folder
    name is used as name, SIS login and email. Students missing from the roster are an error.
    """
    if fmt not in FORMATS[1:]:
        raise ValueError(f"gradebook format must be one of {FORMATS[1:]}, got {fmt!r}")
    people = read_roster(roster) if roster else {}
    missing = [r.student for r in results if roster and r.student not in people]
    if missing:
        raise ValueError(f"students not in the roster {roster}: {', '.join(missing)}")
    maximum = _number(sum(task.points for task in tasks))
    if fmt == "canvas":
        rows = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", assignment],
                ["Points Possible", "", "", "", "", maximum]]
        for r in results:
            p = people.get(r.student, {})
            rows.append([p.get("name", r.student), p.get("id", ""), p.get("sis_user_id", ""),
                         p.get("sis_login_id", r.student), p.get("section", ""), _number(r.total)])
    else:
        rows = [["Email address", assignment]]
        rows += [[people.get(r.student, {}).get("email", r.student), _number(r.total)] for r in results]
    _write_rows(path, rows)


def read_roster(path):
    """``{student folder: {column: value}}`` from a roster CSV with a ``student`` column."""
    with open(path, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    if not table or "student" not in table[0]:
        raise ValueError(f"roster {path} needs a 'student' column (the submission folder names)")
    return {row["student"]: {k: (v or "") for k, v in row.items()} for row in table}


def feedback_text(assignment, tasks, result):
    """The feedback for one student: what happened, then each task with what its check said."""
    max_total = sum(task.points for task in tasks)
    lines = [f"# Feedback for {result.student}: {assignment}", "",
             f"Total: {_number(result.total)} / {_number(max_total)} points", ""]
    if result.late:
        lines += [f"Handed in {_number(result.late)} hours after the deadline.", ""]
    if result.error:
        lines += [f"Not graded: {result.error}", ""]
    elif result.not_attempted:
        lines += ["Not attempted: every answer cell is still the empty stub.", ""]
    if result.restored:
        lines += ["Restored before grading (only your answer cells are graded as you wrote them):"]
        lines += [f"- {note}" for note in result.restored] + [""]
    if result.events:
        lines += ["What happened while grading:"] + [f"- {event}" for event in result.events] + [""]
    for task_result in result.tasks:
        task = task_result.task
        full = task_result.points == task.points
        untouched = task_result.not_attempted or result.not_attempted
        verdict = ("passed" if full else "not attempted" if untouched else "not passed")
        hidden = " (hidden check)" if task.hidden else ""
        lines.append(f"## {task.name}{hidden}: {_number(task_result.points)} / {_number(task.points)} "
                     f"points ({verdict})")
        if not full and not untouched:
            lines.append(f"expected: {task.expected}")
            lines.append("your check printed:" if task_result.got else "your check printed nothing")
            lines += [f"    {line}" for line in task_result.got.split("\n") if task_result.got]
            lines += [f"- {note}" for note in task_result.problems]
        elif task_result.not_attempted and not full:
            lines.append(f"answer cell {task.answer_id!r} is still the empty stub")
        elif untouched and not full:
            lines.append("its answers are still the empty stubs")
        lines.append("")
    return "\n".join(lines)


def merge_csv(path, shard_paths):
    """Join the CSVs of the shards of one class (``grade --shard K/N``) into one, students sorted.
    The shards must share header and max-points row, and no student may appear twice."""
    header = maximum = None
    rows = {}
    for shard in shard_paths:
        with open(shard, newline="") as f:
            table = list(csv.reader(f))
        if len(table) < 2 or table[1][:1] != [MAX_ROW]:
            raise ValueError(f"{shard} is not a grades CSV (no {MAX_ROW!r} row)")
        if header is None:
            header, maximum = table[0], table[1]
        elif table[:2] != [header, maximum]:
            raise ValueError(f"{shard} grades another assignment (its header or max points differ)")
        for row in table[2:]:
            if row[0] in rows:
                raise ValueError(f"student {row[0]!r} appears in two shards")
            rows[row[0]] = row
    if header is None:
        raise ValueError("no shard CSVs to merge")
    _write_rows(path, [header, maximum] + [rows[s] for s in sorted(rows)])


def write_feedback(directory, assignment, tasks, results):
    """Write ``<directory>/<assignment>/<student>.md`` for every student (one folder per
    assignment, so grading the next one keeps this one's); returns the paths."""
    paths = []
    for result in results:
        path = os.path.join(directory, assignment, f"{result.student}.md")
        write_text_atomic(path, feedback_text(assignment, tasks, result))
        paths.append(path)
    return paths


def _write_rows(path, rows):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def _number(value):
    """Points without float noise: 4 -> "4", 2.5 -> "2.5", 1/3 of 4 -> "1.33"."""
    return f"{round(float(value), 2):g}"
