"""TDG.MR.REPORT (leaf 4): RCX = GPA of the 1024-byte TDREPORT (1024-byte
aligned), RDX = GPA of the 64-byte REPORTDATA (64-byte aligned), R8 =
subtype, which must be 0 (spec 1.3; [M-api] tdg_mr_report.c).

Checks in the module's order: RCX alignment, RDX alignment, the REPORTDATA
GPA, the subtype (R8), then the TDREPORT GPA; each failure is
OPERAND_INVALID with that operand.  Both buffers may be private or shared.
After the subtype the module takes the RTMR lock shared: held elsewhere, the
leaf answers OPERAND_BUSY(RTMR) (spec 13.2, locks.py).
The module's interruptible TEE_INFO_HASH computation is not modelled.
"""
from __future__ import annotations

from .. import abi
from .common import complete
from .gpa import walk


def handle(module, regs, time_ns: int):
    report_gpa, data_gpa, subtype = regs.get(abi.RCX), regs.get(abi.RDX), regs.get(abi.R8)
    if report_gpa % abi.TDREPORT_SIZE:
        return complete(regs, abi.operand_invalid(abi.RCX))
    if data_gpa % abi.REPORTDATA_SIZE:
        return complete(regs, abi.operand_invalid(abi.RDX))
    status, data_address = walk(module, data_gpa, abi.REPORTDATA_SIZE, abi.RDX, private_only=False)
    if status:
        return complete(regs, status)
    if subtype != abi.REPORT_SUBTYPE_TDX:
        return complete(regs, abi.operand_invalid(abi.R8))
    busy = module.rtmr_lock.busy_status()
    if busy:
        return complete(regs, busy)
    report = module.measurements.report(module.memory.read(data_address, abi.REPORTDATA_SIZE))
    status, report_address = walk(module, report_gpa, abi.TDREPORT_SIZE, abi.RCX, private_only=False)
    if status:
        return complete(regs, status)
    module.memory.write(report_address, report)
    return complete(regs, abi.Status.SUCCESS)
