"""The waking vCPU of the two-vCPU wake-up explorer (explore.py): a few
instructions tdxsim writes into its own page (layout.WAKER_STUB) that send
vCPU 1 one wake-up through a TDG.VP.VMCALL, then park with interrupts
reported blocked.  No stack, no IDT, no guest code needed.

The ways to wake (spec 5, 4.3): 'ipi' (Instruction.WRMSR of the x2APIC ICR,
what a guest's WRMSR #VE becomes), 'send-ipi' (KVM_HC_SEND_IPI) and 'kick'
(KVM_HC_KICK_CPU, which carries no vector).
"""
from __future__ import annotations

from . import abi
from .errors import TdxsimError
from .layout import WAKER_STUB

TARGET = 1  # the halting vCPU; the waker is vCPU 0
WAYS = ("ipi", "send-ipi", "kick")


def _vmcall(r10: int, r11: int, r12: int = 0, r13: int = 0, r14: int = 0) -> bytes:
    """RCX = 0xFC00 (R10-R15), the registers, RAX = 0, TDCALL."""
    code = b"\xb9" + (0xFC00).to_bytes(4, "little")  # mov $0xfc00, %ecx
    for reg, value in zip(range(abi.R10, abi.R14 + 1), (r10, r11, r12, r13, r14)):
        code += bytes((0x49, 0xB8 + (reg & 7))) + value.to_bytes(8, "little")  # movabs
    return code + b"\x31\xc0" + abi.TDCALL_BYTES  # xor %eax, %eax; tdcall


def stub(way: str, vector: int) -> bytes:
    if way == "ipi":
        send = _vmcall(0, abi.SubFn.WRMSR, abi.MSR_X2APIC_ICR, TARGET << abi.ICR_DEST_SHIFT | vector)
    elif way == "send-ipi":
        send = _vmcall(abi.KvmHc.SEND_IPI, 1 << TARGET, 0, 0, vector)
    elif way == "kick":
        send = _vmcall(abi.KvmHc.KICK_CPU, 0, TARGET)
    else:
        raise TdxsimError(f"unknown way to wake a vCPU {way!r}; choose one of: {', '.join(WAYS)}")
    park = _vmcall(0, abi.SubFn.HLT, 1)  # Instruction.HLT, R12 = 1: stays halted
    return send + park + b"\xeb" + (-(len(park) + 2) & 0xFF).to_bytes(1, "little")  # jmp park


def install(td, way: str, vector: int) -> None:
    """vCPU 0 of `td` (on the engine now) will run the stub from its start."""
    td.vcpu.phys_write(WAKER_STUB, stub(way, vector))
    td.vcpu.regs.rip = WAKER_STUB
    td.vcpu.regs.rflags = 0x2
