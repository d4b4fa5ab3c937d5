"""TDG.VP.CPUIDVE.SET (leaf 5): RCX bit 0 = #VE for every CPUID at CPL 0,
bit 1 = at CPL > 0; other bits reserved -> OPERAND_INVALID(RCX) (spec 1.3;
[M-api] tdg_vp_cpuidve_set.c).  TD_CTLS.LOCK is not modelled."""
from __future__ import annotations

from .. import abi
from .common import complete


def handle(module, regs, time_ns: int):
    control = regs.get(abi.RCX)
    if control & abi.CPUIDVE_RESERVED:
        return complete(regs, abi.operand_invalid(abi.RCX))
    module.vp.cpuid_ve = control
    return complete(regs, abi.Status.SUCCESS)
