"""Raw register and memory moves for tools that set up and observe thousands
of runs (the checker): one Unicorn C call each way, with ready-made ctypes
arguments.  The Python binding costs ~2 us per register and converts its
arguments on every call (~0.3 us); a run makes six of these calls.
"""
from __future__ import annotations

import ctypes
from struct import Struct

from unicorn import UcError

from .mmu import RAW_MEM_READ as UC_MEM_READ, RAW_MEM_WRITE as UC_MEM_WRITE
from .regs import GPR_IDS, RFLAGS, RIP, UC_REG_READ_BATCH, UC_REG_WRITE_BATCH, XMM_IDS


class RegisterBank:
    """The registers a run sets and observes, moved in one batch call each
    way.  Buffer layout: GPRs in spec order, RFLAGS, RIP, XMM0..15."""
    ORDER = GPR_IDS + (RFLAGS, RIP) + XMM_IDS
    GPRS_FLAGS_RIP = Struct("<18Q")
    GPRS_AND_FLAGS = Struct("<17Q")
    XMM_AT = 18 * 8

    def __init__(self, vcpu):
        self._uc = vcpu.uc._uch
        self._buf = ctypes.create_string_buffer(self.XMM_AT + 256)
        self._bytes = memoryview(self._buf).cast("B")  # filled without a foreign call
        base = ctypes.addressof(self._buf)
        offsets = [8 * i for i in range(18)] + [self.XMM_AT + 16 * j for j in range(16)]
        self._ids = (ctypes.c_int * len(self.ORDER))(*self.ORDER)
        self._ptrs = (ctypes.c_void_p * len(self.ORDER))(*(base + at for at in offsets))
        # The same slots without RIP, which td.call_prepared sets: GPRs, RFLAGS, XMMs.
        self._entry_ids = (ctypes.c_int * 33)(*(self.ORDER[:17] + self.ORDER[18:]))
        self._entry_ptrs = (ctypes.c_void_p * 33)(*(self._ptrs[:17] + self._ptrs[18:]))
        self._all, self._entry = ctypes.c_int(18), ctypes.c_int(33)  # register counts

    @staticmethod
    def entry_image(gprs: list[int], rflags: int, xmm: bytes) -> bytes:
        """What `load` writes: GPRs, RFLAGS, (RIP, unused) and the XMMs."""
        return RegisterBank.GPRS_FLAGS_RIP.pack(*gprs, rflags, 0) + xmm

    def load(self, image: bytes) -> None:
        self._bytes[:len(image)] = image
        UC_REG_WRITE_BATCH(self._uc, self._entry_ids, self._entry_ptrs, self._entry)

    def gprs_flags_rip(self) -> tuple[tuple[int, ...], int, int]:
        UC_REG_READ_BATCH(self._uc, self._ids, self._ptrs, self._all)
        values = self.GPRS_FLAGS_RIP.unpack_from(self._buf)
        return values[:16], values[16], values[17]

    def gprs_flags_xmms(self) -> tuple[tuple[int, ...], int, bytes]:
        UC_REG_READ_BATCH(self._uc, self._entry_ids, self._entry_ptrs, self._entry)
        values = self.GPRS_AND_FLAGS.unpack_from(self._buf)
        return values[:16], values[16], self._buf.raw[self.XMM_AT:]


class MemoryRange:
    """A fixed range of guest-physical (backing) memory, read and written
    straight through Unicorn: vcpu.phys_read allocates two buffers a call."""

    def __init__(self, vcpu, address: int, size: int):
        self._uc = vcpu.uc._uch
        self._address, self._size = ctypes.c_uint64(address), ctypes.c_size_t(size)
        self._buf = ctypes.create_string_buffer(size)

    def read(self) -> bytes:
        status = UC_MEM_READ(self._uc, self._address, self._buf, self._size)
        if status:
            raise UcError(status)
        return self._buf.raw

    def write(self, data: bytes) -> None:
        if len(data) != self._size.value:
            raise ValueError(f"{len(data)} bytes for a range of {self._size.value}")
        status = UC_MEM_WRITE(self._uc, self._address, data, self._size)
        if status:
            raise UcError(status)
