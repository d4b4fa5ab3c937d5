"""CMOS RAM and RTC at ports 0x70 (index; bit 7 is the NMI mask) and 0x71
(data), as QEMU's mc146818rtc with the memory sizes hw/i386/pc.c stores:
0x30/0x31 extended memory above 1 MiB in KiB (at most 0xFFFF), 0x34/0x35
memory above 16 MiB in 64 KiB units, 0x5B-0x5D memory above 4 GiB in 64 KiB
units.  OVMF reads these when fw_cfg has no etc/e820.  The clock reads as
2026-12-06 00:00:00 plus virtual time, in BCD; status register B says
24-hour BCD, D says the battery is good.
"""
from __future__ import annotations

from typing import Callable

INDEX, DATA = 0x70, 0x71
KiB, MiB = 1 << 10, 1 << 20
REG_A, REG_B, REG_D = 0x0A, 0x0B, 0x0D
_EPOCH = (2026, 12, 6)


def _bcd(value: int) -> int:
    return value // 10 << 4 | value % 10


class Cmos:
    ports = range(INDEX, DATA + 1)

    def __init__(self, ram_below_4g: int, ram_above_4g: int = 0,
                 clock: Callable[[], int] = lambda: 0):
        self.clock = clock
        self.index = 0
        self.ram = bytearray(128)
        self.ram[REG_A], self.ram[REG_B], self.ram[REG_D] = 0x26, 0x02, 0x80
        extended = min(0xFFFF, max(0, ram_below_4g - MiB) // KiB)
        self.ram[0x30:0x32] = self.ram[0x17:0x19] = extended.to_bytes(2, "little")
        above_16m = min(0xFFFF, max(0, ram_below_4g - 16 * MiB) >> 16)
        self.ram[0x34:0x36] = above_16m.to_bytes(2, "little")
        self.ram[0x5B:0x5E] = (ram_above_4g >> 16).to_bytes(3, "little")

    def _clock_register(self, index: int) -> int | None:
        seconds = self.clock() // 1_000_000_000
        year, month, day = _EPOCH
        fields = {0x00: seconds % 60, 0x02: seconds // 60 % 60, 0x04: seconds // 3600 % 24,
                  0x06: 1, 0x07: day, 0x08: month, 0x09: year % 100, 0x32: year // 100}
        return _bcd(fields[index]) if index in fields else None

    def read(self, port: int, size: int) -> int:
        if port == INDEX:
            return 0xFF
        value = self._clock_register(self.index)
        return self.ram[self.index] if value is None else value

    def write(self, port: int, size: int, value: int) -> None:
        if port == INDEX:
            self.index = value & 0x7F
        elif self.index not in (REG_D,) and self._clock_register(self.index) is None:
            self.ram[self.index] = value & 0xFF
