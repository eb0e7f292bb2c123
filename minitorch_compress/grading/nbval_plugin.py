"""A pytest plugin loaded next to nbval (``-p``) in each graded task's process.

nbval decides whether a cell passed; this plugin writes down what it decided, and what the
cell printed, to the JSON file named by ``MC_GRADING_RESULTS`` after every cell, so the
grader still has the results of finished cells if it has to kill the process.

It also watches the kernel: nbval notices a dead kernel (``os._exit``, a segfault) only at
the cell timeout, so when the kernel process exits mid-cell we record that and end at once.
"""
import json
import os
import threading
import time

import pytest

from ..files import write_text_atomic

RESULTS_ENV = "MC_GRADING_RESULTS"
KERNEL_DIED = "the kernel died while running this cell (os._exit, a crash or out of memory)"
_results = {}


def _save():
    write_text_atomic(os.environ[RESULTS_ENV], json.dumps(_results))


def _stdout_of(item):
    outputs = getattr(item, "test_outputs", None) or []
    return "".join(out.get("text", "") for out in outputs
                   if out.get("output_type") == "stream" and out.get("name") == "stdout")


def _watch_kernel(item, stop):
    kernel = getattr(item.parent, "kernel", None)
    process = getattr(getattr(getattr(kernel, "km", None), "provisioner", None), "process", None)
    if process is None:
        return
    deadline = time.monotonic() + float(item.config.getoption("nbval_cell_timeout"))
    while not stop.wait(0.5):
        if process.poll() is not None:
            if time.monotonic() >= deadline:
                return  # nbval timed the cell out and stopped the kernel itself; it reports the timeout
            _results[str(item.cell_num)] = {"outcome": "failed", "stdout": "", "message": KERNEL_DIED}
            _save()
            os._exit(3)  # nothing left to run: the kernel, and with it this task, is gone


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_kernel, args=(item, stop), daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not hasattr(item, "cell_num"):
        return
    if report.when == "call" or (report.when == "setup" and report.failed):
        _results[str(item.cell_num)] = {
            "outcome": report.outcome,
            "stdout": _stdout_of(item),
            "message": report.longreprtext if report.failed else "",
        }
        _save()
