"""RDMSR/WRMSR inside a TD (spec 8.1; [M-msr] td_msr_access.c,
msr_config_lookup.c): per MSR and direction the module lets the access run
natively, injects #GP(0), or raises #VE so the guest can ask the VMM.

`MsrPolicy` holds that choice and is configurable per TD
(`td.module.msr_policy.set(index, read=..., write=...)`).  Its defaults come
from the module's lookup table for a TD without REDUCE_VE, PERFMON or extra
XFAM features: "no exit" bits are NATIVE, MSR_ACTION_VE and GP_OR_VE are VE,
MSR_ACTION_GP and the PMU MSRs are GP, and every MSR the table does not list
is VE.  [uncertain] MSRs the module emulates itself with its own values
(MISC_ENABLE and ARCH_CAPABILITIES reads, VMX capability MSRs, DEBUGCTL,
XSS) are VE here, as tdxsim has no values for them.

Native accesses use the vCPU's own state (Unicorn), except the TSC (virtual
time), the APIC-virtualized x2APIC registers (apicv.py) and EFER writes,
where the module allows only SCE to change (else #VE).
"""
from __future__ import annotations

from .. import abi
from ..errors import TdxsimError
from . import apicv
from .ve import GP_VECTOR, VeInfo

NATIVE, VE, GP = "native", "ve", "gp"
EFER_SCE = 1 << 0
EFER_LMA = 1 << 10

# (first, last, read, write)
DEFAULT_RULES = (
    (0x10, 0x10, NATIVE, VE),  # IA32_TSC: virtual TSC; writes #VE
    (0x48, 0x49, NATIVE, NATIVE),  # SPEC_CTRL, PRED_CMD
    (0x8C, 0x8F, GP, GP), (0x98, 0x9B, GP, GP), (0x9E, 0x9E, GP, GP),  # SGX, WBINVDP, SMM
    (0xC1, 0xC8, GP, GP), (0x186, 0x18D, GP, GP), (0x1A6, 0x1A7, GP, GP),  # PMU (PERFMON off)
    (0x10B, 0x10B, NATIVE, NATIVE),  # FLUSH_CMD
    (0x174, 0x176, NATIVE, NATIVE),  # SYSENTER_CS/ESP/EIP
    (0x195, 0x195, GP, GP), (0x276, 0x276, GP, GP),
    (0x277, 0x277, NATIVE, NATIVE),  # PAT
    (0x309, 0x310, GP, GP), (0x38D, 0x392, GP, GP), (0x3F1, 0x3F7, GP, GP),  # PMU
    (0x4C1, 0x4C8, GP, GP), (0x500, 0x500, GP, GP),
    (0x600, 0x600, NATIVE, NATIVE),  # DS_AREA
    (0x800, 0x801, GP, GP), (0x804, 0x807, GP, GP), (0x829, 0x82E, GP, GP),  # reserved x2APIC
    (0x831, 0x831, GP, GP), (0x840, 0x8FF, GP, GP),
    (apicv.TPR, apicv.TPR, NATIVE, NATIVE), (apicv.PPR, apicv.EOI, NATIVE, NATIVE),
    (apicv.ISR, apicv.IRR + 7, NATIVE, NATIVE), (apicv.SELF_IPI, apicv.SELF_IPI, NATIVE, NATIVE),
    (abi.MSR_EFER, abi.MSR_EFER, NATIVE, NATIVE),  # writes: SCE only
    (0xC000_0081, 0xC000_0082, NATIVE, NATIVE), (0xC000_0084, 0xC000_0084, NATIVE, NATIVE),  # STAR, LSTAR, FMASK
    (0xC000_0100, 0xC000_0103, NATIVE, NATIVE),  # FS/GS/KERNEL_GS_BASE, TSC_AUX
)
_APICV = {apicv.TPR, apicv.PPR, apicv.EOI, apicv.SELF_IPI, *range(apicv.ISR, apicv.IRR + 8)}


class MsrPolicy:
    def __init__(self, rules=DEFAULT_RULES):
        self.rules = list(rules)

    def set(self, first: int, last: int | None = None, read: str = VE, write: str = VE) -> None:
        """Choose the action for MSRs first..last; later rules win."""
        if read not in (NATIVE, VE, GP) or write not in (NATIVE, VE, GP):
            raise TdxsimError(f"unknown MSR action {read!r}/{write!r} for MSR {first:#x}: "
                              f"choose {NATIVE!r}, {VE!r} or {GP!r}")
        self.rules.append((first, first if last is None else last, read, write))

    def action(self, index: int, write: bool) -> str:
        for first, last, read_action, write_action in reversed(self.rules):
            if first <= index <= last:
                return write_action if write else read_action
        return VE


def intercept(module, insn, regs, time_ns: int):
    """VeInfo for #VE, GP_VECTOR for #GP(0), or None once emulated natively."""
    write = insn.kind == "wrmsr"
    index = regs.get(abi.RCX) & 0xFFFF_FFFF
    reason = abi.EXIT_REASON_MSR_WRITE if write else abi.EXIT_REASON_MSR_READ
    action = module.msr_policy.action(index, write)
    if action == GP:
        return GP_VECTOR
    if action == VE:
        return VeInfo(reason, instr_len=insn.length)
    if write:
        value = (regs.get(abi.RDX) & 0xFFFF_FFFF) << 32 | regs.get(abi.RAX) & 0xFFFF_FFFF
        outcome = _write(module, regs, index, value, reason, insn.length)
        if outcome is not None:
            return outcome
    else:
        value = _read(module, regs, index, time_ns)
        if value is None:
            return GP_VECTOR
        regs.set_gprs({abi.RAX: value & 0xFFFF_FFFF, abi.RDX: value >> 32})
    regs.rip = regs.rip + insn.length
    return None


def _read(module, regs, index: int, time_ns: int) -> int | None:
    if index == abi.MSR_IA32_TSC:
        return time_ns  # the 1 GHz virtual TSC
    if index in _APICV:
        return module.apic.read(index)
    return regs.msr(index)


def _write(module, regs, index: int, value: int, reason: int, length: int):
    if index in _APICV:
        return None if module.apic.write(index, value) else GP_VECTOR
    if index == abi.MSR_EFER:
        old = regs.msr(index)
        value = value & ~EFER_LMA | old & EFER_LMA  # LMA is read-only
        if (value ^ old) & ~EFER_SCE:
            return VeInfo(reason, instr_len=length)  # the module's "unsupported feature" #VE
    regs.set_msr(index, value)
    return None
