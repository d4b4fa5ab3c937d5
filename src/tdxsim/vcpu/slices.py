"""One emu_start of the vCPU with the bookkeeping around it: arm the
instruction counter and the trap hooks, run, and say in one word what
stopped the engine (native.SLICE_* bits, Unicorn's error above them);
`state.end_rip` says where it stopped.

In C (slice.c) when the compiled hooks are built: done in Python it cost a
dozen ctypes stores and loads and the binding's emu_start per slice.
`_python` is the reference, and the whole path without the library.
"""
from __future__ import annotations

import ctypes
from typing import NamedTuple

from unicorn import UcError
from unicorn.x86_const import UC_X86_REG_RIP
from unicorn.unicorn_py3 import unicorn as _binding

from .. import native
from ..native import (SLICE_BOUNDARY, SLICE_END, SLICE_ERROR_SHIFT, SLICE_IF_WATCH, SLICE_TDCALL,
                      SLICE_TRAP)


class Stop(NamedTuple):  # a tuple: built on every slice, ~5x cheaper than a frozen dataclass
    """Why a slice of guest execution ended.

    kind: 'limit' (instruction limit reached, or a pause to flush translated
    code after guest memory changed), 'until' (reached the stop
    address), 'tdcall' (the TDCALL callback asked to stop), 'hlt' (plain HLT),
    've-insn' (an instruction the TDX module intercepts or the vCPU emulates,
    not yet executed: rip is that instruction), 'memory' (an access the page
    walk or the EPT check refused), 'fault', 'soft-limit' (run(exact=False)
    stopped in front of the block that would pass the limit), 'interrupted'
    (request_stop()); the run loop adds 'timeout'.
    """
    kind: str
    rip: int
    detail: str = ""
    address: int | None = None  # faulting data address, when known
    info: object = None  # kind 'memory': the page fault or EPT violation


class SliceRunner:
    def __init__(self, uc, counter, traps, fast: native.VCpu):
        self.uc, self.counter, self.traps, self.fast = uc, counter, traps, fast
        library = native.library() if counter.native else None
        if library is None:
            self.state = native.Slice()  # end_rip: as the C twin reports it
            self.run = self._python
            return
        self.state = native.Slice(  # end_rip: where the last slice stopped
            ctypes.cast(uc._uch, ctypes.c_void_p),
            ctypes.cast(_binding.uclib.uc_emu_start, ctypes.c_void_p),
            ctypes.pointer(counter.state), ctypes.pointer(traps.trap),
            ctypes.pointer(traps.boundary), ctypes.pointer(traps.if_watch),
            ctypes.pointer(fast))
        function = library.tdxsim_slice
        function.restype = ctypes.c_uint64  # no argtypes: each costs a Python call per call
        self._function, self._ref = function, ctypes.byref(self.state)
        self.run = self._native

    def _native(self, rip: int, step: int) -> int:
        """run(): the C twin of _python.  A Python hook's exception is
        raised here, as the binding's emu_start does."""
        uc, state = self.uc, self.state
        uc._hook_exception = None
        state.rip, state.step = rip, step
        status = self._function(self._ref)
        if not status >> SLICE_ERROR_SHIFT and uc._hook_exception is not None:
            raise uc._hook_exception
        return status

    def _python(self, rip: int, step: int) -> int:
        state, traps = self.counter.state, self.traps
        state.enabled = traps.trap.armed = int(not step)
        traps.trap.hit = traps.boundary.hit = traps.if_watch.hit = 0
        state.block_insns = 0  # no block entered yet
        error = 0
        try:
            self.uc.emu_start(rip, 0, count=step)
        except UcError as exc:
            error = exc.errno
        finally:
            state.enabled = 1
        self.state.end_rip = self.uc.reg_read(UC_X86_REG_RIP)
        status = 0
        if self.fast.stop_tdcall:  # tdcall.c stopped at a TDCALL
            self.fast.stop_tdcall = 0
            status = SLICE_TDCALL
        if self.fast.end_slice:  # tdcall.c ended the slice: a timer now falls inside it
            self.fast.end_slice = 0
            status |= SLICE_END
        return (status | (SLICE_TRAP if traps.trap.hit else 0)
                | (SLICE_BOUNDARY if traps.boundary.hit else 0)
                | (SLICE_IF_WATCH if traps.if_watch.hit else 0) | error << SLICE_ERROR_SHIFT)
