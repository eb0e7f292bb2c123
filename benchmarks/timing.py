"""The timing loop the benchmarks share."""
import time

import numpy as np


def median_times(*fns, min_repeats=7, budget=1.0):
    """Median seconds of each ``fn()``, after a warm-up call of each (which compiles).

    The functions are called in turn, round after round, until ``budget`` seconds are spent (and
    at least ``min_repeats`` rounds), so that load from other processes falls on all of them alike
    and their ratios stay comparable.
    """
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < min_repeats or (time.perf_counter() - start < budget and len(times[0]) < 200):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [float(np.median(ts)) for ts in times]


def median_time(fn, min_repeats=7, budget=0.5):
    return median_times(fn, min_repeats=min_repeats, budget=budget)[0]
