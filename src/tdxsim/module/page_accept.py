"""TDG.MEM.PAGE.ACCEPT (leaf 6): RCX = GPA | level in bits 2:0, 0 = 4K,
1 = 2M (spec 1.3; [M-api] tdg_mem_page_accept.c, helpers.c).

Operand checks, each OPERAND_INVALID(RCX): reserved bits 11:3 or 63:52, a
level above 2M (the module refuses 1G too; Linux then falls back to 2M), a
GPA not aligned to the level, the shared bit, bits above GPAW.

tdxsim's Secure EPT maps private memory in 4 KiB pages only, as KVM does
(tdx_gmem_private_max_mapping_level() is 4K, and TD build adds 4K pages).
The module walks to the requested level:
- 4K: a pending page is zeroed and becomes private (SUCCESS); an accepted
  one gives the warning PAGE_ALREADY_ACCEPTED, level 0 in bits 31:0;
- 2M over a range holding any mapped (pending or accepted) 4K page: the walk
  ends on a non-leaf entry, PAGE_SIZE_MISMATCH with level 1 in bits 31:0
  (checked before ALREADY_ACCEPTED), and Linux retries with 4K;
- nothing mapped (a shared page, or no RAM): an EPT-violation TD exit with
  RIP still on the TDCALL.  KVM and QEMU make a shared page private and map
  it 4K (host/ept.py), so the TDCALL runs again: 4K then succeeds, 2M gives
  SIZE_MISMATCH.  Without RAM the TD stops.
Accepting one pending 2M leaf (SUCCESS, interruptible every 4K) needs a host
that maps 2M private pages, which KVM does not yet do: not modelled.
"""
from __future__ import annotations

from .. import abi
from ..abi import Status
from ..exits import EptExit
from ..memory import Page
from .common import complete

_MAPPED = (Page.PENDING, Page.PRIVATE)


def handle(module, regs, time_ns: int):
    rcx = regs.get(abi.RCX)
    level = rcx & abi.ACCEPT_LEVEL_MASK
    gpa = rcx & ~abi.ACCEPT_LEVEL_MASK
    size = abi.PAGE_SIZE << 9 * level
    gpaw = module.config.gpaw
    if (rcx & abi.ACCEPT_RESERVED_MASK or level > abi.ACCEPT_MAX_LEVEL or gpa % size
            or gpa >> gpaw or gpa & abi.shared_bit(gpaw)):
        return complete(regs, abi.operand_invalid(abi.RCX))
    states = module.memory.pages(gpa, size)
    if level == 0 and states[0] == Page.PENDING:
        module.memory.set_state(gpa, size, Page.PRIVATE)
        return complete(regs, Status.SUCCESS)
    if level == 0 and states[0] == Page.PRIVATE:
        return complete(regs, Status.PAGE_ALREADY_ACCEPTED | level)
    if level > 0 and any(s in _MAPPED for s in states):
        return complete(regs, Status.PAGE_SIZE_MISMATCH | level)
    return EptExit(gpa)
