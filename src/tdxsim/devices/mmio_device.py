"""A small MMIO test device: an ID register and a bank of scratch registers.

Offset 0 reads the ID 0x53584454 ("TDXS"), read-only; offsets 8..0xFFF are
plain read/write storage, little-endian, any access size.
"""
from __future__ import annotations

MMIO_DEVICE_BASE = 0xFEB0_0000  # guest-physical, without the shared bit
MMIO_DEVICE_SIZE = 0x1000
MMIO_DEVICE_ID = 0x5358_4454
MMIO_DEVICE_ID_SIZE = 8  # the read-only ID register


class MmioDevice:
    def __init__(self, base: int = MMIO_DEVICE_BASE):
        self.base = base
        self.size = MMIO_DEVICE_SIZE
        self._mem = bytearray(MMIO_DEVICE_SIZE)
        self._mem[0:4] = MMIO_DEVICE_ID.to_bytes(4, "little")

    def contains(self, gpa: int, size: int) -> bool:
        return self.base <= gpa and gpa + size <= self.base + self.size

    def read(self, gpa: int, size: int) -> int:
        offset = gpa - self.base
        return int.from_bytes(self._mem[offset:offset + size], "little")

    def write(self, gpa: int, size: int, value: int) -> None:
        offset = gpa - self.base
        if offset < MMIO_DEVICE_ID_SIZE:
            return  # the ID register is read-only
        self._mem[offset:offset + size] = value.to_bytes(size, "little")
