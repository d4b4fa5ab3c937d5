"""QEMU's debug console (isa-debugcon) at port 0x402, where OVMF's DEBUG
builds print (PlatformDebugLibIoPort).  Reading it returns 0xE9, the value
by which the firmware detects it (Bochs' port-E9 hack)."""
from __future__ import annotations

DEBUG_CONSOLE_PORT = 0x402
PRESENT = 0xE9


class DebugConsole:
    ports = range(DEBUG_CONSOLE_PORT, DEBUG_CONSOLE_PORT + 1)

    def __init__(self):
        self.output = bytearray()

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def read(self, port: int, size: int) -> int:
        return PRESENT

    def write(self, port: int, size: int, value: int) -> None:
        self.output += (value & 0xFF).to_bytes(1, "little")
