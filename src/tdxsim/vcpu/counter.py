"""Exact guest instruction counting, the base of the budget and virtual time.

The C hook from `_counter.c` is used when the extension was built; otherwise
an equivalent Python UC_HOOK_CODE callback (about 100x slower, same counts).
"""
from __future__ import annotations

import ctypes
import functools

from unicorn import UC_HOOK_CODE
from unicorn.unicorn_py3 import unicorn as _binding


class _State(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint64), ("limit", ctypes.c_uint64),
                ("last_pc", ctypes.c_uint64), ("stop", ctypes.c_void_p)]


@functools.cache  # loading the library costs ~1 ms; every TD shares it
def _c_hook():
    try:
        from . import _counter
    except ImportError:
        return None
    return ctypes.cast(ctypes.CDLL(_counter.__file__).tdxsim_count_insn, ctypes.c_void_p)


class InstructionCounter:
    """Counts instructions and stops the CPU after exactly `limit` of them."""

    def __init__(self, uc, native: bool | None = None):
        self.state = _State(0, 0, 0, ctypes.cast(_binding.uclib.uc_emu_stop, ctypes.c_void_p))
        hook = _c_hook() if native is not False else None
        if native and hook is None:
            raise RuntimeError("the C instruction counter (tdxsim.vcpu._counter) is not built")
        self.native = hook is not None
        if self.native:
            self._handle = _binding.uc_hook_h()
            err = _binding.uclib.uc_hook_add(
                uc._uch, ctypes.byref(self._handle), UC_HOOK_CODE, hook,
                ctypes.cast(ctypes.byref(self.state), ctypes.c_void_p),
                ctypes.c_uint64(1), ctypes.c_uint64(0))
            if err:
                raise RuntimeError(f"uc_hook_add failed with error {err}")
        else:
            uc.hook_add(UC_HOOK_CODE, self._python_hook)

    def _python_hook(self, uc, address, size, _user):
        state = self.state
        if state.count >= state.limit:
            uc.emu_stop()
            return
        state.count += 1
        state.last_pc = address

    @property
    def count(self) -> int:
        return self.state.count

    @property
    def last_pc(self) -> int:
        return self.state.last_pc

    def retire(self, n: int = 1) -> None:
        """Count instructions the vCPU emulated itself without Unicorn."""
        self.state.count += n

    def set_limit(self, limit: int) -> None:
        self.state.limit = limit
