"""Environments that make this machine compute like another one, for the determinism tests.

Numba compiles for the CPU named by ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES``; NumPy skips the SIMD
paths listed in ``NPY_DISABLE_CPU_FEATURES``; OpenBLAS uses the kernels of ``OPENBLAS_CORETYPE``;
thread counts come from ``NUMBA_NUM_THREADS`` and friends. Each takes effect when the library
loads, so every configuration runs in a fresh process.
"""
import platform

X86 = platform.machine().lower() in ("x86_64", "amd64")
HASWELL = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fsgsbase,+fxsr,+lzcnt,+mmx,+movbe,+pclmul,"
           "+popcnt,+rdrnd,+sahf,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave,+xsaveopt")


def threads(n):
    return {name: str(n) for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


CONFIGURATIONS = {
    "1 thread": threads(1),
    "4 threads": threads(4),
    "generic CPU (no SIMD, no FMA)": {"NUMBA_CPU_NAME": "generic"},
    "another OpenBLAS kernel": {"OPENBLAS_CORETYPE": "Sandybridge" if X86 else "ARMV8"},
}
if X86:
    CONFIGURATIONS["AVX2 laptop (Haswell)"] = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": HASWELL}
    CONFIGURATIONS["NumPy without AVX2 and AVX-512"] = {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4"}


def host_has(feature):
    try:
        with open("/proc/cpuinfo") as f:
            return feature in f.read().split()
    except OSError:
        return False


def foreign_lane():
    """CI's second run of the lessons: as many differences from this machine as stay fast.

    NumPy at its baseline SIMD level, another OpenBLAS kernel, 1 thread instead of 2, and on an
    AVX-512 host the AVX2 code a learner's laptop runs (6 x 16 tiles, no VNNI). A generic target
    would be slowest of all (no FMA instruction: every multiply-add a library call), so it is left
    to the determinism test.
    """
    env = dict(threads(1), OPENBLAS_CORETYPE=CONFIGURATIONS["another OpenBLAS kernel"]["OPENBLAS_CORETYPE"])
    if X86:
        env.update(CONFIGURATIONS["NumPy without AVX2 and AVX-512"])
        if host_has("avx512f"):
            env.update(CONFIGURATIONS["AVX2 laptop (Haswell)"])
    return env


if __name__ == "__main__":   # shell exports for .ci/run
    for name, value in foreign_lane().items():
        print(f"export {name}='{value}'")
