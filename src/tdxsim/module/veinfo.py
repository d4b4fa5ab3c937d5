"""TDG.VP.VEINFO.GET (leaf 3, versions 0 and 1): spec 8.2; [M-ve].

RCX = exit reason (version 1: #VE category in bits 63:32, 0 here), RDX = exit
qualification, R8 = GLA, R9 = GPA, R10 = instruction length | info << 32.
The handler zeroes RCX, RDX and R8..R10 first, even on failure; with no valid
info it returns TDX_NO_VALID_VE_INFO.  A successful call clears VALID.
"""
from __future__ import annotations

from .. import abi
from .common import complete

_OUTPUTS = (abi.RCX, abi.RDX, abi.R8, abi.R9, abi.R10)


def handle(module, regs, time_ns: int):
    module.ve.state.gets += 1  # (counted as veinfo.c counts them)
    info = module.ve.take()
    if info is None:
        return complete(regs, abi.Status.NO_VALID_VE_INFO, {r: 0 for r in _OUTPUTS})
    return complete(regs, abi.Status.SUCCESS, {
        abi.RCX: info.exit_reason,
        abi.RDX: info.qualification,
        abi.R8: info.gla,
        abi.R9: info.gpa,
        abi.R10: info.instr_len | info.instr_info << 32,
    })
