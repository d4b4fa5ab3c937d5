"""A 16550-style UART on COM1, enough for a guest console (transmit only)."""
from __future__ import annotations

COM1 = 0x3F8
THR = 0  # transmit holding register (write, DLAB = 0)
LSR = 5  # line status register
LSR_THRE = 0x20  # transmit holding register empty
LSR_TEMT = 0x40  # transmitter empty


class Serial:
    def __init__(self, base: int = COM1):
        self.base = base
        self.ports = range(base, base + 8)
        self.output = bytearray()
        self._regs = bytearray(8)

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def read(self, port: int, size: int) -> int:
        offset = port - self.base
        if offset == LSR:
            return LSR_THRE | LSR_TEMT  # always ready to send
        if offset == THR:
            return 0  # no input
        return self._regs[offset]

    def write(self, port: int, size: int, value: int) -> None:
        offset = port - self.base
        if offset == THR and not self._regs[3] & 0x80:  # LCR.DLAB clear
            self.output.append(value & 0xFF)
        else:
            self._regs[offset] = value & 0xFF
