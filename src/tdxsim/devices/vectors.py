"""The local APIC's vector sets (IRR, ISR) as Python sets over the native
struct's 256-bit maps (devices/lapic.py, native.h `struct tdxsim_lapic`)."""
from __future__ import annotations

from collections.abc import MutableSet
from typing import Iterator

from .. import abi


class VectorSet(MutableSet):
    """A set of vectors 0-255 kept as a 256-bit map in four words of the
    native struct (IRR or ISR): `in`, iteration in ascending order, add,
    discard and clear, as a Python set."""

    def __init__(self, words):
        self._words = words  # ctypes c_uint64 * 4

    def __contains__(self, vector) -> bool:
        return type(vector) is int and 0 <= vector < 256 and bool(
            self._words[vector >> 6] >> (vector & 63) & 1)

    def __iter__(self) -> Iterator[int]:
        for i, word in enumerate(self._words[:]):
            while word:
                low = word & -word
                yield i << 6 | low.bit_length() - 1
                word ^= low

    def __len__(self) -> int:
        return sum(word.bit_count() for word in self._words[:])

    def __bool__(self) -> bool:
        return any(self._words[:])

    def __repr__(self) -> str:
        return f"{{{', '.join(map(str, self))}}}"

    def highest(self) -> int | None:
        words = self._words[:]
        for i in (3, 2, 1, 0):
            if words[i]:
                return i << 6 | words[i].bit_length() - 1
        return None

    def add(self, vector: int) -> None:
        if type(vector) is not int or not 0 <= vector < 256:
            raise ValueError(f"an interrupt vector is 0..255, not {vector!r}")
        self._words[vector >> 6] |= 1 << (vector & 63)

    def discard(self, vector: int) -> None:
        if vector in self:
            self._words[vector >> 6] &= ~(1 << (vector & 63)) & abi.MASK64

    def clear(self) -> None:
        self._words[:] = (0, 0, 0, 0)
