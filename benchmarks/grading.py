"""Time the autograder on a synthetic class: N copies of the released notebook with the source's
solutions in the answer cells (every submission correct), graded as a teacher would.

    python benchmarks/grading.py                                   # 100 x 03_pruning_criteria, 2 jobs
    python benchmarks/grading.py --students 20 --assignment 01_dropout --jobs 2

Prints the wall time for the class, per submission, and the time a class of 100 would take at
that rate, and checks that every submission got full points.
"""
import argparse
import contextlib
import csv
import io
import os
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from minitorch_compress.grading.__main__ import SOURCE_DIR, main as grading_main  # noqa: E402
from minitorch_compress.grading.notebook import (  # noqa: E402
    BEGIN, END, grading_info, read_notebook, release, write_notebook,
)


def solved_submission(source):
    """The released notebook with each answer cell holding the source's solution (markers removed)."""
    solutions = {grading_info(cell)["id"]: "\n".join(line for line in cell.source.split("\n")
                                                     if line.strip() not in (BEGIN, END))
                 for cell in source.cells if grading_info(cell) and grading_info(cell)["kind"] == "answer"}
    student = release(source)
    for cell in student.cells:
        info = grading_info(cell)
        if info and info["kind"] == "answer":
            cell.source = solutions[info["id"]]
    return student


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="03_pruning_criteria")
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    source = read_notebook(os.path.join(SOURCE_DIR, f"{args.assignment}.ipynb"))
    submission = solved_submission(source)
    with tempfile.TemporaryDirectory(prefix="mc-class-") as tmp:
        for k in range(args.students):
            write_notebook(submission, os.path.join(tmp, "class", f"student{k:03d}", f"{args.assignment}.ipynb"))
        out = os.path.join(tmp, "grades.csv")
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # one line per student: not needed here
            grading_main(["grade", os.path.join(tmp, "class"), "--assignment", args.assignment, "--out", out,
                          "--jobs", str(args.jobs)])
        seconds = time.perf_counter() - start
        with open(out, newline="") as f:
            rows = list(csv.reader(f))
    maximum = rows[1][-2]
    full = sum(row[-2] == maximum and not row[-1] for row in rows[2:])
    per = seconds / args.students
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{args.assignment}: {args.students} correct submissions graded in {seconds:.1f} s with "
          f"{args.jobs} jobs on {os.cpu_count()} CPUs (load average {load:.1f} at the end): "
          f"{per:.2f} s per submission, {100 * per / 60:.1f} min per class of 100; "
          f"{full}/{args.students} got full points ({maximum})")
    return 0 if full == args.students else 1


if __name__ == "__main__":
    sys.exit(main())
