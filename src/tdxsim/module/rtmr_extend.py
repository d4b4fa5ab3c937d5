"""TDG.MR.RTMR.EXTEND (leaf 2): RCX = GPA of 48 bytes of private memory
(64-byte aligned), RDX = RTMR index 0..3 (spec 1.3; [M-api]
tdg_mr_rtmr_extend.c).  Checks in the module's order: alignment and the
GPA -> OPERAND_INVALID(RCX), then the index -> OPERAND_INVALID(RDX), then
the RTMR lock, taken exclusive: held elsewhere -> OPERAND_BUSY(RTMR) (spec
13.2, locks.py)."""
from __future__ import annotations

from .. import abi
from .common import complete
from .gpa import walk


def handle(module, regs, time_ns: int):
    gpa, index = regs.get(abi.RCX), regs.get(abi.RDX)
    if gpa % abi.RTMR_EXTEND_ALIGN:
        return complete(regs, abi.operand_invalid(abi.RCX))
    status, address = walk(module, gpa, abi.SHA384_SIZE, abi.RCX, private_only=True)
    if status:
        return complete(regs, status)
    if index >= abi.NUM_RTMRS:
        return complete(regs, abi.operand_invalid(abi.RDX))
    busy = module.rtmr_lock.busy_status()
    if busy:
        return complete(regs, busy)
    module.measurements.extend(index, module.memory.read(address, abi.SHA384_SIZE))
    return complete(regs, abi.Status.SUCCESS)
