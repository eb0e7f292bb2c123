"""Reusable scratch buffers, so that packing does not allocate (and page-fault) on every call, and
arrays that start on a cache line."""
import threading

import numpy as np

_local = threading.local()
# bytes: a cache line. NumPy's large arrays start 16 bytes past one (malloc's header), so a vector
# load can straddle two lines, and a 128-byte row of a CSR block three: with the block aligned the
# CSR product at 90% sparsity ran 28% faster on AVX2 (benchmarks/README.md)
ALIGN = 64


def aligned_empty(shape, dtype):
    """``np.empty(shape, dtype)`` whose data starts on an ``ALIGN``-byte boundary (a view into a
    slightly larger buffer)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(size + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + size].view(dtype).reshape(shape)


def scratch(name, size, dtype):
    """A 1-D array of ``size`` elements, reused between calls with the same ``name`` on this thread,
    starting on a cache line (``aligned_empty``).

    Its contents are undefined; the caller overwrites what it reads. A kernel may use each name
    once per call (two live buffers need two names).
    """
    buffers = _local.__dict__.setdefault("buffers", {})
    buf = buffers.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = aligned_empty(max(size, 1), dtype)
        buffers[name] = buf
    return buf[:size]
