"""Command line: ``python -m minitorch_compress.grading {release,grade,merge,execute} ...``."""
import argparse
import csv
import glob
import os
import sys
from datetime import datetime
from types import SimpleNamespace

from .execute import execute_source
from .grade import grade_class
from .notebook import read_notebook, release, write_notebook
from .report import FORMATS, merge_csv, write_csv, write_feedback, write_gradebook

# The repository's exercises, wherever the grader is run from.
EXERCISES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "exercises")
SOURCE_DIR = os.path.join(EXERCISES, "source")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minitorch_compress.grading",
                                     description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    rel = commands.add_parser("release", help="write the student notebooks from the sources")
    rel.add_argument("names", nargs="*", help="assignments, e.g. 01_dropout (default: all)")
    rel.add_argument("--source-dir", default=SOURCE_DIR)
    rel.add_argument("--release-dir", default=os.path.join(EXERCISES, "release"))

    exe = commands.add_parser("execute", help="(authors) re-run source notebooks, store outputs")
    exe.add_argument("names", nargs="*", help="assignments (default: all)")
    exe.add_argument("--source-dir", default=SOURCE_DIR)

    grd = commands.add_parser("grade", help="grade a class of submissions")
    grd.add_argument("submissions", help="folder with one sub-folder per student")
    grd.add_argument("--assignment", required=True, help="e.g. 01_dropout")
    grd.add_argument("--out", required=True, help="the CSV to write, e.g. grades.csv")
    grd.add_argument("--feedback-dir", help="default: 'feedback' next to the CSV")
    grd.add_argument("--source-dir", default=SOURCE_DIR,
                     help="where the source notebooks are (default: this repository's exercises/source)")
    grd.add_argument("--timeout", type=float, default=120,
                     help="seconds one cell may run before it is stopped (default 120)")
    grd.add_argument("--jobs", type=int, default=None,
                     help="submissions graded in parallel (default: CPU count)")
    grd.add_argument("--students", nargs="+", metavar="NAME",
                     help="grade only these students and update their rows of an existing --out CSV")
    grd.add_argument("--format", choices=FORMATS, default="csv",
                     help="also write a gradebook import file next to --out: canvas or moodle")
    grd.add_argument("--roster", help="CSV with a 'student' column mapping folders to LMS ids "
                                      "(name, id, sis_user_id, sis_login_id, section, email)")
    grd.add_argument("--deadline", type=_deadline, default=None, metavar="ISO-TIME",
                     help="e.g. 2026-12-10T23:59+01:00 (no offset: this machine's time zone); adds a "
                          "'late (hours)' column from each notebook's modification time, points unchanged")
    grd.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                     help="grade only the K-th of N slices of the class (every N-th student from the K-th)")

    mrg = commands.add_parser("merge", help="join the CSVs of a class graded in shards")
    mrg.add_argument("shards", nargs="+", help="the shards' CSVs")
    mrg.add_argument("--out", required=True, help="the CSV to write")
    args = parser.parse_args(argv)

    if args.command == "grade":
        return _grade(args)
    if args.command == "merge":
        merge_csv(args.out, args.shards)
        print(f"wrote {args.out} from {len(args.shards)} shards")
        return 0
    names = args.names or sorted(os.path.basename(p)[:-len(".ipynb")]
                                 for p in glob.glob(os.path.join(args.source_dir, "*.ipynb")))
    for name in names:
        source = _source_path(args.source_dir, name)
        if args.command == "execute":
            execute_source(source)
            print(f"executed {source}")
        else:
            target = os.path.join(args.release_dir, f"{name}.ipynb")
            write_notebook(release(read_notebook(source)), target)
            print(f"released {target}")
    return 0


def _grade(args):
    source = _source_path(args.source_dir, args.assignment)
    tasks, results = grade_class(source, args.submissions, args.assignment, timeout=args.timeout,
                                 jobs=args.jobs, shard=args.shard, students=args.students,
                                 deadline=args.deadline)
    write_csv(args.out, tasks, results, update=bool(args.students), late=args.deadline is not None)
    feedback_dir = args.feedback_dir or os.path.join(os.path.dirname(os.path.abspath(args.out)),
                                                     "feedback")
    write_feedback(feedback_dir, args.assignment, tasks, results)
    max_total = sum(task.points for task in tasks)
    for result in results:
        why = result.error or "; ".join(result.events)
        late = f", {result.late:g} h late" if result.late else ""
        print(f"{result.student}: {result.total:g}/{max_total:g}{late}" + (f" ({why})" if why else ""))
    print(f"wrote {args.out} and {len(results)} feedback files in {os.path.join(feedback_dir, args.assignment)}")
    if args.format != "csv":
        root, _ = os.path.splitext(args.out)
        gradebook = f"{root}-{args.format}.csv"
        write_gradebook(gradebook, args.format, args.assignment, tasks, _all_results(args.out, tasks),
                        roster=args.roster)
        print(f"wrote {gradebook} for a {args.format} gradebook import")
    return 0


def _all_results(csv_path, tasks):
    """Every student of the (possibly updated) CSV, as (student, total) records."""
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    total = 1 + len(tasks)   # student, a column per task, total (a task may be called "total")
    return [SimpleNamespace(student=row[0], total=float(row[total])) for row in rows[2:]]


def _deadline(text):
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO time such as 2026-12-10T23:59, got {text!r}") from None
    return when if when.tzinfo else when.astimezone()


def _shard(text):
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N, e.g. 2/4, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 1 <= K <= N")
    return k, n


def _source_path(source_dir, name):
    path = os.path.join(source_dir, f"{name}.ipynb")
    if not os.path.isfile(path):
        raise SystemExit(f"unknown assignment {name!r}: {path} does not exist")
    return path


if __name__ == "__main__":
    sys.exit(main())
