"""Numba kernels: dense float32, CSR-sparse and int8 matrix products.

Public functions (NumPy arrays in, NumPy arrays out; Tensors are accepted where a matrix is)::

    matmul(a, b)                         # float32 (M, K) @ (K, N) -> float32; the "numba" backend
    csr_matmul(indptr, indices, data, dense)   # CSR (R, K) @ float32 (K, N) -> float32 (R, N)
    int8_matmul(a, b)                    # int8 (M, K) @ int8 (K, N) -> exact int32; K <= 2**16
    matmul64(a, b)                       # float64, a plain loop in a fixed order (gradient checks)
    batched_matmul(a, b)                 # float32 (P, M, K) @ (P, K, N): many small products, dense.matmul's bits

Quantized layers keep their weight packed and call the packed path (C = X @ W.T, Linear layout)::

    packed = pack_int8_weight(w_int8)    # W (out_features, in_features) int8; once per weight
    acc = int8_linear(x_q, packed)       # x_q int8 or uint8 (batch, in) -> int32 (batch, out), exact
    y = int8_linear_dequant(x_q, x_scale, x_zero_point, packed, w_scale, w_zero_point=0, bias=None)
        # float32: x_scale * w_scale * (x_q - x_zp) @ (W - w_zp).T + bias; w_scale / w_zero_point
        # may be per output channel (arrays of length out_features)
    q = int8_linear_requant(x_q, x_scale, x_zero_point, packed, w_scale, out_scale, out_zero_point,
                            w_zero_point=0, bias=None, out_dtype="qint8")
        # the same, quantized again: clamp(round_half_even(y * (1/out_scale)) + out_zero_point)
    q = quantize(x, scale, zero_point, qmin, qmax, np.uint8)   # float -> codes, one pass

And the elementwise functions and factorisations whose bits must not depend on the CPU::

    exp(x), log(x), tanh(x), erfc(x), power(x, p)   # float64 polynomials, rounded once (transcendental.py)
    u, s, vt = svd(a)                      # one-sided Jacobi, float64 (svd.py)

Both products run the int8 kernel (which subtracts x's zero point for free) and then one fused
pass (``requant.py``); layers validate their constants once into an ``Epilogue`` and call
``linear_epilogue(x_q, x_zero_point, packed, epilogue.at(x_scale), ...)``.

``int8_linear`` uses the AVX512-VNNI kernel (``vnni.py``) when this CPU has it (``has_vnni()``),
else on AVX2 (``has_maddubs()``) the ``vpmaddubsw`` kernel (``maddubs.py``) when the codes fit its
int16 pair sums, and the portable kernel (``int8.py``) elsewhere; ``kernel=`` forces one.
``instruction_counts(kernel)`` counts e.g. ``vpdpbusd``/``vfmadd231ps`` in a kernel's machine code.

Each kernel has a NumPy reference beside it (``*_reference``), which the tests compare with. The
micro-kernels written in LLVM IR (``microkernel.tile``, the CSR row kernel, the in-register
transposes) also have plain-Python twins, bit for bit the same (``fma32`` rounds a fused
multiply-add once): with ``NUMBA_DISABLE_JIT=1`` every kernel runs as Python that a debugger can
step through.
Thread settings for mixing these parallel kernels with OpenBLAS are chosen in the package
``__init__`` (measured by ``benchmarks/kernels.py --threads``).
"""
from .asm import instruction_counts
from .channels import batch_norm_grad_rows, batch_norm_grad_scaled_rows, batch_norm_grad_sums, centred_square_sums, channel_sums, scale_shift_rows
from .conv import conv_forward, conv_input_grad, conv_weight_grad
from .csr import check_csr, csr_matmul, csr_product, has_sorted_indices
from .dense import matmul
from .batched import batched_matmul
from .dense64 import matmul64
from .patches import col2im, im2col, out_size, windows
from .int8 import PackedInt8Weight, int8_linear, int8_matmul, pack_int8_weight
from .pool import max_pool, max_pool_backward
from .quantize import CODE_DTYPES, CODE_RANGES, quantize, quantize_array, quantize_checked
from .requant import Epilogue, int8_linear_dequant, int8_linear_requant, linear_epilogue
from .svd import svd
from .transcendental import erfc, exp, log, log_scalar, power, tanh
from .validate import as_array, check_inner, check_matrix
from .vnni import has_vnni
from .maddubs import has_maddubs

__all__ = [
    "matmul", "batched_matmul", "matmul64", "csr_matmul", "int8_matmul", "pack_int8_weight", "PackedInt8Weight", "int8_linear",
    "int8_linear_dequant", "int8_linear_requant", "Epilogue", "linear_epilogue", "quantize", "has_vnni", "has_maddubs",
    "instruction_counts", "exp", "erfc", "log", "tanh", "power", "svd",
    # the pieces other modules of the package build on (one public road into kernels/)
    "check_csr", "csr_product", "has_sorted_indices", "conv_forward", "conv_input_grad", "conv_weight_grad", "im2col", "col2im", "out_size", "windows",
    "channel_sums", "centred_square_sums", "scale_shift_rows", "batch_norm_grad_rows", "batch_norm_grad_sums", "batch_norm_grad_scaled_rows",
    "max_pool", "max_pool_backward", "CODE_DTYPES", "CODE_RANGES", "quantize_array", "quantize_checked",
    "log_scalar", "as_array", "check_inner", "check_matrix",
]
