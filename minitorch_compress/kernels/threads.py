"""Small kernel calls run on one thread: waking the pool would cost more than sharing the work saves.

Starting a parallel region costs ~3-10 us (10-30 us while another process keeps a core busy; see
the package ``__init__``), and a second thread saves at most half the work. So a call whose work
takes under ``SERIAL_NS`` on one thread (batch-1 layers, small requantizations) runs on the calling
thread alone. Each call site estimates that time from its kernel's cost per unit of work, measured
on one Zen 4 core (the estimates only need to be right within a factor of two).
"""
import numba

SERIAL_NS = 20_000


def run(kernel, single_thread_ns, *args):
    """``kernel(*args)``, on one thread when ``single_thread_ns`` is below ``SERIAL_NS``."""
    if single_thread_ns >= SERIAL_NS:
        return kernel(*args)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(threads)
