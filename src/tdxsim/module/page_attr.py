"""TDG.MEM.PAGE.ATTR.RD (leaf 23) and TDG.MEM.PAGE.ATTR.WR (leaf 24) for a
TD without L2 VMs (spec 13.2; [M-api] tdg_mem_page_attr_rd.c,
tdg_mem_page_attr_wr.c).  The attributes are per L2 VM, so such a TD has
none to change; the leaves still validate and report the page's mapping.

ATTR.RD: RCX = GPA.  The shared bit or bits above GPAW -> OPERAND_INVALID
(RCX), RCX = RDX = 0.  A mapped private page (accepted or pending) -> RCX =
the GPA at its level (4K here) | level | PENDING in bit 62, RDX = 0 (no L1
attributes [uncertain: sept_get_gpa_attr of an L1 entry]).  Nothing mapped
(a shared page, no RAM) -> an EPT-violation TD exit, RIP on the TDCALL.

ATTR.WR: RCX = GPA | level (bits 2:0, 4K..1G), RDX = the new attributes and
R8 = the attribute mask, one 16-bit word per VM.  The module checks VM 0..3
in turn: any nonzero word of RDX -> OPERAND_INVALID(RDX), of R8 ->
OPERAND_INVALID(R8) (VM 0 is the L1 VMM, VMs 1-3 do not exist).  Then the
page info (reserved bits, level, alignment, shared bit, GPAW) ->
OPERAND_INVALID(RCX); a 2M/1G request over 4K pages -> PAGE_SIZE_MISMATCH |
level; nothing mapped -> EPT-violation exit; else RCX = the input | PENDING,
RDX = 0.
"""
from __future__ import annotations

from .. import abi
from ..abi import Status
from ..exits import EptExit
from ..memory import Page
from .common import complete

_MAPPED = (Page.PENDING, Page.PRIVATE)
_NO_OUTPUT = {abi.RCX: 0, abi.RDX: 0}
_VMS = 4


def _private_gpa_ok(module, gpa: int) -> bool:
    gpaw = module.config.gpaw
    return not (gpa >> gpaw or gpa & abi.shared_bit(gpaw))


def handle_rd(module, regs, time_ns: int):
    gpa = regs.get(abi.RCX)
    if not _private_gpa_ok(module, gpa):
        return complete(regs, abi.operand_invalid(abi.RCX), _NO_OUTPUT)
    page = gpa & ~(abi.PAGE_SIZE - 1)
    state = module.memory.state(page)
    if state not in _MAPPED:
        return EptExit(page)
    return complete(regs, Status.SUCCESS, {
        abi.RCX: page | abi.PAGE_ATTR_PENDING * (state == Page.PENDING), abi.RDX: 0})


def handle_wr(module, regs, time_ns: int):
    rcx, attributes, mask = regs.get(abi.RCX), regs.get(abi.RDX), regs.get(abi.R8)
    for vm in range(_VMS):
        if attributes >> 16 * vm & 0xFFFF:
            return complete(regs, abi.operand_invalid(abi.RDX), _NO_OUTPUT)
        if mask >> 16 * vm & 0xFFFF:
            return complete(regs, abi.operand_invalid(abi.R8), _NO_OUTPUT)
    level = rcx & abi.ACCEPT_LEVEL_MASK
    gpa = rcx & ~abi.ACCEPT_LEVEL_MASK
    size = abi.PAGE_SIZE << 9 * level
    if (rcx & abi.ACCEPT_RESERVED_MASK or level > abi.PAGE_ATTR_MAX_LEVEL or gpa % size
            or not _private_gpa_ok(module, gpa)):
        return complete(regs, abi.operand_invalid(abi.RCX), _NO_OUTPUT)
    states = module.memory.pages(gpa, size)
    if level > 0 and any(s in _MAPPED for s in states):
        return complete(regs, Status.PAGE_SIZE_MISMATCH | level, _NO_OUTPUT)
    if level > 0 or states[0] not in _MAPPED:
        return EptExit(gpa)
    return complete(regs, Status.SUCCESS, {
        abi.RCX: rcx | abi.PAGE_ATTR_PENDING * (states[0] == Page.PENDING), abi.RDX: 0})
