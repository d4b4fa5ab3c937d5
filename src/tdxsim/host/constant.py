"""A host that answers every TD exit with the same registers: the checker's
marker host, and the benches' cheapest host.

It needs nothing but registers, so the compiled TDG.VP.VMCALL path may give
its answer too (host/fast.c); its XMMs stay with Python, since the compiled
path takes no XMM exits.
"""
from __future__ import annotations

import ctypes
from struct import Struct

from .. import native
from ..exits import VmExit, VmResume

GPRS = Struct("<16Q")
_ZEROS = (0,) * 16  # (an unanswered GPR)


class ConstantHost:
    def __init__(self, answer: VmResume):
        self.fast = native.Host(answer_all=1)  # what host/fast.c answers
        self._registers = memoryview((ctypes.c_ubyte * GPRS.size).from_buffer(
            self.fast.answer)).cast("B")
        self._answer: VmResume | None = None
        self._gprs: dict[int, int] | None = None
        self.answer = answer

    @property
    def answer(self) -> VmResume:
        return self._answer

    @answer.setter
    def answer(self, answer: VmResume) -> None:
        """Copied into C only when its GPRs change (the checker sets it per run)."""
        self._answer = answer
        gprs = answer.gprs
        if gprs != self._gprs:
            self.fast.answer_mask = sum(1 << r for r in gprs)
            # one copy into C, no ctypes store per GPR
            GPRS.pack_into(self._registers, 0, *map(gprs.get, range(16), _ZEROS))
            self._gprs = dict(gprs)

    def handle(self, exit: VmExit) -> VmResume:
        return self._answer

    def compiled_paths(self) -> native.Host:
        """What the compiled path may serve for this host: every exit."""
        return self.fast
