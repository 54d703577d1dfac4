"""The bit-scanning intrinsics against plain numpy and Python integer arithmetic."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest

from engine.stages.bit_kernels import BLOCK, byte_class_masks, bytes_at, leading_zeros, popcount, trailing_zeros

CLASSES = (
    frozenset(b" \t\n"),
    frozenset(range(ord("a"), ord("z") + 1)) | frozenset(range(ord("A"), ord("Z") + 1)),
    frozenset([0, 127, 128, 255]),  # the ends of both halves: signed and unsigned compares differ here
    frozenset(range(0xC3, 0xF0)) - {0xE2},
    frozenset(),
)
_masks = byte_class_masks(CLASSES)


@nb.njit
def _all_masks(data: np.ndarray) -> np.ndarray:
    out = np.empty((data.shape[0] - BLOCK + 1, 5), dtype=np.uint64)
    for i in range(out.shape[0]):
        out[i, 0], out[i, 1], out[i, 2], out[i, 3], out[i, 4] = _masks(data, i)
    return out


def _reference(data: np.ndarray, i: int, cls: frozenset[int]) -> int:
    block = data[i : i + BLOCK]
    return int(sum(1 << k for k in range(BLOCK) if int(block[k]) in cls))


def test_class_masks_equal_a_per_byte_reference_at_every_offset() -> None:
    rng = np.random.default_rng(7)
    data = np.concatenate([np.arange(256, dtype=np.uint8), rng.integers(0, 256, 400, dtype=np.uint8)])
    data = np.concatenate(
        [data, np.frombuffer(b"Hello, world!\n\tcaf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80", np.uint8)]
    )
    got = _all_masks(data)
    for i in range(0, got.shape[0], 3):
        assert [int(x) for x in got[i]] == [_reference(data, i, c) for c in CLASSES], i
    assert int(got[ord("a") - 1, 1]) == ((1 << 26) - 1) << 1  # the block at byte 96: "a".."z" are bits 1..26
    assert not got[:, 4].any()


@nb.njit
def _masks_of(data: np.ndarray) -> tuple:
    return _masks(data, 0)


def test_masks_refuse_arrays_that_are_not_contiguous_bytes() -> None:
    for bad in (np.zeros(128, np.uint16), np.zeros(256, np.uint8)[::2]):
        with pytest.raises(nb.core.errors.TypingError):
            _masks_of(bad)
    assert _masks_of(np.full(64, 32, np.uint8))[0] == (1 << 64) - 1


def test_class_values_out_of_byte_range_are_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.\.255"):
        byte_class_masks((frozenset([256]),))


@nb.njit
def _bits(x: np.uint64) -> tuple[int, int, int]:
    return popcount(x), trailing_zeros(x), leading_zeros(x)


def test_popcount_and_zero_counts_equal_python_integers() -> None:
    rng = np.random.default_rng(3)
    values = [0, 1, 1 << 63, (1 << 64) - 1, 0x8000_0000_0000_0001]
    values += [int(v) for v in rng.integers(0, 2**63, 200, dtype=np.int64)]
    values += [int(v) >> int(s) for v, s in zip(rng.integers(0, 2**63, 100), rng.integers(0, 63, 100), strict=True)]
    for v in values:
        want = (bin(v).count("1"), (v & -v).bit_length() - 1 if v else 64, 64 - v.bit_length())
        assert _bits(np.uint64(v)) == want, hex(v)


@nb.njit
def _sum_at(addresses: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    out = np.zeros(addresses.shape[0], dtype=np.int64)
    for j in range(addresses.shape[0]):
        data = bytes_at(addresses[j], sizes[j])
        for i in range(data.shape[0]):
            out[j] += data[i] * (i + 1)
    return out


def test_bytes_at_reads_the_memory_at_an_address() -> None:
    arrays = [np.arange(n, dtype=np.uint8) * 7 for n in (0, 1, 64, 300)]
    got = _sum_at(np.array([a.ctypes.data for a in arrays]), np.array([a.shape[0] for a in arrays]))
    assert got.tolist() == [int((a.astype(np.int64) * np.arange(1, a.shape[0] + 1)).sum()) for a in arrays]
