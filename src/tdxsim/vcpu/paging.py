"""x86-64 4-level paging: the walk of the guest's own page tables.

tdxsim walks the tables itself (Unicorn runs in virtual-TLB mode and asks a
hook for each page) because Unicorn's MMU treats every physical-address bit
at or above 40 as reserved, while a TD's page tables carry the shared bit at
bit 47 or 51.  Rules from the Intel SDM vol. 3, 4.5 and 4.6, for CPL 0.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from ..layout import SHARED_WINDOW

PAGE = 0x1000
PRESENT = 1 << 0
WRITABLE = 1 << 1
LARGE = 1 << 7  # PS: a 1 GiB (PDPTE) or 2 MiB (PDE) page
NO_EXECUTE = 1 << 63
ADDRESS_MASK = 0x000F_FFFF_FFFF_F000  # bits 51:12, MAXPHYADDR 52
LEVELS = ((39, "PML4E"), (30, "PDPTE"), (21, "PDE"), (12, "PTE"))

CR0_WP = 1 << 16
CR0_PG = 1 << 31
CR4_PAE = 1 << 5
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
EFER_NXE = 1 << 11


@dataclass(frozen=True)
class TranslationFault:
    """#PF (or #GP for a non-canonical address) raised by the guest's own
    paging, before any guest-physical address exists."""
    vector: str  # "#PF" or "#GP"
    la: int
    access: str  # "read", "write" or "fetch"
    reason: str

    def describe(self) -> str:
        return f"{self.vector} on {self.access} at linear address {self.la:#x}: {self.reason}"


@dataclass(frozen=True)
class Translation:
    gpa: int  # of the byte at the linear address, shared bit included
    writable: bool
    executable: bool


def canonical(la: int) -> bool:
    top = la >> 47
    return top == 0 or top == 0x1_FFFF


def walk(read_entry: Callable[[int], int], cr3: int, la: int, access: str,
         write_protect: bool, nx_enabled: bool) -> Translation | TranslationFault:
    """Translate a linear address.  read_entry(gpa) returns one 8-byte
    paging-structure entry; it may raise to report that the table itself is
    unreachable."""
    if not canonical(la):
        return TranslationFault("#GP", la, access, "non-canonical address")
    table = cr3 & ADDRESS_MASK
    writable = executable = True
    for shift, name in LEVELS:
        entry = read_entry(table + (la >> shift & 0x1FF) * 8)
        if not entry & PRESENT:
            return TranslationFault("#PF", la, access, f"{name} not present")
        if entry & NO_EXECUTE and not nx_enabled:
            return TranslationFault("#PF", la, access, f"{name} has XD set while EFER.NXE = 0 "
                                    "(reserved bit)")
        writable &= bool(entry & WRITABLE)
        executable &= not entry & NO_EXECUTE
        size = 1 << shift
        if shift == 39 and entry & LARGE:
            return TranslationFault("#PF", la, access, "PML4E has PS set (reserved bit)")
        if shift == 12 or entry & LARGE:
            base = entry & ADDRESS_MASK & ~(size - 1)
            break
        table = entry & ADDRESS_MASK
    writable |= not write_protect  # CR0.WP = 0: supervisor writes ignore R/W
    if access == "write" and not writable:
        return TranslationFault("#PF", la, access, "write to a read-only page")
    if access == "fetch" and not executable:
        return TranslationFault("#PF", la, access, "instruction fetch from a no-execute page")
    return Translation(base | la & (size - 1), writable, executable)


_RW = PRESENT | WRITABLE


@functools.cache
def default_page_tables(base: int, shared_bit: int) -> bytes:
    """tdxsim's default page tables (layout.py), three pages at `base`: the
    PML4, the identity PDPT and the PDPT of the shared window."""
    pml4 = bytearray(PAGE)
    pml4[0:8] = (base + PAGE | _RW).to_bytes(8, "little")
    slot = (SHARED_WINDOW >> 39 & 0x1FF) * 8
    pml4[slot:slot + 8] = (base + 2 * PAGE | _RW).to_bytes(8, "little")
    private = b"".join((i << 30 | _RW | LARGE).to_bytes(8, "little") for i in range(512))
    shared = b"".join((i << 30 | shared_bit | _RW | LARGE).to_bytes(8, "little")
                      for i in range(512))
    return bytes(pml4) + private + shared
