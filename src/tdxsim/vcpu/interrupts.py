"""Interrupt and exception delivery through the guest's IDT, done by hand
because Unicorn has no injection API (spec 8.3, 12; Intel SDM vol. 3, 6.14).

The vCPU starts with a flat GDT that tdxsim provides (64-bit code selector
0x08, data selector 0x10) so that the guest's IRETQ finds valid descriptors.
"""
from __future__ import annotations

import ctypes
import struct

from unicorn import x86_const as X

from .. import layout, native
from .regs import RFLAGS_IF

KERNEL_CS = 0x08
KERNEL_SS = 0x10
GDT = struct.pack("<QQQ", 0, 0x00AF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF)
GATE_INTERRUPT = 0xE
GATE_TRAP = 0xF
RFLAGS_TF = 1 << 8
RFLAGS_NT = 1 << 14
RFLAGS_RF = 1 << 16
_FRAME = {5: "<5Q", 6: "<6Q"}  # RIP, CS, RFLAGS, RSP, SS; an error code first


class NativeDelivery:
    """Delivery through the IDT in C (vcpu/deliver.c) for one vCPU, where
    it can do all of it: (handler, the RIP saved in the frame).  None:
    nothing changed, enter_handler's Python must do it."""

    def __init__(self, vcpu):
        self.vcpu = vcpu
        self._function = native.library().tdxsim_deliver
        self._function.restype = ctypes.c_bool  # (no argtypes: each costs a call per call)
        self._delivery = native.Delivery()
        self._args = (ctypes.byref(vcpu.fast), vcpu.uc._uch, ctypes.byref(self._delivery))

    def __call__(self, vector: int, error_code: int | None = None) -> tuple[int, int] | None:
        if self.vcpu.mmu.mixed_modes:  # (its walks' key is not CR3 alone: mmu.py)
            return None
        d = self._delivery
        d.vector, d.has_error, d.error_code = vector, error_code is not None, error_code or 0
        if not self._function(*self._args):
            return None
        return d.handler, d.rip


class DeliveryError(Exception):
    """The guest has no usable IDT entry for the vector."""


def install_gdt(vcpu, address: int) -> None:
    vcpu.write(address, GDT)
    vcpu.uc.reg_write(X.UC_X86_REG_GDTR, (0, address, len(GDT) - 1, 0))
    vcpu.uc.reg_write(X.UC_X86_REG_CS, KERNEL_CS)
    vcpu.uc.reg_write(X.UC_X86_REG_SS, KERNEL_SS)
    for seg in (X.UC_X86_REG_DS, X.UC_X86_REG_ES):
        vcpu.uc.reg_write(seg, KERNEL_SS)


def install_idt_stub(vcpu, vector: int) -> None:
    """For a guest without an IDT of its own: one whose entry for `vector`
    is an interrupt gate to an IRETQ, so that a tool's injected interrupt
    (the checker's, the explorer's) is delivered and returns at once."""
    if vcpu.uc.reg_read(X.UC_X86_REG_IDTR)[1]:
        return
    handler = layout.STUB_HANDLER
    vcpu.phys_write(handler, b"\x48\xcf")  # iretq
    gate = (handler & 0xFFFF | KERNEL_CS << 16 | (0x80 | GATE_INTERRUPT) << 40
            | (handler >> 16 & 0xFFFF) << 48)
    vcpu.phys_write(layout.STUB_IDT + 16 * vector, gate.to_bytes(8, "little") + bytes(8))
    vcpu.uc.reg_write(X.UC_X86_REG_IDTR, (0, layout.STUB_IDT, 256 * 16 - 1, 0))


def read_gate(vcpu, vector: int) -> tuple[int, int]:
    """(handler address, gate type) of IDT[vector], or DeliveryError."""
    base, limit = vcpu.regs.idtr()
    if base == 0 and limit == 0:
        raise DeliveryError(f"vector {vector} arrived but the guest has no IDT (no lidt)")
    if 16 * vector + 15 > limit:
        raise DeliveryError(f"vector {vector} is beyond the IDT limit {limit:#x}")
    raw = vcpu.read_if(base + 16 * vector, 16)
    if raw is None:
        raise DeliveryError(f"the IDT entry for vector {vector} at {base + 16 * vector:#x} "
                            "is not in guest memory")
    low, selector, ist, attr, mid, high = struct.unpack("<HHBBHI", raw[:12])
    kind = attr & 0xF
    if not attr & 0x80 or kind not in (GATE_INTERRUPT, GATE_TRAP):
        raise DeliveryError(f"IDT entry {vector} is not a present 64-bit interrupt or trap "
                            f"gate (attributes {attr:#04x})")
    if ist & 7:
        raise DeliveryError(f"IDT entry {vector} uses IST {ist & 7}; tdxsim does not model "
                            "a TSS, so IST stacks are not available")
    return low | mid << 16 | high << 32, kind


def is_iret(vcpu, address: int | None) -> bool:
    """Whether the instruction at `address` is IRET/IRETQ (CF, 48 CF)."""
    if address is None:
        return False
    code = vcpu.fetched(address, 2)
    return code[:1] == b"\xcf" or code == b"\x48\xcf"


def deliver(vcpu, vector: int, error_code: int | None = None) -> int:
    """Push the 64-bit interrupt frame and enter the handler; returns its address."""
    return enter_handler(vcpu, vector, error_code)[0]


def enter_handler(vcpu, vector: int, error_code: int | None = None) -> tuple[int, int]:
    """deliver(): (the handler's address, the RIP saved in the frame).  In
    C (vcpu/deliver.c) where it can do all of it; this is the reference."""
    done = vcpu.deliver_natively(vector, error_code)
    if done is not None:
        return done
    return _enter_handler(vcpu, vector, error_code)


def _enter_handler(vcpu, vector: int, error_code: int | None = None) -> tuple[int, int]:
    handler, kind = read_gate(vcpu, vector)
    frame = vcpu.regs.frame()  # RIP, CS, RFLAGS, RSP, SS
    rflags, rsp = frame[2], frame[3]
    if error_code is not None:
        frame = (error_code, *frame)
    data = struct.pack(_FRAME[len(frame)], *frame)
    new_rsp = (rsp & ~0xF) - len(data)  # the CPU aligns RSP to 16 first
    if not vcpu.write_if(new_rsp, data):  # (one walk where it can be written, as usual)
        if not vcpu.readable(new_rsp, len(data)):
            raise DeliveryError(f"the interrupt frame at {new_rsp:#x} is outside guest "
                                "memory (a triple fault on hardware)")
        vcpu.write(new_rsp, data)
    cleared = RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | (RFLAGS_IF if kind == GATE_INTERRUPT else 0)
    vcpu.regs.enter(new_rsp, rflags & ~cleared, handler)
    return handler, frame[-5]
