"""The vCPU's MMU: linear addresses through the guest's page tables, then the
EPT check of every guest-physical address the walk produces.

Unicorn runs in virtual-TLB mode: on a TLB miss `tlb_fill` walks the guest's
tables (paging.py), checks the GPA (`check_gpa`, the TD's memory.py) and
hands Unicorn the backing address.  A refused page goes to an unbacked trap
page, where the access itself faults with its exact address.  Successful
walks are cached per page like a TLB, until CR3 changes or tdxsim flushes.
The code shadow remembers which backing page each linear code page was
filled from, so the hot path (tdcall.c, `fetched`) reads code without a walk.
"""
from __future__ import annotations

import ctypes
from dataclasses import replace
from typing import Callable

from unicorn import (UC_CTL_IO_WRITE, UC_CTL_TLB_FLUSH, UC_HOOK_TLB_FILL, UC_MEM_FETCH,
                     UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_UNMAPPED, UC_MEM_WRITE, UC_PROT_ALL,
                     UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, UC_TLB_VIRTUAL, UcError)
from unicorn import x86_const as X

from .. import native
from . import paging
from .regs import bare

# Unicorn's memory calls without the binding's per-argument conversion
RAW_MEM_READ, RAW_MEM_WRITE = bare("uc_mem_read"), bare("uc_mem_write")

_ACCESS = {UC_MEM_WRITE: "write", UC_MEM_FETCH: "fetch"}  # anything else reads
_WALK_CODES = {"read": native.WALK_READ, "write": native.WALK_WRITE}  # (native.h walk_keys)
MSR_EFER = 0xC000_0080
PAGE = 0x1000
# Backing addresses of the trap pages: far above any guest RAM, never mapped.
TRAP_BASE = 0xF_0000_0000_0000
TRAP_PAGES = 16


class MemoryFault(Exception):
    """A linear access tdxsim made on the vCPU's behalf could not complete;
    `info` is the page fault or EPT violation (each has describe())."""

    def __init__(self, info):
        super().__init__(info.describe())
        self.info = info


