"""Instruction.RDMSR (R11 = 31: R12 = index -> R11 = EDX:EAX) and
Instruction.WRMSR (R11 = 32: R12 = index, R13 = value) (spec 4.3, 6.2).

KVM answers INVALID_OPERAND (instead of injecting #GP) for an MSR outside its
emulated set and for a write to a read-only MSR (APIC_BASE, EFER, FEAT_CTL).

Each MSR's value and flags live in one native table (`MsrStore.state`), which
the compiled path (host/msr.c) reads and writes too; an MSR with Python
callbacks (`read`, `on_write`) is served by Python, except IA32_TSC, whose
`read` is the clock's own `now`, which C reads through the same clock, and
the local APIC's registers as its install_msrs defines them, which C serves
on the APIC's native state (devices/lapic.py compiled_register).
"""
from __future__ import annotations

import ctypes
from types import MappingProxyType
from typing import Callable

from .. import abi, native
from ..abi import VmcallStatus
from ..clock import Clock
from ..devices import lapic
from ..exits import VmExit, VmResume
from . import ipi


class Msr:
    """One MSR: `read` computes its value (the virtual TSC), `on_write` sees
    each accepted write; a write with a `reserved` bit set fails."""

    def __init__(self, value: int = 0, writable: bool = True,
                 read: Callable[[], int] | None = None,
                 on_write: Callable[[int], None] | None = None,
                 cell: native.Msr | None = None, reserved: int = 0):
        self._cell = cell if cell is not None else native.Msr()
        self._read, self._on_write = read, on_write
        self.value, self.writable, self.reserved = value, writable, reserved
        self._sync()

    @property
    def reserved(self) -> int:
        return self._cell.reserved

    @reserved.setter
    def reserved(self, bits: int) -> None:
        self._cell.reserved = bits & abi.MASK64

    @property
    def value(self) -> int:
        return self._cell.value

    @value.setter
    def value(self, value: int) -> None:
        self._cell.value = value & abi.MASK64

    @property
    def writable(self) -> bool:
        return bool(self._cell.flags & native.MSR_WRITABLE)

    @writable.setter
    def writable(self, writable: bool) -> None:
        self._cell.flags = self._cell.flags & ~native.MSR_WRITABLE | bool(writable)

    @property
    def read(self) -> Callable[[], int] | None:
        return self._read

    @read.setter
    def read(self, read: Callable[[], int] | None) -> None:
        self._read = read
        self._sync()

    @property
    def on_write(self) -> Callable[[int], None] | None:
        return self._on_write

    @on_write.setter
    def on_write(self, on_write: Callable[[int], None] | None) -> None:
        self._on_write = on_write
        self._sync()

    def _detach(self) -> None:
        cell, self._cell = self._cell, native.Msr()
        ctypes.pointer(self._cell)[0] = cell

    def _sync(self) -> None:
        """Tell C who serves this MSR: a clock's `now` it reads itself, an
        APIC register it serves on the APIC's state, or Python."""
        cell = self._cell
        clock = getattr(self._read, "__self__", None)
        tsc = type(clock) is Clock and getattr(self._read, "__func__", None) is Clock.now
        cell.clock = ctypes.pointer(clock.state) if tsc else None
        apic = lapic.compiled_register(cell.key - 1, self._read, self._on_write) \
            if cell.key else None
        cell.apic = ctypes.pointer(apic) if apic is not None else None
        python = apic is None and (self._on_write is not None
                                   or (self._read is not None and not tsc))
        cell.flags = cell.flags & ~native.MSR_PYTHON | native.MSR_PYTHON * python


def default_msrs(tsc: Callable[[], int] | None) -> dict[int, dict]:
    # x2APIC enabled, BSP, APIC at 0xFEE00000 (SDM vol. 3, 11.4.4)
    apic_base = 0xFEE0_0000 | 1 << 8 | 1 << 10 | 1 << 11
    return {
        abi.MSR_IA32_TSC: dict(read=tsc),  # the virtual clock: 1 tick per ns
        abi.MSR_IA32_APIC_BASE: dict(value=apic_base, writable=False),
        abi.MSR_IA32_FEATURE_CONTROL: dict(value=0x5, writable=False),  # locked, VMX in SMX off
        abi.MSR_IA32_MISC_ENABLE: dict(value=0x1),  # fast strings
        abi.MSR_EFER: dict(value=0xD01, writable=False),  # SCE, LME, LMA, NXE
        abi.MSR_IA32_TSC_DEADLINE: dict(),
        abi.MSR_X2APIC_LVT_TIMER: dict(value=0x10000),  # masked at reset
        abi.MSR_X2APIC_EOI: dict(),
        0x277: dict(value=0x0007040600070406),  # IA32_PAT reset value
    }


class MsrStore:
    """tsc: what IA32_TSC reads (the host passes its clock's now).  `msrs`
    is a read-only view; `define` adds or replaces an MSR."""

    def __init__(self, tsc: Callable[[], int] | None = None):
        self.state = native.Msrs()
        self._msrs: dict[int, Msr] = {}
        self.msrs = MappingProxyType(self._msrs)
        self.complete = True  # every MSR has its slot in `state` (else C leaves them to Python)
        for index, fields in default_msrs(tsc).items():
            self.define(index, **fields)

    def define(self, index: int, value: int = 0, writable: bool = True, **kw) -> Msr:
        slot = _slot(self.state, index) if type(index) is int and 0 <= index < 1 << 32 else None
        if slot is None:
            self.complete = False
        cell = self.state.slots[slot] if slot is not None else None
        if cell is not None:
            cell.key = index + 1
        if index in self._msrs:  # the MSR it replaces keeps its value to itself
            self._msrs[index]._detach()
        self._msrs[index] = msr = Msr(value, writable, cell=cell, **kw)
        return msr

    def read(self, index: int) -> int | None:
        msr = self._msrs.get(index)
        if msr is None:
            return None
        return msr.read() if msr.read else msr.value

    def write(self, index: int, value: int) -> bool:
        msr = self._msrs.get(index)
        if msr is None or not msr.writable or value & msr.reserved:
            return False
        msr.value = value
        if msr.on_write:
            msr.on_write(value)
        return True


def _slot(state: native.Msrs, index: int) -> int | None:
    """Where MSR `index` lives in the table, probed as host/msr.c finds it;
    None when the table is full."""
    slot = (index ^ index >> 9) % native.MSR_SLOTS
    for _ in range(native.MSR_SLOTS):
        if state.slots[slot].key in (0, index + 1):
            return slot
        slot = (slot + 1) % native.MSR_SLOTS
    return None


def handle_rdmsr(host, exit: VmExit) -> VmResume:
    value = host.vcpus[exit.vcpu].msrs.read(exit.r12 & 0xFFFF_FFFF)
    if value is None:
        return VmResume.status(VmcallStatus.INVALID_OPERAND)
    return VmResume.status(VmcallStatus.SUCCESS, r11=value)


def handle_wrmsr(host, exit: VmExit) -> VmResume:
    """The x2APIC ICR sends an IPI (ipi.py) and keeps the value, less the
    busy bit, for reads."""
    index, value = exit.r12 & 0xFFFF_FFFF, exit.r13
    if index == abi.MSR_X2APIC_ICR:
        if not ipi.write_icr(host, exit.vcpu, value):
            return VmResume.status(VmcallStatus.INVALID_OPERAND)
        value &= ~abi.ICR_BUSY
    if not host.vcpus[exit.vcpu].msrs.write(index, value):
        return VmResume.status(VmcallStatus.INVALID_OPERAND)
    return VmResume.status(VmcallStatus.SUCCESS)
