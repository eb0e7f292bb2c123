"""Run a source notebook top to bottom and store its outputs (an author's tool).

Check cells must then show ``n/n passed``: a source notebook whose own solutions fail
its checks is refused before anything is written.
"""
import os

from nbclient import NotebookClient

from .notebook import read_notebook, validate_source, write_notebook


def execute_source(path, timeout=600):
    """Execute the source notebook at ``path`` in a fresh ``python3`` kernel, in place."""
    nb = read_notebook(path)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    # Single-threaded Numba, as in grading: the same cell prints the same thing everywhere.
    client.execute(env=dict(os.environ, NUMBA_NUM_THREADS="1"))
    validate_source(nb)  # raises if a check printed less than n/n
    write_notebook(nb, path)
    return nb
