"""What the teacher and the learners read: the class CSV and one feedback file per student."""
import csv
import io
import os

from ..files import write_text_atomic


MAX_ROW = "(max points)"


def write_csv(path, checks, results):
    """A header, a row ``(max points)`` with each check's points, then one row per student: points
    per check, total, and an error column (why a submission was not graded; empty if it was).
    Points are rounded to 2 decimals (a share k/n of a task's points)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student"] + [check_id for check_id, _, _ in checks] + ["total", "error"])
    writer.writerow([MAX_ROW] + [_number(points) for _, points, _ in checks]
                    + [_number(sum(points for _, points, _ in checks)), ""])
    for result in results:
        points = {task.check_id: task.points for task in result.tasks}
        writer.writerow([result.student] + [_number(points.get(check_id, 0))
                                            for check_id, _, _ in checks]
                        + [_number(result.total), result.error])
    write_text_atomic(path, buffer.getvalue())


def feedback_text(assignment, checks, result):
    """The feedback for one student: restored cells, then each task with expected vs got."""
    max_total = sum(points for _, points, _ in checks)
    lines = [f"# Feedback for {result.student}: {assignment}", "",
             f"Total: {_number(result.total)} / {_number(max_total)} points", ""]
    if result.error:
        lines += [f"Not graded: {result.error}", ""]
    if result.restored:
        lines += ["Restored before grading (only your answer cells are graded as you wrote them):"]
        lines += [f"- {note}" for note in result.restored] + [""]
    for task in result.tasks:
        verdict = "passed" if task.points == task.max_points else "not passed"
        lines.append(f"## {task.check_id}: {_number(task.points)} / {_number(task.max_points)} "
                     f"points ({verdict})")
        if task.points != task.max_points:
            lines += [f"expected output: {task.expected}",
                      f"got output:      {task.got or '(nothing)'}"]
            lines += [f"- {note}" for note in task.problems]
            for failure in task.failures:
                lines.append(f"- {failure['label']}: expected {failure['expected']}, "
                             f"got {failure['got']}")
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
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, maximum] + [rows[s] for s in sorted(rows)])
    write_text_atomic(path, buffer.getvalue())


def write_feedback(directory, assignment, checks, results):
    """Write ``<directory>/<assignment>/<student>.md`` for every student (one folder per
    assignment, so grading the next one keeps this one's); returns the paths."""
    paths = []
    for result in results:
        path = os.path.join(directory, assignment, f"{result.student}.md")
        write_text_atomic(path, feedback_text(assignment, checks, result))
        paths.append(path)
    return paths


def _number(value):
    """Points without float noise: 4 -> "4", 2.5 -> "2.5", 1/3 of 4 -> "1.33"."""
    return f"{round(float(value), 2):g}"
