"""The vCPU register file over Unicorn, in the spec's GPR order (spec 0.1).

Reads and writes go through Unicorn's C batch API with preallocated ctypes
buffers: the Python binding costs ~2 us per register, the batch call ~1 us for
all sixteen, and every TDCALL needs most of them.
"""
from __future__ import annotations

import ctypes

from unicorn import x86_const as X
from unicorn.unicorn_py3 import unicorn as _binding

from .. import native

GPR_IDS = (X.UC_X86_REG_RAX, X.UC_X86_REG_RCX, X.UC_X86_REG_RDX, X.UC_X86_REG_RBX,
           X.UC_X86_REG_RSP, X.UC_X86_REG_RBP, X.UC_X86_REG_RSI, X.UC_X86_REG_RDI,
           X.UC_X86_REG_R8, X.UC_X86_REG_R9, X.UC_X86_REG_R10, X.UC_X86_REG_R11,
           X.UC_X86_REG_R12, X.UC_X86_REG_R13, X.UC_X86_REG_R14, X.UC_X86_REG_R15)
XMM_IDS = tuple(getattr(X, f"UC_X86_REG_XMM{i}") for i in range(16))
RIP = X.UC_X86_REG_RIP
RFLAGS = X.UC_X86_REG_RFLAGS
RFLAGS_IF = 1 << 9
# An interrupt frame's registers, and those a delivery writes (interrupts.py)
FRAME_IDS = (RIP, X.UC_X86_REG_CS, RFLAGS, X.UC_X86_REG_RSP, X.UC_X86_REG_SS)
ENTRY_IDS = (X.UC_X86_REG_RSP, RFLAGS, RIP)
RFLAGS_RF = 1 << 16


def bare(name: str):
    """Unicorn's C function `name` without the binding's argument conversion
    (a Python call per argument): callers pass ctypes objects, or ints that
    fit a C int.  A new function object: the binding's keeps its argtypes."""
    function = _binding.uclib[name]
    function.restype = ctypes.c_int
    return function


UC_REG_READ, UC_REG_WRITE = bare("uc_reg_read"), bare("uc_reg_write")
UC_REG_READ_BATCH, UC_REG_WRITE_BATCH = bare("uc_reg_read_batch"), bare("uc_reg_write_batch")


def unicorn_entry_points() -> native.Unicorn:
    """Unicorn's C entry points and register ids, for the compiled hooks."""
    lib = _binding.uclib
    ptr = ctypes.c_void_p
    return native.Unicorn(native.uc_emu_stop, *(ctypes.cast(f, ptr) for f in (
        lib.uc_reg_read, lib.uc_reg_write, lib.uc_reg_read_batch, lib.uc_reg_write_batch,
        lib.uc_mem_read)), (ctypes.c_int * 16)(*GPR_IDS), RIP, RFLAGS,
        ctypes.cast(lib.uc_mem_write, ptr), X.UC_X86_REG_RSP, X.UC_X86_REG_CS,
        X.UC_X86_REG_SS, X.UC_X86_REG_IDTR, X.UC_X86_REG_CR3)


