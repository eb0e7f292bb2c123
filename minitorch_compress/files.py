"""Writing files atomically: into a temporary file beside the target, then renamed into place, so
that a crash mid-write leaves the previous file intact and readers never see half a file."""
import os
import tempfile


def write_atomic(path, write, binary=False):
    """Call ``write(f)`` on a temporary file opened beside ``path``, then rename it to ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_text_atomic(path, text):
    write_atomic(path, lambda f: f.write(text))
