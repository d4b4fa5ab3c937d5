"""A TDCALL observer for tools that judge guest code (the checker): the
registers before and after every TDCALL, whichever path serves it, its
RFLAGS, instruction count and virtual time, and a guest-physical stack
window at the TDCALL, all recorded in C (tdcall.c observe())."""
from __future__ import annotations

import ctypes

from .. import native
from ..errors import TdxsimError


class TdcallObserver:
    """Attached with TD.observe_tdcalls (VCpu.attach_observer)."""

    def __init__(self, stack_base: int, stack_len: int, capacity: int):
        if native.library() is None:
            raise TdxsimError("the TDCALL observer needs tdxsim's compiled hooks")
        if stack_len > native.OBSERVE_STACK_MAX:
            raise TdxsimError(f"a stack window of {stack_len} bytes is more than the "
                              f"observer's {native.OBSERVE_STACK_MAX}")
        self._records = (native.TdcallSeen * capacity)()
        self._bytes = memoryview((ctypes.c_ubyte * ctypes.sizeof(self._records)).from_buffer(
            self._records)).cast("B")
        self.state = native.Observer(ctypes.cast(self._records, ctypes.POINTER(native.TdcallSeen)),
                                     0, capacity, 0, stack_base, stack_len)

    @property
    def count(self) -> int:
        return self.state.count

    def take_raw(self) -> tuple[int, bool, memoryview]:
        """take() as bytes: this run's record count, the overflow flag, and
        the records' memory (native.TdcallSeen each, valid until the next
        run), without a ctypes object per record; starts anew."""
        n, overflow = self.state.count, self.state.overflow
        self.state.count = self.state.overflow = 0
        return n, bool(overflow), self._bytes

    def take(self) -> tuple[list[native.TdcallSeen], bool]:
        """This run's records (valid until the next take), and whether there
        were more TDCALLs than the observer holds (the vCPU then ended the
        run at the first one too many); starts anew."""
        seen = self._records[:self.state.count]
        overflow, self.state.count, self.state.overflow = self.state.overflow, 0, 0
        return seen, bool(overflow)