class _TableRegister(ctypes.Structure):
    """Unicorn's uc_x86_mmr: IDTR, GDTR, LDTR, TR."""
    _fields_ = [("selector", ctypes.c_uint16), ("base", ctypes.c_uint64),
                ("limit", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


def _batch(ids: tuple[int, ...]):
    """Values, ids and value pointers for one batch call over `ids`."""
    values = (ctypes.c_uint64 * len(ids))()
    base = ctypes.addressof(values)
    return values, (ctypes.c_int * len(ids))(*ids), \
        (ctypes.c_void_p * len(ids))(*(base + 8 * i for i in range(len(ids))))


class RegisterFile:
    """GPRs, XMMs, RIP and RFLAGS of one vCPU."""

    def __init__(self, uc):
        self._uc = uc
        self._handle = uc._uch
        self._vals = (ctypes.c_uint64 * 16)()
        base = ctypes.addressof(self._vals)
        self._ids = (ctypes.c_int * 16)(*GPR_IDS)
        self._ptrs = (ctypes.c_void_p * 16)(*(base + 8 * i for i in range(16)))
        self._read_batch, self._write_batch = UC_REG_READ_BATCH, UC_REG_WRITE_BATCH
        self._one = ctypes.c_uint64()
        self._one_ptr = ctypes.byref(self._one)
        self._read_one = UC_REG_READ
        self._mem_read = _binding.uclib.uc_mem_read
        self._code = ctypes.create_string_buffer(16)
        self._write_one = UC_REG_WRITE
        self._table = _TableRegister()
        self._frame, self._frame_ids, self._frame_ptrs = _batch(FRAME_IDS)
        self._entry, self._entry_ids, self._entry_ptrs = _batch(ENTRY_IDS)
        self._table_ptr = ctypes.byref(self._table)

    def gprs(self) -> list[int]:
        """All sixteen GPRs in spec order."""
        self._read_batch(self._handle, self._ids, self._ptrs, 16)
        return self._vals[:]

    def set_gprs(self, values: dict[int, int]) -> None:
        """Write GPRs given as {spec index: value}."""
        n = 0
        for index, value in values.items():
            self._ids[n] = GPR_IDS[index]
            self._vals[n] = value & 0xFFFF_FFFF_FFFF_FFFF
            n += 1
        self._write_batch(self._handle, self._ids, self._ptrs, n)
        self._ids[:] = GPR_IDS

    def get(self, index: int) -> int:
        self._read_one(self._handle, GPR_IDS[index], self._one_ptr)
        return self._one.value

    def set(self, index: int, value: int) -> None:
        self._one.value = value & 0xFFFF_FFFF_FFFF_FFFF
        self._write_one(self._handle, GPR_IDS[index], self._one_ptr)

    def peek_code(self, address: int, size: int = 4) -> bytes:
        """Up to 16 bytes at a backing (physical) address, b"" if unmapped:
        the hot path's code reads (is it a TDCALL?), without the binding's
        per-call overhead."""
        if self._mem_read(self._handle, ctypes.c_uint64(address), self._code, size):
            return b""
        return self._code.raw[:size]

    def frame(self) -> tuple[int, int, int, int, int]:
        """RIP, CS, RFLAGS, RSP and SS (selectors) in one call: an interrupt
        frame's values."""
        # (Unicorn writes 16 bits of a selector: the masks below drop the rest)
        self._read_batch(self._handle, self._frame_ids, self._frame_ptrs, len(FRAME_IDS))
        rip, cs, rflags, rsp, ss = self._frame
        return rip, cs & 0xFFFF, rflags, rsp, ss & 0xFFFF

    def enter(self, rsp: int, rflags: int, rip: int) -> None:
        """RSP, RFLAGS and RIP, in that order, in one call: entering a handler."""
        self._entry[:] = (rsp & 0xFFFF_FFFF_FFFF_FFFF, rflags, rip)
        self._write_batch(self._handle, self._entry_ids, self._entry_ptrs, len(ENTRY_IDS))

    def xmm(self, index: int) -> int:
        return self._uc.reg_read(XMM_IDS[index])

    def set_xmm(self, index: int, value: int) -> None:
        self._uc.reg_write(XMM_IDS[index], value)

    def msr(self, index: int) -> int:
        """The vCPU's own MSR as Unicorn models it (0 for MSRs it lacks)."""
        return self._uc.msr_read(index)

    def set_msr(self, index: int, value: int) -> None:
        self._uc.msr_write(index, value)

    @property
    def cpl(self) -> int:
        return self.selector(X.UC_X86_REG_CS) & 3

    def selector(self, segment: int) -> int:
        """A segment register's selector (the binding's reg_read costs ~5 us)."""
        self._one.value = 0
        self._read_one(self._handle, segment, self._one_ptr)
        return self._one.value & 0xFFFF

    def idtr(self) -> tuple[int, int]:
        """(base, limit) of the IDT."""
        self._read_one(self._handle, X.UC_X86_REG_IDTR, self._table_ptr)
        return self._table.base, self._table.limit

    @property
    def rip(self) -> int:
        self._read_one(self._handle, RIP, self._one_ptr)
        return self._one.value

    @rip.setter
    def rip(self, value: int) -> None:
        self._one.value = value
        self._write_one(self._handle, RIP, self._one_ptr)

    @property
    def cr3(self) -> int:
        self._read_one(self._handle, X.UC_X86_REG_CR3, self._one_ptr)
        return self._one.value

    @property
    def rflags(self) -> int:
        self._read_one(self._handle, RFLAGS, self._one_ptr)
        return self._one.value

    @rflags.setter
    def rflags(self, value: int) -> None:
        self._one.value = value
        self._write_one(self._handle, RFLAGS, self._one_ptr)