class Mmu:
    """check_gpa(gpa, la, access): the backing address of a guest-physical
    access, or the fault object (an EPT violation) that refuses it."""

    def __init__(self, uc, regs, fast: native.VCpu,
                 check_gpa: Callable[[int, int, str], object] = lambda gpa, la, access: gpa):
        self.uc, self.regs, self.fast = uc, regs, fast
        self.check_gpa = check_gpa
        self.traps: dict[int, int] = {}  # trap page -> the refused linear page
        self._walks: dict[tuple[int, str], tuple[int, int]] = {}  # (page, access) -> translation
        self._walks_cr3 = -1
        self._scratch = ctypes.create_string_buffer(PAGE)  # phys_read's, one page at most
        self._shadow_cr3 = -1
        self.code_stale = False  # guest memory changed behind the translated code
        # Set by modes.enter_reset_state: the guest may run 32-bit code and
        # turn paging off and on itself (TDVF); off, every walk is 4-level.
        self.mixed_modes = False
        # on_code_fetch(linear page, backing page) at each TLB fill for a
        # fetch (the vCPU's exact traps: CodeTraps.scan_page), or None.
        self.on_code_fetch: Callable[[int, int], None] | None = None
        self.code_pages: set[int] = set()  # backing page numbers code was fetched from
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        uc.hook_add(UC_HOOK_TLB_FILL, self.tlb_fill)

    # --- physical (backing) addresses ---
    def map_ptr(self, address: int, size: int, host_address: int) -> None:
        self.uc.mem_map_ptr(address, size, UC_PROT_ALL, host_address)

    def phys_read(self, address: int, size: int) -> bytes:
        if 0 < size <= PAGE and not RAW_MEM_READ(self.uc._uch, ctypes.c_uint64(address),
                                                 self._scratch, ctypes.c_uint64(size)):
            return ctypes.string_at(self._scratch, size)
        return bytes(self.uc.mem_read(address, size))  # or raises the binding's UcError

    def phys_write(self, address: int, data: bytes) -> None:
        if RAW_MEM_WRITE(self.uc._uch, ctypes.c_uint64(address), data,
                         ctypes.c_uint64(len(data))):
            self.uc.mem_write(address, data)  # raises the binding's UcError

    # --- control ---
    def enable_paging(self, cr3: int) -> None:
        """4-level paging with NX, as a 64-bit CPU requires."""
        uc = self.uc
        uc.reg_write(X.UC_X86_REG_CR3, cr3)
        uc.reg_write(X.UC_X86_REG_CR4, uc.reg_read(X.UC_X86_REG_CR4) | paging.CR4_PAE)
        uc.msr_write(MSR_EFER, uc.msr_read(MSR_EFER) | paging.EFER_LME | paging.EFER_LMA
                     | paging.EFER_NXE)
        uc.reg_write(X.UC_X86_REG_CR0, uc.reg_read(X.UC_X86_REG_CR0) | paging.CR0_PG
                     | paging.CR0_WP)
        self.flush_tlb()

    def flush_tlb(self) -> None:
        self.uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)
        self.forget_code_pages()
        self._forget_walks()

    def _forget_walks(self) -> None:
        """Drop the cached walks, and C's copy of them (deliver.c)."""
        self._walks.clear()
        ctypes.memset(self.fast.walk_keys, 0, ctypes.sizeof(self.fast.walk_keys))

    def forget_code_pages(self) -> None:
        ctypes.memset(self.fast.shadow_pages, 0, ctypes.sizeof(self.fast.shadow_pages))

    def flush_translations(self, backing: range | None = None) -> None:
        """Forget cached translations and code after guest memory changed
        behind the emulator (a conversion discards pages).  When code pages
        are scanned as they are fetched, translated code is kept if no page
        of `backing` (backing addresses) ever held fetched code: firmware
        converts bounce buffers page by page, and retranslating all code
        each time would dominate its run."""
        self.flush_tlb()
        if backing is None or self.on_code_fetch is None or any(
                page in self.code_pages for page in range(backing.start // PAGE,
                                                           -(-backing.stop // PAGE))):
            self.code_stale = True

    def release_trap_pages(self) -> None:
        """Before a slice: the TLB must not map refused pages to trap pages
        any longer (the refusal may be gone)."""
        if self.traps:
            self.flush_tlb()
            self.traps.clear()

    # --- linear addresses ---
    def translate(self, la: int, access: str = "read"):
        """(backing address, Unicorn permissions) of a linear address, or the
        fault (page fault or EPT violation) the access would raise."""
        cr3 = self._translation_key()
        if cr3 != self._walks_cr3:
            self._forget_walks()
            self._walks_cr3, self.fast.walk_cr3 = cr3, cr3 & 0xFFFF_FFFF_FFFF_FFFF
            self.fast.walk_on = not self.mixed_modes
        offset = la % PAGE
        hit = self._walks.get((la - offset, access))
        if hit is None:
            hit = self._walk(la - offset, access)
            if not isinstance(hit, tuple):
                return self._walk(la, access)  # the fault, with the exact address
            self._walks[(la - offset, access)] = hit
            code = _WALK_CODES.get(access)
            if code:  # C's copy (deliver.c): reads and writes, one per slot
                slot = (la >> 12 << 1 | code >> 1) % native.WALK_SLOTS  # (as deliver.c)
                self.fast.walk_keys[slot] = la - offset | code
                self.fast.walk_backing[slot] = hit[0]
        return hit[0] + offset, hit[1]

    def _translation_key(self) -> int:
        """What the current translations depend on: CR3, and with mixed
        modes also whether paging is on (bit 0 is never set in CR3's base)."""
        cr3 = self.regs.cr3
        if self.mixed_modes and not self.uc.reg_read(X.UC_X86_REG_CR0) & paging.CR0_PG:
            return cr3 | 1 << 63
        return cr3

    def _walk(self, la: int, access: str):
        uc = self.uc
        if self.mixed_modes and not uc.reg_read(X.UC_X86_REG_CR0) & paging.CR0_PG:
            where = self.check_gpa(la & 0xFFFF_FFFF, la, access)  # paging off: GPA = LA
            return where if not isinstance(where, int) else (where, UC_PROT_ALL)
        if self.mixed_modes and not uc.msr_read(MSR_EFER) & paging.EFER_LMA:
            return paging.TranslationFault("#PF", la, access, "32-bit (non-long-mode) paging "
                                           "is not modelled")

        def entry(gpa: int) -> int:  # the walk's own reads go through the EPT too
            where = self.check_gpa(gpa, la, "read")
            if not isinstance(where, int):
                raise MemoryFault(replace(where, walk=True))
            return int.from_bytes(uc.mem_read(where, 8), "little")

        try:
            t = paging.walk(entry, uc.reg_read(X.UC_X86_REG_CR3), la, access,
                            bool(uc.reg_read(X.UC_X86_REG_CR0) & paging.CR0_WP),
                            bool(uc.msr_read(MSR_EFER) & paging.EFER_NXE))
        except MemoryFault as fault:
            return fault.info
        if isinstance(t, paging.TranslationFault):
            return t
        where = self.check_gpa(t.gpa, la, access)
        if not isinstance(where, int):
            return where
        return where, (UC_PROT_READ | (UC_PROT_WRITE if t.writable else 0)
                       | (UC_PROT_EXEC if t.executable else 0))

    def pieces(self, la: int, size: int, access: str):
        """(backing address, length) per page of a linear range."""
        while size > 0:
            n = min(size, PAGE - la % PAGE)
            t = self.translate(la, access)
            if not isinstance(t, tuple):
                raise MemoryFault(t)
            yield t[0], n
            la, size = la + n, size - n

    def read(self, address: int, size: int) -> bytes:
        if 0 < size <= PAGE - address % PAGE:  # the common case: one page
            t = self.translate(address, "read")
            if not isinstance(t, tuple):
                raise MemoryFault(t)
            return self.phys_read(t[0], size)
        return b"".join(self.phys_read(a, n) for a, n in list(self.pieces(address, size, "read")))

    def write(self, address: int, data: bytes) -> None:
        if address % PAGE + len(data) <= PAGE:  # the common case: one page
            t = self.translate(address, "write")
            if not isinstance(t, tuple):
                raise MemoryFault(t)
            self.phys_write(t[0], data)
            return
        offset = 0
        for a, n in list(self.pieces(address, len(data), "write")):
            self.phys_write(a, data[offset:offset + n])
            offset += n

    def read_if(self, address: int, size: int) -> bytes | None:
        """read(), or None where readable() is False: one walk for both."""
        if 0 < size <= PAGE - address % PAGE:  # the common case: one page
            t = self.translate(address, "read")
            return self.phys_read(t[0], size) if isinstance(t, tuple) else None
        return self.read(address, size) if self.readable(address, size) else None

    def write_if(self, address: int, data: bytes) -> bool:
        """write() within one page that the walk lets it write, in one walk;
        False, nothing written, otherwise (the caller decides what then)."""
        if not 0 < len(data) <= PAGE - address % PAGE:
            return False
        t = self.translate(address, "write")
        if not isinstance(t, tuple):
            return False
        self.phys_write(t[0], data)
        return True

    def readable(self, address: int, size: int) -> bool:
        if 0 < size <= PAGE - address % PAGE:  # the common case: one page
            return isinstance(self.translate(address, "read"), tuple)
        try:
            list(self.pieces(address, size, "read"))
            return True
        except MemoryFault:
            return False

    def fetched(self, address: int, size: int) -> bytes:
        """Bytes of code the vCPU just fetched.  The TLB fill that fetched
        them is in the shadow, so the hot path (TDCALL) needs no page walk;
        b"" if they cannot be read."""
        slot = address // PAGE % native.SHADOW_SLOTS
        if self.fast.shadow_pages[slot] == address // PAGE + 1 \
                and address % PAGE + size <= PAGE and size <= 16:
            page = self.fast.shadow_backing[slot]
            return self.regs.peek_code(page * PAGE + address % PAGE, size)
        try:
            return self.read(address, size)
        except (MemoryFault, UcError):
            return b""

    # --- hooks (called from inside Unicorn) ---
    def tlb_fill(self, uc, la, access, entry, _user) -> bool:
        """Unicorn's TLB miss: walk the guest's tables, then the EPT check.
        Unicorn passes only the page, so a refused page goes to a trap page
        where the access itself faults with its exact address."""
        t = self.translate(la, _ACCESS.get(access, "read"))
        if not isinstance(t, tuple):
            trap = TRAP_BASE + len(self.traps) % TRAP_PAGES * PAGE
            self.traps[trap] = la
            entry.paddr, entry.perms = trap, UC_PROT_ALL
            return True
        cr3 = self._translation_key()
        if cr3 != self._shadow_cr3:
            self.forget_code_pages()
            self._shadow_cr3 = cr3
        if self.on_code_fetch is not None and access == UC_MEM_FETCH:
            self.on_code_fetch(la - la % PAGE, t[0] - t[0] % PAGE)
        slot = la // PAGE % native.SHADOW_SLOTS
        self.fast.shadow_pages[slot] = la // PAGE + 1
        self.fast.shadow_backing[slot] = t[0] // PAGE
        entry.paddr, entry.perms = t
        return True

    def trapped_fault(self, access: int, address: int):
        """The fault behind an access that hit a trap page (translated again,
        exactly), or None: the address is simply unmapped."""
        page = self.traps.get(address - address % PAGE)
        if page is None:
            return None
        kind = {UC_MEM_READ_UNMAPPED: "read", UC_MEM_FETCH_UNMAPPED: "fetch"}.get(access, "write")
        fault = self.translate(page + address % PAGE, kind)
        return None if isinstance(fault, tuple) else fault
