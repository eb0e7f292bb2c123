"""Run one task notebook under nbval in its own process tree, with a hard wall clock.

Each task gets a fresh ``pytest --nbval`` process (and so a fresh kernel). jupyter_client
starts the kernel in a session of its own, so killing our process group alone would leave
it running (a Numba loop ignores interrupts): at the limit we kill every descendant, each
in its own process group, then the process itself.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile

import psutil

from .checker import DETAILS_ENV
from .nbval_plugin import RESULTS_ENV
from ..files import write_text_atomic
from .notebook import write_notebook

# Hard limit = nbval's cell timeout + this much for kernel start-up, interrupt and shutdown.
GRACE_SECONDS = 30


def run_task(nb, timeout, wall_clock=None):
    """Run ``nb`` with nbval; ``timeout`` is nbval's per-cell limit in seconds.

    ``wall_clock`` (default ``timeout + GRACE_SECONDS``) bounds the whole process tree.
    Returns ``{"cells": {code_index: {"outcome", "stdout", "message"}}, "details": [...],
    "killed": bool, "log": str}``.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    wall_clock = timeout + GRACE_SECONDS if wall_clock is None else wall_clock
    with tempfile.TemporaryDirectory(prefix="mc-grade-") as workdir:
        notebook = os.path.join(workdir, "task.ipynb")
        results = os.path.join(workdir, "results.json")
        details = os.path.join(workdir, "details.jsonl")
        ini = os.path.join(workdir, "pytest.ini")
        write_notebook(nb, notebook)
        # Our own ini: the project's pytest options must not leak into grading.
        write_text_atomic(ini, "[pytest]\naddopts = -p no:cacheprovider\n")
        env = dict(os.environ, **{RESULTS_ENV: results, DETAILS_ENV: details,
                                  "NUMBA_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"})
        command = [sys.executable, "-m", "pytest", "-c", ini, "--rootdir", workdir, "-q",
                   "-p", "minitorch_compress.grading.nbval_plugin", "--nbval",
                   "--nbval-current-env", f"--nbval-cell-timeout={timeout}", notebook]
        log_path = os.path.join(workdir, "pytest.log")
        with open(log_path, "w+", encoding="utf-8", errors="replace") as log:
            process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            killed = False
            try:
                process.wait(timeout=wall_clock)
            except subprocess.TimeoutExpired:
                killed = True
            finally:
                kill_tree(process)
            log.seek(0)
            text = log.read()
        return {"cells": _read_json(results), "details": _read_details(details),
                "killed": killed, "log": text[-4000:]}


def kill_tree(process):
    """Kill ``process`` and all its descendants, including those in other sessions."""
    try:
        tree = psutil.Process(process.pid)
        descendants = tree.children(recursive=True)  # listed first: killing orphans them
    except psutil.NoSuchProcess:
        tree, descendants = None, []
    for proc in descendants + ([tree] if tree else []):
        try:
            group = os.getpgid(proc.pid)
            if group != os.getpgrp():  # never our own group
                os.killpg(group, signal.SIGKILL)
            proc.kill()
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            pass
    process.wait()
    psutil.wait_procs(descendants, timeout=5)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return {int(k): v for k, v in json.load(f).items()}
    except FileNotFoundError:
        return {}


def _read_details(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
