"""The timing loop the benchmarks share: every candidate once to warm up, then ``repeats`` rounds
that run each candidate in turn (interleaved, so a change in the machine's load hits all of them),
and the median of each one's times."""
import time

import numpy as np


def interleaved_medians(runs, repeats):
    """{name: median seconds} of the zero-argument callables in ``runs``."""
    for run in runs.values():  # compile, warm up caches and allocators
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}
