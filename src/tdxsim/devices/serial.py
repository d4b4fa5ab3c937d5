"""A 16550-style UART on COM1, enough for a guest console (transmit only).

Its registers and output live in a `native.Serial` structure, which the
host's compiled IO path (host/fast.c) reads and appends to as well.
"""
from __future__ import annotations

import ctypes

from .. import native
from ..abi import COM1, UART_LCR, UART_LCR_DLAB, UART_LSR, UART_LSR_TEMT, UART_LSR_THRE, UART_THR


class Serial:
    def __init__(self, base: int = COM1):
        self.base = base
        self.ports = range(base, base + 8)
        self.state = native.Serial(base=base)
        self._buffer = None
        self._grow(4096)

    @property
    def output(self) -> bytes:
        length = self.state.length
        return ctypes.string_at(self._address, length) if length else b""

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace") if self.state.length else ""

    def clear(self) -> None:
        self.state.length = 0

    def read(self, port: int, size: int) -> int:
        offset = port - self.base
        if offset == UART_LSR:
            return UART_LSR_THRE | UART_LSR_TEMT  # always ready to send
        if offset == UART_THR:
            return 0  # no input
        return self.state.regs[offset]

    def write(self, port: int, size: int, value: int) -> None:
        offset = port - self.base
        if offset == UART_THR and not self.state.regs[UART_LCR] & UART_LCR_DLAB:
            self._append(value & 0xFF)
        else:
            self.state.regs[offset] = value & 0xFF

    def _append(self, byte: int) -> None:
        state = self.state
        if state.length == state.capacity:
            self._grow(2 * state.capacity)
        state.output[state.length] = byte
        state.length += 1

    def _grow(self, capacity: int) -> None:
        buffer = (ctypes.c_uint8 * capacity)()
        if self._buffer is not None:
            ctypes.memmove(buffer, self._buffer, self.state.length)
        self._buffer, self._address = buffer, ctypes.addressof(buffer)
        self.state.output = ctypes.cast(buffer, ctypes.POINTER(ctypes.c_uint8))
        self.state.capacity = capacity
