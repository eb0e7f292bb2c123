"""Reusable scratch buffers, so that packing does not allocate (and page-fault) on every call."""
import threading

import numpy as np

_local = threading.local()


def scratch(name, size, dtype):
    """A 1-D array of ``size`` elements, reused between calls with the same ``name`` on this thread.

    Its contents are undefined; the caller overwrites what it reads. A kernel may use each name
    once per call (two live buffers need two names).
    """
    buffers = _local.__dict__.setdefault("buffers", {})
    buf = buffers.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(max(size, 1), dtype)
        buffers[name] = buf
    return buf[:size]
