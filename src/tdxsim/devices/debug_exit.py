"""Debug-exit port: a write ends the run with the written value as exit code."""
from __future__ import annotations

from ..exits import GuestExit

DEBUG_EXIT_PORT = 0xF4


class DebugExit:
    ports = range(DEBUG_EXIT_PORT, DEBUG_EXIT_PORT + 1)

    def read(self, port: int, size: int) -> int:
        return 0

    def write(self, port: int, size: int, value: int) -> GuestExit:
        return GuestExit(value)
