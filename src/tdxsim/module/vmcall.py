"""TDG.VP.VMCALL (leaf 0): the hypercall transport (spec 3; [M-vmcall], [M-enter]).

The module validates the RCX control word, shows the host only the selected
registers (all others read as 0), and on resume takes back only the selected
registers; RAX = 0 and RCX unchanged.  It never looks at R10/R11.
"""
from __future__ import annotations

from functools import lru_cache

from .. import abi
from .common import complete
from ..events import VmcallRecord
from ..exits import VmExit


def control_error(rcx: int, no_rbp_mod: bool) -> str | None:
    """Which of the module's checks on RCX before any TD exit (spec 3.2)
    refuses it: 'reserved' (bits 63:32 set), 'never' (RAX, RCX or RSP
    selected), 'rbp' (RBP selected under NO_RBP_MOD); None: it passes.
    The one statement of the rule: module/vmcall.c mirrors it (tested on
    every select), and the checker judges stubs by it."""
    select = rcx & abi.GPR_SELECT_MASK
    if rcx & abi.RCX_RESERVED_MASK:
        return "reserved"
    if select & abi.NEVER_SELECTABLE:
        return "never"
    if no_rbp_mod and select & abi.RBP_SELECT:
        return "rbp"
    return None


def invalid_control(rcx: int, no_rbp_mod: bool) -> bool:
    return control_error(rcx, no_rbp_mod) is not None


_NO_XMMS = (0,) * 16


@lru_cache(maxsize=None)
def _selected(gpr_select: int) -> tuple[int, ...]:
    return tuple(i for i in range(16) if gpr_select >> i & 1)


def handle(module, regs, time_ns: int):
    gprs = regs.gprs()
    rcx = gprs[abi.RCX]
    if invalid_control(rcx, module.config.no_rbp_mod):
        return complete(regs, abi.operand_invalid(abi.RCX))
    if module.vmcall_failure:  # injected: only RAX is written (spec 3.2)
        return complete(regs, module.vmcall_failure)
    gpr_select = rcx & abi.GPR_SELECT_MASK
    xmm_select = rcx >> abi.XMM_SELECT_SHIFT & abi.XMM_SELECT_MASK
    view = [0] * 16
    for i in _selected(gpr_select):
        view[i] = gprs[i]
    view[abi.RAX] = abi.EXIT_REASON_TDCALL  # the VMM's exit reason and qualification
    view[abi.RCX] = rcx & 0xFFFF_FFFF  # GPR/XMM select; VM index (33:32) is 0
    view = tuple(view)
    xmms = tuple(regs.xmm(j) if xmm_select >> j & 1 else 0 for j in range(16)) \
        if xmm_select else _NO_XMMS
    rip = regs.rip
    regs.rip = rip + abi.TDCALL_LEN  # trap-like: RIP moves before the VMM runs
    module.clock.exit_to_host()
    resume = module.host.handle(VmExit(gpr_select, xmm_select, view, xmms, time_ns,
                                        module.vp.index))
    taken = {i: v & abi.MASK64 for i, v in resume.gprs.items() if gpr_select >> i & 1}
    regs.set_gprs({**taken, abi.RAX: abi.Status.SUCCESS})
    for j, value in resume.xmms.items():
        if xmm_select >> j & 1:
            regs.set_xmm(j, value)
    module.record(VmcallRecord(time_ns, rip, gpr_select, xmm_select, view, taken,
                               resume.action))
    return resume.action
