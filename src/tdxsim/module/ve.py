"""#VE: the virtualization exception the module raises inside the TD
(spec 8; [M-ve]).

The module records VE info and marks it valid; the guest's #VE handler reads
it with TDG.VP.VEINFO.GET, which clears VALID.  A #VE raised while VALID is
still set becomes a double fault (#DF, vector 8, error code 0) in the current
module; the old SDV injected #GP(0) instead (`legacy_nested_ve_gp`).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

from .. import native

VE_VECTOR = 20
DF_VECTOR = 8
GP_VECTOR = 13


@dataclass(frozen=True)
class VeInfo:
    exit_reason: int  # VMX basic exit reason (spec 0.1)
    qualification: int = 0
    gla: int = 0
    gpa: int = 0
    instr_len: int = 0
    instr_info: int = 0


class VeState:
    """The per-vCPU VE information area (TDVPS).  VALID lives in a native
    struct (native.Ve) that module/veinfo.c clears when it serves
    TDG.VP.VEINFO.GET, so `info` is the VeInfo last raised while VALID is
    set; the fields beside VALID are what C returns."""

    def __init__(self, legacy_nested_ve_gp: bool = False):
        self.state = native.Ve()
        self.pointer = ctypes.pointer(self.state)  # TdxModule.select gives it to C
        self._info: VeInfo | None = None  # the last one raised
        self.legacy_nested_ve_gp = legacy_nested_ve_gp

    @property
    def info(self) -> VeInfo | None:
        """The valid VE info, None once VEINFO.GET read it."""
        return self._info if self.state.valid else None

    def raise_ve(self, info: VeInfo) -> tuple[int, int | None]:
        """Record info; returns (vector, error code) to inject."""
        state = self.state
        if state.valid:
            return (GP_VECTOR, 0) if self.legacy_nested_ve_gp else (DF_VECTOR, 0)
        self._info = info
        state.exit_reason, state.qualification, state.gla, state.gpa, state.instr_len, \
            state.instr_info = info.exit_reason, info.qualification, info.gla, info.gpa, \
            info.instr_len, info.instr_info
        state.valid = 1
        return VE_VECTOR, None

    def take(self) -> VeInfo | None:
        info = self.info
        self.state.valid = 0
        return info
