"""Exact int8 x int8 -> int32 matrix products, and the packed weight that quantized layers keep.

Layout is ``Linear``'s: ``C = X @ W.T`` with X (M, K) activations and W (N, K) weights. W is
packed once into strips of ``NR`` output columns whose k-steps lie side by side (``pack_strips``;
``int8_matmul`` packs its b, which is W.T, straight from b's rows: ``pack_row_groups``), and the
product runs as ``microkernel.blocked_product`` with one of three micro-kernels:

- VNNI (``vnni.py``), where the CPU has AVX512-VNNI: a 4-byte lane holds 4 k-values, uint8 in X
  (int8 ``x + 128``, a bit flip, undone by adding ``-128 * sum_k W[n, k]`` per column) and int8
  in W; one ``vpdpbusd`` does 64 multiply-adds.
- AVX2 (``maddubs.py``), where the CPU has AVX2 but not VNNI: the same layout, ``vpmaddubsw``
  then ``vpmaddwd``, 32 multiply-adds per 256 bits. Its int16 pair sums saturate, so it runs only
  when the codes fit (``maddubs.fits``: 7-bit activations with any int8 weight, PyTorch's
  ``reduce_range`` recipe, or 8-bit activations with 7-bit weights), checked on each call: X is
  shifted to start at 0 (int8 X by ``-min(X)``) and its largest code bounds the pair sums.
- portable, everywhere else and for codes that do not fit: a lane holds 2 k-values as int16 (X
  and W widened), and the multiply-add of pairs is generic LLVM IR that each CPU lowers to its own
  instructions (``vpdpwssd`` with AVX512-VNNI, ``vpmaddwd`` with AVX2; checked by
  ``instruction_counts``): 32 multiply-adds per 512 bits, twice float32's 16.

All three are exact: int32 lanes wrap, and with K <= 2**16 every true result fits in int32
(|x*w| <= 2**15), so the wrapped sum equals it; the same integers on every CPU, whichever kernel
runs. The per-column offset of the micro-kernels also carries the input's zero point:
``-(shift + x_zero_point) * sum_k W[n, k]``.
"""
import numpy as np
from llvmlite import ir
from numba import config, njit, prange, types
from numba.extending import intrinsic

from ..validation import is_int
from . import idioms, maddubs, threads, vnni
from .microkernel import LANES, MR, NR, blocked_product, reads_in_place, row_buffer, tail_rows
from .quantize import CODE_RANGES
from .transpose import pack_transposed_strips
from .validate import check_inner, check_matrix
from .workspace import aligned_empty

MAX_K = 2 ** 16
KB = 256        # k-steps per block: 1 KiB of 8 activation rows, 32 KiB of a weight strip
NS_PER_MAC = 0.007    # one thread, VNNI; the other kernels are slower, which only errs towards parallel
NS_PER_SUMMED = 0.045 # one thread, per element of W in ``row_sums`` and ``column_sums``
NS_PER_INTERLEAVED = 0.15  # one thread, per element of b in ``pack_row_groups``
PACK_STEPS = 16       # k-steps of every strip per task in ``pack_row_groups``
SUM_COLUMNS = 1024    # columns per task in ``column_sums``: whole 1 KiB runs of each row
# the kernel of the 4-byte layout on this CPU, if any
BYTE_KERNEL = "vnni" if vnni.has_vnni() else "avx2" if maddubs.has_maddubs() else None
KERNELS = (None, "vnni", "avx2", "portable")


