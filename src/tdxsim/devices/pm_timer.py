"""ACPI power-management registers of the ICH9 LPC bridge at PMBASE (OVMF
programs PMBASE = 0x600 on Q35): PM1 status/enable (+0, +2), PM1 control
(+4) and the PM timer (+8), a 24-bit counter at 3.579545 MHz, here driven by
virtual time (QEMU hw/acpi/core.c, ACPI spec 4.8.3.3)."""
from __future__ import annotations

from typing import Callable

PM_BASE = 0x600
PM_SIZE = 0x80
PM_TIMER = 0x08
PM_TIMER_HZ = 3_579_545
PM_TIMER_MASK = 0xFF_FFFF  # 24 bits


class PmTimer:
    def __init__(self, clock: Callable[[], int], base: int = PM_BASE):
        self.base = base
        self.ports = range(base, base + PM_SIZE)
        self.clock = clock
        self.regs = bytearray(PM_SIZE)

    def read(self, port: int, size: int) -> int:
        offset = port - self.base
        if PM_TIMER <= offset < PM_TIMER + 4:
            ticks = self.clock() * PM_TIMER_HZ // 1_000_000_000 & PM_TIMER_MASK
            return ticks >> 8 * (offset - PM_TIMER) & (1 << 8 * size) - 1
        return int.from_bytes(self.regs[offset:offset + size], "little")

    def write(self, port: int, size: int, value: int) -> None:
        offset = port - self.base
        if PM_TIMER <= offset < PM_TIMER + 4:
            return  # read-only
        self.regs[offset:offset + size] = value.to_bytes(size, "little")[:PM_SIZE - offset]
