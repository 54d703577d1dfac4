"""numba intrinsics for bit-parallel text scanning: 64-byte class masks, popcount, trailing/leading zeros.

Why: a byte-at-a-time state machine pays a branch per byte and a mispredict per word (~5 ns/byte in the
heuristic kernel). Classifying 64 bytes at once into one bit per byte per class (`byte_class_masks`) is
a few vector compares; counts then come from popcounts and carries over those masks, and the only loops
left run once per word or per line. numba has no SIMD intrinsics, so the class test is written in LLVM IR:
a `<64 x i8>` load, unsigned range compares, and the `<64 x i1>` result bitcast to an `i64` (one
`vpcmpb` + `kmov` per range with AVX-512, `pmovmskb` sequences elsewhere; the result is the same).

numba's on-disk cache of a kernel that uses these is keyed by the kernel's own file: after changing this
module, delete that file's `__pycache__/*.nbi` (or touch the file) so the kernel recompiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

BLOCK = 64
"""Bytes per mask: bit k of a mask is the byte at offset k."""
ONE = np.uint64(1)
ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@nb.njit(inline="always")
def low_bits(n):
    """A mask of the lowest n bits (all 64 for n >= 64)."""
    return ALL if n >= 64 else (ONE << np.uint64(n)) - ONE


def _ranges(values: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted byte values as inclusive (low, high) runs."""
    out: list[tuple[int, int]] = []
    for v in sorted(set(values)):
        if not 0 <= v <= 255:
            msg = f"byte class values must be in 0..255, got {v}"
            raise ValueError(msg)
        if out and out[-1][1] == v - 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def byte_class_masks(classes: tuple[frozenset[int], ...]) -> Callable:
    """An intrinsic `masks(data, i)`: for each class, the bits of data[i:i+64] whose byte is in it.

    `data` is a 1-d uint8 array and must hold 64 bytes from `i` (unchecked: callers pad the tail).
    Returns a tuple of uint64, one per class, in order.
    """
    plans = [_ranges(c) for c in classes]
    n = len(plans)
    vec = ir.VectorType(ir.IntType(8), BLOCK)
    bits = ir.VectorType(ir.IntType(1), BLOCK)

    @intrinsic
    def masks(typingctx, data, i):
        contiguous_bytes = isinstance(data, types.Array) and data.dtype == types.uint8 and data.layout == "C"
        if not (contiguous_bytes and data.ndim == 1 and isinstance(i, types.Integer)):
            return None  # the load reads raw memory: anything but contiguous uint8 would give wrong masks
        sig = types.UniTuple(types.uint64, n)(data, i)

        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.gep(ary.data, [args[1]])
            v = builder.load(builder.bitcast(ptr, vec.as_pointer()), align=1)
            out = []
            for plan in plans:
                hit = ir.Constant(bits, [0] * BLOCK)
                for lo, hi in plan:
                    if lo == hi:
                        test = builder.icmp_unsigned("==", v, ir.Constant(vec, [lo] * BLOCK))
                    else:
                        shifted = builder.sub(v, ir.Constant(vec, [lo] * BLOCK))
                        test = builder.icmp_unsigned("<=", shifted, ir.Constant(vec, [hi - lo] * BLOCK))
                    hit = builder.or_(hit, test)
                out.append(builder.bitcast(hit, ir.IntType(64)))
            return context.make_tuple(builder, sig.return_type, out)

        return sig, codegen

    return masks


def _bit_count(name: str, llvm_op: str, doc: str) -> Callable:
    """An intrinsic uint64 -> int64 applying one of LLVM's bit-counting intrinsics (defined at 0: 64)."""

    def count(typingctx, x):
        sig = types.int64(types.uint64)

        def codegen(context, builder, signature, args):
            if llvm_op == "ctpop":
                return builder.ctpop(args[0])
            return getattr(builder, llvm_op)(args[0], ir.Constant(ir.IntType(1), 0))

        return sig, codegen

    count.__name__ = count.__qualname__ = name
    count.__doc__ = doc
    return intrinsic(count)


popcount = _bit_count("popcount", "ctpop", "Set bits of a uint64, as int64.")
trailing_zeros = _bit_count("trailing_zeros", "cttz", "Zero bits below the lowest set bit of a uint64 (64 for 0).")
leading_zeros = _bit_count("leading_zeros", "ctlz", "Zero bits above the highest set bit of a uint64 (64 for 0).")


@intrinsic
def _pointer(typingctx, address):
    sig = types.CPointer(types.uint8)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return sig, codegen


@nb.njit(inline="always")
def bytes_at(address, size):
    """The `size` bytes at `address` as a uint8 array that owns nothing: the caller keeps them alive."""
    return nb.carray(_pointer(address), size)
