"""Time our Numba kernels against OpenBLAS (NumPy), SciPy and, if installed, PyTorch, in one run.

    NUMBA_CACHE_DIR=.numba_cache python benchmarks/kernels.py            # the table (~2 min)
    NUMBA_CACHE_DIR=.numba_cache python benchmarks/kernels.py --only int8   # one table
    NUMBA_CACHE_DIR=.numba_cache python benchmarks/kernels.py --threads  # thread settings

Ratios are "speed relative to OpenBLAS float32" (its time / ours: above 1 is faster) and are
measured in the same run, because on a shared machine absolute times move by 15% or more.
Each figure is the median of repeated calls after a warm-up call (which compiles).
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# before NumPy: the package sets the thread settings, which OpenBLAS reads when it loads (imported
# after NumPy, its threads kept spinning ~100 ms after each call and halved our kernels' speed)
from minitorch_compress import kernels as K  # noqa: E402
from minitorch_compress.kernels import microkernel  # noqa: E402
from minitorch_compress.sparse import CSRMatrix  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

try:
    import torch
except ImportError:
    torch = None
import scipy.sparse as scipy_sparse  # noqa: E402
from timing import median_time, median_times  # noqa: E402

SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def row(label, seconds, reference, flops=None):
    rate = f"{flops / seconds / 1e9:8.1f} GFLOP/s" if flops else " " * 16
    print(f"  {label:<44} {seconds * 1e3:9.3f} ms {rate} {reference / seconds:7.2f}x")


@njit(cache=True)
def _tiles(a, a_rs, b, kc, c, init, reps):
    """``reps`` passes over MC rows of A, one micro-kernel call (MR rows x one B strip) at a time."""
    for _ in range(reps):
        for s in range(microkernel.MC // microkernel.MR):
            microkernel.tile(a, s * microkernel.MR * a_rs, a_rs, b, 0, kc, c, 0, microkernel.NR, init, 0, 0)


def tile_rate(dtype, reference, reference_ops, kc=256):
    """Operations a second (two per multiply-add) of the micro-kernel alone, for B of ``dtype``:
    MC rows of A and one B strip of ``kc`` steps, all in cache, and C a scratch tile. A whole
    product adds packing, cache misses and stores of C to this, so its rate is a ceiling.
    Returns it and its ratio to ``reference()`` (``reference_ops`` operations), timed alternately."""
    rng = np.random.default_rng(0)
    values = {np.float32: 1, np.int16: 2, np.int8: 4}[dtype]    # k-values in a 4-byte lane
    a_rs, nr = kc + 16, microkernel.NR
    if dtype == np.float32:
        a, b = rng.standard_normal(microkernel.MC * a_rs).astype(np.float32), rng.standard_normal(kc * nr).astype(np.float32)
        c = np.zeros(microkernel.MR * nr, np.float32)
    else:
        a = rng.integers(0, 128, microkernel.MC * a_rs * values).astype(np.uint8 if dtype == np.int8 else np.int16)
        b, c = rng.integers(-128, 128, kc * nr * values).astype(dtype), np.zeros(microkernel.MR * nr, np.int32)
    init = np.zeros(nr, c.dtype)
    reps = max(1, int(2e8 / (microkernel.MC * kc * nr * values)))
    ref, seconds = median_times(reference, lambda: _tiles(a, a_rs, b, kc, c, init, reps))
    rate = 2 * reps * microkernel.MC * kc * nr * values / seconds
    return rate, rate / (reference_ops / ref)


def bench_dense(rng):
    print("dense float32 matmul (ratio: OpenBLAS time / this time)")
    for m, k, n in [(1024, 1024, 1024), (128, 784, 256)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        flops = 2 * m * n * k
        ref, ours = median_times(lambda: a @ b, lambda: K.matmul(a, b))
        print(f" {m}x{k}x{n}")
        row("OpenBLAS (NumPy)", ref, ref, flops)
        row("ours: kernels.matmul", ours, ref, flops)
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            row("PyTorch", median_time(lambda: ta @ tb), ref, flops)


def bench_csr(rng):
    print("CSR x dense: y = x @ W.T, W 1024x1024 pruned at random, x 256x1024 (ratio vs dense OpenBLAS)")
    x = rng.standard_normal((256, 1024)).astype(np.float32)
    w_full = rng.standard_normal((1024, 1024)).astype(np.float32)
    break_even = None
    for sparsity in SPARSITIES:
        w = np.where(rng.random(w_full.shape) < sparsity, 0, w_full).astype(np.float32)
        ours = CSRMatrix.from_dense(w)
        ws = scipy_sparse.csr_matrix(w)
        # ours includes the copy of x.T, as SparseLinear pays it; dense timed again alongside
        t_dense, t_ours, t_scipy = median_times(lambda: x @ w_full.T, lambda: (ours @ x.T).T, lambda: (ws @ x.T).T)
        print(f" sparsity {sparsity:.2f} (nnz {ours.nnz}; dense OpenBLAS alongside: {t_dense * 1e3:.3f} ms)")
        row("ours: (W_csr @ x.T).T", t_ours, t_dense)
        row("SciPy csr", t_scipy, t_dense)
        print(f"  {'ours vs SciPy':<44} {t_scipy / t_ours:7.2f}x")
        if torch is not None:
            wt, xt = torch.from_numpy(w).to_sparse_csr(), torch.from_numpy(x)
            row("PyTorch sparse_csr", median_time(lambda: (wt @ xt.T).T), t_dense)
        if break_even is None and t_ours <= t_dense:
            break_even = sparsity
    print(f" break-even with dense OpenBLAS: {'none up to 0.95' if break_even is None else f'at sparsity {break_even:.2f}'}"
          f" (the lowest tested sparsity at which ours is at least as fast)")


def bench_int8(rng):
    n = 1024
    print(f"int8 x int8 -> int32, {n}^3, ratio vs OpenBLAS float32 of the same shape; activation codes 0..127 "
          f"(reduce_range, the quantized layers' recipe), weight codes -128..127")
    a = rng.integers(0, 128, (n, n), dtype=np.int8)
    a_full = rng.integers(-128, 128, (n, n), dtype=np.int8)
    w = rng.integers(-128, 128, (n, n), dtype=np.int8)
    af, wtf = a.astype(np.float32), np.ascontiguousarray(w.T.astype(np.float32))
    flops = 2 * n ** 3
    packed = K.pack_int8_weight(w)
    byte_kernel = "vnni" if K.has_vnni() else "avx2" if K.has_maddubs() else None
    print(f"  packing the weight once: {median_time(lambda: K.pack_int8_weight(w)) * 1e3:.2f} ms"
          f" (4-byte layout for: {byte_kernel})")
    fns = {"OpenBLAS float32 (NumPy)": lambda: af @ wtf,
           "ours portable (pre-packed)": lambda: K.int8_linear(a, packed, kernel="portable")}
    if byte_kernel:
        fns[f"ours {byte_kernel} (pre-packed)"] = lambda: K.int8_linear(a, packed, kernel=byte_kernel)
    b = np.ascontiguousarray(w.T)    # as a learner's `a @ b` has it: (K, N), C-contiguous
    fns["ours int8_matmul(a, b) (packs b per call)"] = lambda: K.int8_matmul(a, b)
    fns["ours int8_matmul(a, w.T), b a transposed view"] = lambda: K.int8_matmul(a, w.T)
    fns["ours int8_matmul, a in -128..127"] = lambda: K.int8_matmul(a_full, b)
    times = median_times(*fns.values())
    ref = times[0]
    for label, t in zip(fns, times):
        row(label, t, ref, flops)
    # the micro-kernels alone bound what a whole product can reach against OpenBLAS's
    print("  micro-kernels alone, in cache (the ceilings of whole products; OpenBLAS float32 timed alongside):")
    for label, dtype in [("float32", np.float32), ("portable int16 pairs", np.int16)] + (
            [(f"{byte_kernel} bytes", np.int8)] if byte_kernel else []):
        rate, ratio = tile_rate(dtype, lambda: af @ wtf, flops)
        print(f"   {label:<43} {rate / 1e9:8.1f} GOP/s {ratio:19.2f}x")
    # NumPy has no integer BLAS: time 64 rows once and scale up (the full product takes ~10 s)
    a32, w32 = a[:64].astype(np.int32), np.ascontiguousarray(w.T.astype(np.int32))
    t = time.perf_counter()
    a32 @ w32
    row("NumPy int32 matmul (64 rows, x16)", (time.perf_counter() - t) * n / 64, ref, flops)
    if torch is not None and hasattr(torch, "_int_mm"):
        ta, tw = torch.from_numpy(a), torch.from_numpy(np.ascontiguousarray(w.T))
        row("PyTorch torch._int_mm (host CPU, not the build's)", median_time(lambda: torch._int_mm(ta, tw)), ref, flops)
    print("  instructions in the compiled kernels:", {k: {m: c for m, c in K.instruction_counts(k).items() if c}
                                                       for k in ["dense", "portable"] + ([byte_kernel] if byte_kernel else [])})


# ----- thread settings: OpenBLAS and Numba-parallel calls alternating in one process ------
SETTINGS = {
    "library defaults (omp, GOMP_SPINCOUNT=300000)": {
        "NUMBA_THREADING_LAYER": "omp", "GOMP_SPINCOUNT": "300000", "OPENBLAS_THREAD_TIMEOUT": "28"},
    "workqueue + OPENBLAS_THREAD_TIMEOUT=4": {"NUMBA_THREADING_LAYER": "workqueue", "OPENBLAS_THREAD_TIMEOUT": "4"},
    "omp + OMP_WAIT_POLICY=passive + OPENBLAS_THREAD_TIMEOUT=4": {
        "NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "passive", "GOMP_SPINCOUNT": "0",
        "OPENBLAS_THREAD_TIMEOUT": "4"},
}
for _spin in ("1000", "3000", "10000"):
    SETTINGS[f"omp + GOMP_SPINCOUNT={_spin} + OPENBLAS_THREAD_TIMEOUT=4"] = {
        "NUMBA_THREADING_LAYER": "omp", "GOMP_SPINCOUNT": _spin, "OPENBLAS_THREAD_TIMEOUT": "4"}
_CHOSEN = ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY",
           "OPENBLAS_THREAD_TIMEOUT")
GAP = 20e-6     # Python work between two kernel calls in a forward pass (a layer's checks, a ReLU)


def alternation():
    """Cost of one (empty) parallel region started ``GAP`` after the last one ended, then median
    times of an MLP-sized OpenBLAS product and our kernel, alone and alternating."""
    from minitorch_compress.kernels.quantize import _quantize
    tiny = np.zeros(2, np.float32), np.zeros(2, np.uint8)

    def region():
        _quantize(tiny[0], np.float32(1), np.float32(0), np.float32(0), np.float32(255), tiny[1])

    costs = []
    for _ in range(200):
        region()
        t = time.perf_counter()
        while time.perf_counter() - t < GAP:
            pass
        t = time.perf_counter()
        region()
        costs.append(time.perf_counter() - t)
    region = float(np.median(costs))
    rng = np.random.default_rng(0)
    a = rng.standard_normal((128, 784)).astype(np.float32)
    b = rng.standard_normal((784, 256)).astype(np.float32)
    blas, ours = (lambda: a @ b), (lambda: K.matmul(a, b))
    alone = median_time(blas, 30), median_time(ours, 30)
    mixed = [[], []]
    for _ in range(60):
        for i, fn in enumerate((blas, ours)):
            t = time.perf_counter()
            fn()
            mixed[i].append(time.perf_counter() - t)
    from numba import threading_layer
    print(f"{threading_layer()} {region} {alone[0]} {alone[1]} {np.median(mixed[0])} {np.median(mixed[1])}")


def bench_threads():
    print(f"thread settings: one empty Numba parallel region started {GAP * 1e6:.0f} us after the last (us); "
          f"128x784x256 float32 (ms) alone, then alternating OpenBLAS / ours")
    print(f"  {'setting':<60} {'layer':<10} {'region':>7} {'BLAS':>7} {'ours':>7} {'BLAS alt':>8} {'ours alt':>8}")
    for name, env in {"package defaults (this checkout)": {}, **SETTINGS}.items():
        full_env = {k: v for k, v in os.environ.items() if k not in _CHOSEN or not env}
        full_env.update(env)
        out = subprocess.run([sys.executable, __file__, "--alternation"], env=full_env, capture_output=True,
                             text=True, check=True).stdout.split()
        layer, region, times = out[0], float(out[1]) * 1e6, [float(v) * 1e3 for v in out[2:]]
        print(f"  {name:<60} {layer:<10} {region:7.1f} " + " ".join(f"{t:8.3f}" for t in times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", action="store_true", help="compare thread settings in subprocesses")
    parser.add_argument("--only", choices=("dense", "csr", "int8"), action="append",
                        help="run only these tables (repeatable); default: all three")
    parser.add_argument("--alternation", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.alternation:
        return alternation()
    if args.threads:
        return bench_threads()
    from numba import threading_layer
    from threadpoolctl import threadpool_info
    K.matmul(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))   # starts Numba's pool
    blas = [f"{p['internal_api']} {p['version']} ({p.get('architecture')}, {p['num_threads']} threads)"
            for p in threadpool_info() if p["user_api"] == "blas"]
    print(f"BLAS: {', '.join(blas)}; Numba threading layer: {threading_layer()}; "
          f"VNNI: {K.has_vnni()}; AVX2 int8: {K.has_maddubs() and not K.has_vnni()}; PyTorch: {torch.__version__ if torch else 'not installed'}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    rng = np.random.default_rng(0)
    for name, bench in (("dense", bench_dense), ("csr", bench_csr), ("int8", bench_int8)):
        if args.only is None or name in args.only:
            bench(rng)


if __name__ == "__main__":
    main()
