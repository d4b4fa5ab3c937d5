"""Instruction.RDMSR (R11 = 31: R12 = index -> R11 = EDX:EAX) and
Instruction.WRMSR (R11 = 32: R12 = index, R13 = value) (spec 4.3, 6.2).

KVM answers INVALID_OPERAND (instead of injecting #GP) for an MSR outside its
emulated set and for a write to a read-only MSR (APIC_BASE, EFER, FEAT_CTL).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .. import abi
from ..abi import VmcallStatus
from ..exits import VmExit, VmResume


@dataclass
class Msr:
    value: int = 0
    writable: bool = True
    read: Callable[[], int] | None = None  # computed MSRs (the virtual TSC)
    on_write: Callable[[int], None] | None = None


def default_msrs(tsc: Callable[[], int] | None) -> dict[int, Msr]:
    # x2APIC enabled, BSP, APIC at 0xFEE00000 (SDM vol. 3, 11.4.4)
    apic_base = 0xFEE0_0000 | 1 << 8 | 1 << 10 | 1 << 11
    return {
        abi.MSR_IA32_TSC: Msr(0, read=tsc),  # the virtual clock: 1 tick per ns
        abi.MSR_IA32_APIC_BASE: Msr(apic_base, writable=False),
        abi.MSR_IA32_FEATURE_CONTROL: Msr(0x5, writable=False),  # locked, VMX in SMX off
        abi.MSR_IA32_MISC_ENABLE: Msr(0x1),  # fast strings
        abi.MSR_EFER: Msr(0xD01, writable=False),  # SCE, LME, LMA, NXE
        abi.MSR_IA32_TSC_DEADLINE: Msr(0),
        abi.MSR_X2APIC_LVT_TIMER: Msr(0x10000),  # masked at reset
        abi.MSR_X2APIC_EOI: Msr(0),
        0x277: Msr(0x0007040600070406),  # IA32_PAT reset value
    }


class MsrStore:
    """tsc: what IA32_TSC reads (the host passes its clock's now)."""

    def __init__(self, tsc: Callable[[], int] | None = None):
        self.msrs = default_msrs(tsc)

    def define(self, index: int, value: int = 0, writable: bool = True, **kw) -> Msr:
        self.msrs[index] = msr = Msr(value, writable, **kw)
        return msr

    def read(self, index: int) -> int | None:
        msr = self.msrs.get(index)
        if msr is None:
            return None
        return msr.read() if msr.read else msr.value

    def write(self, index: int, value: int) -> bool:
        msr = self.msrs.get(index)
        if msr is None or not msr.writable:
            return False
        msr.value = value
        if msr.on_write:
            msr.on_write(value)
        return True


def handle_rdmsr(host, exit: VmExit) -> VmResume:
    value = host.msrs.read(exit.r12 & 0xFFFF_FFFF)
    if value is None:
        return VmResume.status(VmcallStatus.INVALID_OPERAND)
    return VmResume.status(VmcallStatus.SUCCESS, r11=value)


def handle_wrmsr(host, exit: VmExit) -> VmResume:
    if not host.msrs.write(exit.r12 & 0xFFFF_FFFF, exit.r13):
        return VmResume.status(VmcallStatus.INVALID_OPERAND)
    return VmResume.status(VmcallStatus.SUCCESS)
