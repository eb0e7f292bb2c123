"""Run a notebook's code cells one by one in a fresh kernel, with a time limit per cell.

Each run gets its own kernel (a fresh ``ipykernel`` of this Python) in a throw-away working
directory. A cell ends in one of four ways:

* ``ok`` or ``error`` (it raised; the message is kept);
* ``timeout``: it ran past the limit and was interrupted (a Python loop stops there);
* ``died``: the kernel process ended while it ran (``os._exit``, a crash, out of memory), or it
  ran past the limit and ignored the interrupt (a loop inside Numba), and we killed the kernel.

After ``died`` nothing else runs. The kernel starts in a session of its own, so we kill its
whole process tree, whatever it started, each in its own process group.
"""
import os
import queue
import signal
import subprocess
import tempfile
import time

import ipykernel.kernelspec
import psutil
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

# How long an interrupted cell may take to stop before its kernel is killed.
INTERRUPT_GRACE = 5.0
KERNEL_DIED = "the kernel died (os._exit, a crash or out of memory)"
_POLL = 0.2


class _ThisPython(KernelSpecManager):
    """The ``python3`` kernel of the interpreter running the grader, whatever else is installed."""

    def get_kernel_spec(self, kernel_name):
        return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES,
                                      **ipykernel.kernelspec.get_kernel_dict())


def run_cells(sources, timeout, wall_clock=None):
    """Run the code strings ``sources`` in order in one fresh kernel.

    ``timeout``: seconds each cell may run (a number, or one per cell); ``wall_clock``: seconds
    for the whole run (default: none; when it runs out, the running cell is stopped as at its own
    limit). Returns one record
    ``{"status", "stdout", "error"}`` per cell that ran; after a ``died`` record nothing runs.
    """
    limits = list(timeout) if isinstance(timeout, (list, tuple)) else [timeout] * len(sources)
    if len(limits) != len(sources) or not all(limit > 0 for limit in limits):
        raise ValueError(f"timeout must be positive, one number or one per cell, got {timeout!r}")
    end_of_run = time.monotonic() + wall_clock if wall_clock else float("inf")
    records = []
    with tempfile.TemporaryDirectory(prefix="mc-grade-") as workdir:
        kernel_env = dict(os.environ, NUMBA_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        manager = KernelManager(kernel_name="python3", kernel_spec_manager=_ThisPython())
        # The kernel's own log (not the cells' output, which comes by messages) is not wanted.
        manager.start_kernel(cwd=workdir, env=kernel_env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            for source, limit in zip(sources, limits):
                deadline = min(time.monotonic() + limit, end_of_run)
                record = _run_one(manager, client, source, deadline, limit)
                records.append(record)
                if record["status"] == "died":
                    break
        finally:
            client.stop_channels()
            kill_tree(manager.provisioner.process if manager.provisioner else None)
            manager.cleanup_resources()
    return records


def _run_one(manager, client, source, deadline, timeout):
    msg_id = client.execute(source, store_history=False, allow_stdin=False, stop_on_error=False)
    stdout, error, interrupted = [], "", None
    while True:
        now = time.monotonic()
        if interrupted is None and now >= deadline:
            manager.interrupt_kernel()
            interrupted = now
        if interrupted is not None and now >= interrupted + INTERRUPT_GRACE:
            kill_tree(manager.provisioner.process)
            return {"status": "died", "stdout": "".join(stdout),
                    "error": f"ran past the {timeout:g} s limit and did not stop when interrupted: "
                             "the kernel was killed"}
        try:
            msg = client.get_iopub_msg(timeout=_POLL)
        except queue.Empty:
            if not manager.is_alive():
                return {"status": "died", "stdout": "".join(stdout), "error": KERNEL_DIED}
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content.get("name") == "stdout":
            stdout.append(content.get("text", ""))
        elif kind == "error":
            error = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}".strip()
        elif kind == "status" and content.get("execution_state") == "idle":
            if interrupted is not None:
                return {"status": "timeout", "stdout": "".join(stdout),
                        "error": f"ran past the {timeout:g} s limit and was interrupted"}
            return {"status": "error" if error else "ok", "stdout": "".join(stdout), "error": error}


def run_task(nb, timeout, wall_clock=None):
    """Run every code cell of ``nb`` (a notebook) in a fresh kernel, as nbval would judge it.

    Returns ``{"cells": {code_index: {"outcome", "stdout", "message"}}, "killed": bool}``;
    ``outcome`` is ``"passed"`` when the cell ran without error and printed the stdout stored
    in ``nb`` (if it stores any output), else ``"failed"``.
    """
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    records = run_cells([cell.source for cell in code], timeout, wall_clock)
    cells = {}
    for index, (cell, record) in enumerate(zip(code, records)):
        stored = "".join(out.get("text", "") for out in cell.get("outputs", [])
                         if out.get("output_type") == "stream" and out.get("name") == "stdout")
        same = record["stdout"] == stored or not cell.get("outputs")
        cells[index] = {"outcome": "passed" if record["status"] == "ok" and same else "failed",
                        "stdout": record["stdout"], "message": record["error"]}
    killed = len(records) < len(code) or any(r["status"] == "died" for r in records)
    return {"cells": cells, "killed": killed}


def kill_tree(process):
    """Kill ``process`` (a Popen, or None) and all its descendants, also those in other sessions."""
    if process is None:
        return
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
    try:
        process.wait(timeout=10)
    except Exception:  # already reaped
        pass
    psutil.wait_procs(descendants, timeout=5)