@njit(cache=True, parallel=True)
def pack_strips(w, out, group, nr):
    """out[s, g, j, b] = w[s*nr + j, group*g + b], flat, zero past the edges: W (N, K) in strips of
    ``nr`` columns (the tile's NR), each k-step holding ``group`` consecutive k-values of the
    strip's columns side by side.

    ``out`` is int8 with group 4 (VNNI, AVX2) or int16 with group 2 (portable): 4 bytes a lane. It is
    written in order; the rows of W that a strip reads stay in L1.
    """
    n, k = w.shape
    steps = (k + group - 1) // group
    for s in prange(out.size // (steps * nr * group)):
        base = s * steps * nr * group
        for g in range(steps):
            for j in range(nr):
                row = s * nr + j
                dst = base + (g * nr + j) * group
                for b in range(group):
                    kk = g * group + b
                    out[dst + b] = w[row, kk] if row < n and kk < k else 0


@njit(cache=True, parallel=True)
def row_sums(w, out):
    """out[n] = sum_k w[n, k] for an int8 W (N, K), summed in int64. NumPy's
    ``w.sum(axis=1, dtype=np.int64)`` widens element by element and took 0.3 ms for 1024 x 1024,
    about 2% of an ``int8_matmul`` that packs W on each call; this loop vectorises."""
    for n in prange(w.shape[0]):
        total = np.int64(0)
        for k in range(w.shape[1]):
            total += np.int64(w[n, k])     # widened first: int8 + int8 would wrap in NumPy
        out[n] = total


@njit(cache=True, parallel=True)
def column_sums(b, out):
    """out[n] = sum_k b[k, n] for an int8 b (K, N): the row sums of W = b.T, read along b's rows.
    Summed in int32, exact for K <= 2**16 (|sum| <= 2**23), which vectorises where int64 did not."""
    k, n = b.shape
    for block in prange(-(-n // SUM_COLUMNS)):
        lo, hi = block * SUM_COLUMNS, min(block * SUM_COLUMNS + SUM_COLUMNS, n)
        acc = np.zeros(SUM_COLUMNS, np.int32)
        for kk in range(k):
            row = b[kk, lo:hi]
            for c in range(hi - lo):
                acc[c] += row[c]
        for c in range(hi - lo):
            out[lo + c] = acc[c]


def _interleave(group):
    """An intrinsic ``interleave(b, off, stride, out, o_off)``: 16 int32 lanes of ``out`` from
    ``o_off``, lane j holding the ``group`` int8 values ``b.flat[off + i*stride + j]`` (i < group)
    side by side, the first lowest: as bytes (group 4) or widened to int16 (group 2). Generic LLVM
    IR shuffles, which x86 lowers to ``punpcklbw``/``punpcklwd`` and the like."""
    @intrinsic
    def interleave(typingctx, b, off, stride, out, o_off):
        if not (isinstance(b, types.Array) and b.dtype == types.int8 and b.layout == "C"
                and isinstance(out, types.Array) and out.dtype == types.int32 and out.layout == "C"):
            return None     # flat offsets: C-contiguous arrays only
        sig = types.void(b, types.intp, types.intp, out, types.intp)

        def codegen(context, builder, signature, args):
            b_arr, off, stride, out_arr, o_off = args
            byte = ir.IntType(8)
            b_ptr = idioms.data_pointer(context, builder, signature.args[0], b_arr, byte)
            o_ptr = idioms.data_pointer(context, builder, signature.args[3], out_arr, idioms.I32)
            rows = [builder.load(idioms.vector_at(builder, b_ptr, builder.add(off, builder.mul(stride, ir.Constant(
                off.type, i))), ir.VectorType(byte, LANES)), align=1) for i in range(group)]
            if group == 2:
                rows = [builder.sext(row, ir.VectorType(ir.IntType(16), LANES)) for row in rows]
            else:   # rows 0-1 and 2-3 joined: the last shuffle takes two vectors
                rows = [builder.shuffle_vector(rows[i], rows[i + 1], ir.Constant(ir.VectorType(idioms.I32, 2 * LANES),
                                                                                 list(range(2 * LANES))))
                        for i in (0, 2)]
            mask = [i * LANES + j for j in range(LANES) for i in range(group)]
            lanes = builder.shuffle_vector(rows[0], rows[1], ir.Constant(ir.VectorType(idioms.I32, len(mask)), mask))
            idioms.store(builder, builder.bitcast(lanes, ir.VectorType(idioms.I32, LANES)), o_ptr, o_off)
            return context.get_dummy_value()

        return sig, codegen

    return interleave


def _interleave_python(group):
    """The same in NumPy: what runs with ``NUMBA_DISABLE_JIT=1``."""
    def interleave(b, off, stride, out, o_off):
        flat = b.reshape(-1)
        columns = np.stack([flat[off + i * stride:off + i * stride + LANES] for i in range(group)], axis=1)
        out.reshape(-1)[o_off:o_off + LANES] = columns.astype(np.int8 if group == 4 else np.int16).view(np.int32)[:, 0]

    return interleave


if config.DISABLE_JIT:
    _quads, _pairs = _interleave_python(4), _interleave_python(2)
else:
    _quads, _pairs = _interleave(4), _interleave(2)


@njit(cache=True, parallel=True)
def pack_row_groups(b, out, group):
    """out[s, g, j] = W[s*nr + j, group*g + i] for i < group, side by side in one int32 lane, for
    W = b.T: ``pack_strips``'s layout (int8 quads, group 4, or int16 pairs, group 2), read along
    the rows of a C-contiguous b (K, N) rather than from a transposed copy of it, which NumPy makes
    element by element (benchmarks/README.md). ``out`` is int32 (strips, steps, nr); zero
    past the edges. A task packs ``PACK_STEPS`` k-steps of every whole strip, 16 lanes at a time;
    the edges go value by value."""
    k, n = b.shape
    strips, steps, nr = out.shape
    full_strips, full_steps = n // nr, k // group
    for block in prange(-(-full_steps // PACK_STEPS)):
        for s in range(full_strips):
            for g in range(block * PACK_STEPS, min(block * PACK_STEPS + PACK_STEPS, full_steps)):
                for j in range(0, nr, LANES):
                    if group == 4:
                        _quads(b, g * group * n + s * nr + j, n, out, (s * steps + g) * nr + j)
                    else:
                        _pairs(b, g * group * n + s * nr + j, n, out, (s * steps + g) * nr + j)
    for s in range(strips):
        for g in range(0 if s >= full_strips else full_steps, steps):
            for j in range(nr):
                out[s, g, j] = _edge_lane(b, g * group, s * nr + j, group)


@njit(cache=True, inline="always")
def _edge_lane(b, k0, col, group):
    """The lane of ``pack_row_groups`` holding b[k0:k0 + group, col], zeros past b's edges; the
    last value keeps its sign, so the lane fits int32."""
    k, n = b.shape
    bits = 32 // group
    lane = 0
    for i in range(group):
        if k0 + i < k and col < n:
            value = np.int64(b[k0 + i, col])
            lane += (value if i == group - 1 else value & ((1 << bits) - 1)) << (bits * i)
    return lane


class PackedInt8Weight:
    """An int8 weight W (out_features, in_features) prepared once for ``int8_linear``.

    Attributes: ``shape`` (N, K); ``weight`` the int8 W (C-contiguous, or the transposed view of
    the rows it was packed from, as ``int8_matmul``'s ``b.T``); ``quads`` W packed in 4-byte lanes
    for the VNNI or AVX2 kernel, or None where the CPU has neither; ``row_sums`` int64
    ``W.sum(axis=1)`` (zero-point corrections use it); ``max_abs`` the largest |W| (whether the
    AVX2 kernel's pair sums fit).
    The portable kernel's layout (``portable``, int16) is packed on first use, if not given.
    """

    def __init__(self, weight, quads, row_sums, max_abs=None, portable=None):
        self.weight, self.quads, self.row_sums = weight, quads, row_sums
        self.shape = weight.shape
        self.max_abs = _max_abs(weight) if max_abs is None else max_abs
        self._portable = portable
        self._offsets = {}

    @property
    def portable(self):
        """W packed in int16 pairs for the portable kernel (2 bytes a weight), made once."""
        if self._portable is None:
            self._portable = _pack(self.weight, np.int16)
        return self._portable

    def offset(self, shift):
        """int32 ``-shift * row_sums`` (wrapping), the per-column term the kernels add; a layer
        sees one or two shifts (its input zero point), so each is computed once."""
        offset = self._offsets.get(shift)
        if offset is None:
            offset = self._offsets[shift] = (self.row_sums * -shift).astype(np.int32)
        return offset

    def __repr__(self):
        return f"PackedInt8Weight(shape={self.shape}, quads={self.quads is not None})"


def _pack(w, dtype):
    """W in the strip layout of ``pack_strips`` with 4-byte lanes of ``dtype`` (int8 or int16).

    With K a multiple of the lane's values that layout is a transpose of W's rows (widened to int16
    for the portable kernel) as int32 lanes, done in registers (``transpose.pack_transposed_strips``),
    many times faster than element by element (benchmarks/README.md)."""
    group = 4 // np.dtype(dtype).itemsize
    n, k = w.shape
    out = aligned_empty(-(-n // NR) * NR * -(-k // group) * group, dtype)
    if out.size and k % group == 0:
        lanes = np.ascontiguousarray(w, dtype).view(np.int32)
        pack_transposed_strips(lanes, out.view(np.int32).reshape(-1, k // group, NR))
    elif out.size:
        pack_strips(w, out, group, NR)
    return out


def pack_int8_weight(weight, quads=None):
    """Pack an int8 weight (N, K) — ndarray or Tensor — for ``int8_linear``; do it once per weight.

    ``quads=None`` packs the 4-byte layout when this CPU has a kernel for it (``BYTE_KERNEL``:
    VNNI or AVX2); False skips it (only the portable kernel will run).
    """
    w = check_matrix(weight, "weight", [np.int8])
    _check_depth(w.shape[1])
    return _packed(w, BYTE_KERNEL is not None if quads is None else quads)


def _check_depth(k):
    if k > MAX_K:
        raise ValueError(f"K={k} exceeds {MAX_K}: the int32 accumulation could overflow")


def _packed(w, quads, max_abs=None):
    """``pack_int8_weight`` of a checked W; ``max_abs`` its largest |W| if already known. A W that
    is not C-contiguous (``int8_matmul``'s ``b.T``) is packed from the rows of its transpose."""
    if not w.flags.c_contiguous:
        return _packed_rows(np.ascontiguousarray(w.T), quads, max_abs)
    sums = np.empty(w.shape[0], np.int64)
    threads.run(row_sums, w.size * NS_PER_SUMMED, w, sums)
    return PackedInt8Weight(w, _pack(w, np.int8) if quads else None, sums, max_abs)


def _packed_rows(b, quads, max_abs):
    """``_packed`` of W = b.T for a C-contiguous b (K, N), read along b's rows, in the one layout
    that will run: 4-byte quads (``quads``) or the portable kernel's int16 pairs."""
    k, n = b.shape
    sums = np.empty(n, np.int64)
    threads.run(column_sums, b.size * NS_PER_SUMMED, b, sums)
    group = 4 if quads else 2
    lanes = aligned_empty((-(-n // NR), -(-k // group), NR), np.int32)
    threads.run(pack_row_groups, b.size * NS_PER_INTERLEAVED, b, lanes, group)
    if quads:
        return PackedInt8Weight(b.T, lanes.view(np.int8).reshape(-1), sums, max_abs)
    return PackedInt8Weight(b.T, None, sums, max_abs, portable=lanes.view(np.int16).reshape(-1))


def _activations(x, dtype, shift):
    """(a, tail) for ``blocked_product``: x as the micro-kernel reads it. For the byte kernels
    (uint8) that is ``x + shift`` (for int8 x wrapping as uint8 lands on it, as the shift makes it
    non-negative; 128 is a bit flip), read in place when the shift is 0 and x's rows are whole
    lanes (``microkernel.reads_in_place``); for the portable kernel (int16) x widened. A copy's
    padding is left unset: the packed weight is zero there."""
    m, k = x.shape
    if dtype == np.uint8 and not shift and reads_in_place(x):
        xa = x.view(np.uint8)
        return xa, tail_rows(xa)
    xa = row_buffer("int8_x", m, k, dtype)
    if shift == 128 and x.dtype == np.int8:
        np.bitwise_xor(x.view(np.uint8), 0x80, out=xa[:m, :k])
    elif shift:
        np.add(x.view(np.uint8), np.uint8(shift), out=xa[:m, :k])
    else:
        xa[:m, :k] = x
    return xa, xa[:0]


def _plan(x, quads, w_max_abs, kernel):
    """(kernel, shift): the micro-kernel that runs ``x @ W.T`` and what x is shifted by to be uint8,
    for a W packed in 4-byte lanes or not (``quads``) whose largest |W| is ``w_max_abs``.

    ``kernel=None`` takes the CPU's byte kernel when W is packed for it and, for AVX2, when the
    codes fit its int16 pair sums (``maddubs.fits``), else the portable one."""
    if kernel in ("vnni", "avx2") and kernel != BYTE_KERNEL:
        wanted = "AVX512-VNNI" if kernel == "vnni" else "AVX2 without AVX512-VNNI"
        raise ValueError(f"kernel={kernel!r} needs a CPU with {wanted}; this one runs {BYTE_KERNEL or 'portable'}")
    if kernel in ("vnni", "avx2") and not quads:
        raise ValueError(f"kernel={kernel!r} needs a weight packed in 4-byte lanes (pack_int8_weight, quads=None)")
    if kernel is None:
        kernel = BYTE_KERNEL if quads else "portable"
    if kernel != "avx2":
        return kernel, 128 if kernel == "vnni" and x.dtype == np.int8 else 0
    shift = _avx2_shift(x, w_max_abs)
    return ("portable", 0) if shift is None else (kernel, shift)


def _max_abs(w):
    return max(int(w.max()), -int(w.min())) if w.size else 0


def _avx2_shift(x, w_max_abs):
    """What makes x's codes start at 0 for the AVX2 kernel (``-min(x)`` for int8 x with negative
    codes), or None when its pair sums could saturate (``maddubs.fits``)."""
    shift = max(0, -int(x.min(initial=0))) if x.dtype == np.int8 else 0
    return shift if maddubs.fits(int(x.max(initial=0)) + shift, w_max_abs) else None


def int8_linear(x, packed, kernel=None, x_zero_point=0):
    """``(x - x_zero_point) @ W.T`` as exact int32, with W pre-packed by ``pack_int8_weight``.

    ``x`` is int8 or uint8 (M, K), ndarray or Tensor; ``x_zero_point`` an integer in x's range
    (|x - x_zero_point| <= 255, so the result fits in int32 for K <= 2**16). ``kernel`` is None
    (the CPU's fastest kernel for these codes), ``"vnni"``, ``"avx2"`` (each only on its CPU; for
    ``"avx2"``, codes that do not fit its pair sums still go to the portable kernel) or ``"portable"``.
    """
    if not isinstance(packed, PackedInt8Weight):
        raise TypeError(f"packed must be a PackedInt8Weight (see pack_int8_weight), got {type(packed).__name__}")
    x = check_matrix(x, "x", [np.int8, np.uint8])
    n, k = packed.shape
    check_inner(x.shape, packed.shape, 1, 1, "x @ W.T")
    if kernel not in KERNELS:
        raise ValueError(f"unknown int8 kernel {kernel!r}; expected one of {KERNELS}")
    lo, hi = CODE_RANGES[x.dtype]
    if not is_int(x_zero_point) or not lo <= x_zero_point <= hi:
        raise ValueError(f"x_zero_point must be an integer in [{lo}, {hi}] for {x.dtype} x, got {x_zero_point!r}")
    m = x.shape[0]
    if m == 0 or n == 0 or k == 0:
        return np.zeros((m, n), np.int32)
    kernel, shift = _plan(x, packed.quads is not None, packed.max_abs, kernel)
    return _product(x, packed, kernel, shift, x_zero_point)


def _product(x, packed, kernel, shift, x_zero_point):
    """The product itself, for a kernel and shift from ``_plan``."""
    (m, k), n = x.shape, packed.shape[0]
    out = np.empty((m, n), np.int32)
    # the uint8 shift adds shift * sum_k W[n, k] to every output and the zero point takes away
    # x_zero_point * sum_k W[n, k]: one per-column offset, where the tiles start (int32 wrap
    # keeps it exact)
    offset = packed.offset(shift + int(x_zero_point))
    quads = kernel != "portable"
    xa, tail = _activations(x, np.uint8 if quads else np.int16, shift)
    lanes = xa.shape[1] * xa.itemsize // 4
    steps = -(-k // (4 if quads else 2))
    ns = -(-m // MR) * MR * -(-n // NR) * NR * k * NS_PER_MAC   # tiles are padded
    threads.run(blocked_product, ns, xa, lanes, packed.quads if quads else packed.portable, steps, KB, offset, out,
                tail)
    return out


def int8_matmul(a, b, kernel=None):
    """Exact ``a @ b`` for int8 matrices a (M, K), b (K, N), as int32. K <= 2**16.

    Packs ``b`` on every call (O(KN), against the O(MNK) product), in the one layout the chosen
    kernel reads; layers that reuse a weight keep a ``PackedInt8Weight`` and call ``int8_linear``.
    ``kernel`` as in ``int8_linear``.
    """
    a = check_matrix(a, "a", [np.int8])
    b = check_matrix(b, "b", [np.int8])
    check_inner(a.shape, b.shape)
    if kernel not in KERNELS:
        raise ValueError(f"unknown int8 kernel {kernel!r}; expected one of {KERNELS}")
    _check_depth(b.shape[0])
    if 0 in a.shape or 0 in b.shape:
        return np.zeros((a.shape[0], b.shape[1]), np.int32)
    # the plan first, so that only the layout that will run is packed; each operand's min and
    # max are read once
    b_max_abs = _max_abs(b)
    kernel, shift = _plan(a, BYTE_KERNEL is not None and kernel != "portable", b_max_abs, kernel)
    return _product(a, _packed(b.T, kernel != "portable", b_max_abs), kernel, shift, 0)


def int8_matmul_reference(a, b):
    """Plain NumPy ``a @ b`` in int64, checked to fit int32: the tests' reference."""
    out = np.asarray(a, np.int64) @ np.asarray(b, np.int64)
    assert np.abs(out).max(initial=0) < 2 ** 31
    return out.astype(np.int32)
