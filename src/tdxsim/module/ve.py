"""#VE: the virtualization exception the module raises inside the TD
(spec 8; [M-ve]).

The module records VE info and marks it valid; the guest's #VE handler reads
it with TDG.VP.VEINFO.GET, which clears VALID.  A #VE raised while VALID is
still set becomes a double fault (#DF, vector 8, error code 0) in the current
module; the old SDV injected #GP(0) instead (`legacy_nested_ve_gp`).
"""
from __future__ import annotations

from dataclasses import dataclass

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
    """The per-vCPU VE information area (TDVPS)."""

    def __init__(self, legacy_nested_ve_gp: bool = False):
        self.info: VeInfo | None = None  # valid while not None
        self.legacy_nested_ve_gp = legacy_nested_ve_gp

    def raise_ve(self, info: VeInfo) -> tuple[int, int | None]:
        """Record info; returns (vector, error code) to inject."""
        if self.info is not None:
            return (GP_VECTOR, 0) if self.legacy_nested_ve_gp else (DF_VECTOR, 0)
        self.info = info
        return VE_VECTOR, None

    def take(self) -> VeInfo | None:
        info, self.info = self.info, None
        return info
