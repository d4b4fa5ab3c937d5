"""The TD's guest-physical memory: private and shared pages (spec 1.3, 4.4).

GPA bit GPAW-1 is the shared bit.  A page number reaches its private page
through GPAs with the bit clear (the secure EPT) and its shared page through
GPAs with the bit set (the shared EPT).  Every 4 KiB page of RAM is in one of
three states: private and accepted, private and pending (converted to private
but not yet accepted with TDG.MEM.PAGE.ACCEPT), or shared.  A TD starts with
all of RAM private and accepted, as after TD build.

One host buffer backs each page: private and shared contents never coexist,
because a conversion discards the old contents (QEMU discards the backing
memory of the state being left), so the page reads as zeros afterwards.

The guest reaches memory only through its page tables; tdxsim checks every
guest-physical address it produces (`check`).  The host reaches memory only
through `HostMemory`, which refuses private pages: on hardware the host would
read ciphertext.
"""
from __future__ import annotations

import ctypes
import itertools
import mmap
import sys
from dataclasses import dataclass
from enum import IntEnum

from . import abi
from .errors import HostError, TdxsimError
from .layout import WINDOW_SIZE

PAGE = abi.PAGE_SIZE
GPAW_CHOICES = (48, 52)

class Page(IntEnum):
    PENDING = 0   # private, not accepted
    PRIVATE = 1   # private, accepted
    SHARED = 2


@dataclass(frozen=True)
class EptViolation:
    """A guest access that the EPT walk rejects: the GPA is the one the
    guest's own page tables produced (shared bit included)."""
    gpa: int
    la: int
    access: str  # "read", "write" or "fetch"
    cause: str
    walk: bool = False  # the access was the page walk's read of a paging-structure entry

    def describe(self) -> str:
        return (f"EPT violation on {self.access} of GPA {self.gpa:#x} "
                f"(linear address {self.la:#x}): {self.cause}")


class _Region:
    """A range of private guest memory with its own host buffer and page
    states.  Anonymous private mapping: untouched pages cost no host RAM,
    and MADV_DONTNEED gives a discarded range back as zeros."""

    def __init__(self, start: int, end: int):
        self.start, self.end = start, end
        self.states = bytearray([Page.PRIVATE]) * ((end - start) // PAGE)
        # MAP_NORESERVE: the kernel's overcommit check would refuse a large
        # guest it never has to back; still refused, the size is bad input.
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
        try:
            self.backing = mmap.mmap(-1, end - start, flags=flags)
        except OSError as exc:
            raise TdxsimError(f"cannot reserve {(end - start) >> 20} MiB of host address space "
                              f"for guest RAM ({exc.strerror}); choose a smaller --memory") \
                from None
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self.backing))

    def map_into(self, cpu) -> None:
        cpu.map_ptr(self.start, self.end - self.start, self.address)

    def discard(self, gpa: int, size: int) -> None:
        offset = gpa - self.start
        if sys.platform.startswith("linux") and mmap.PAGESIZE == PAGE:
            self.backing.madvise(mmap.MADV_DONTNEED, offset, size)
        else:
            self.backing[offset:offset + size] = bytes(size)


class TdMemory:
    """RAM at GPAs [base, size): by default page 0 is left out so that NULL
    faults.  Firmware adds private regions outside RAM (`add_region`).

    The CPU's MMU holds the same buffers (`attach`): a vCPU attaches itself
    when it is built, maps every region, and is told when translations of
    changed pages must go."""

    def __init__(self, size: int, gpaw: int, base: int = PAGE):
        if gpaw not in GPAW_CHOICES:
            raise TdxsimError(f"GPAW must be 48 or 52 (spec 1.3), not {gpaw}")
        if size > WINDOW_SIZE:
            raise TdxsimError(f"guest memory is limited to {WINDOW_SIZE >> 30} GiB, "
                              f"the reach of tdxsim's default page tables")
        self.size = size
        self.gpaw = gpaw
        self.shared_bit = abi.shared_bit(gpaw)
        self.regions = [_Region(base, size)]
        self.cpus = []  # the MMUs of the vCPUs that map this memory

    def attach(self, cpu) -> None:
        """A vCPU's MMU (map_ptr, phys_read, phys_write, flush_translations)
        maps every region now and those added later."""
        self.cpus.append(cpu)
        for region in self.regions:
            region.map_into(cpu)

    def add_region(self, gpa: int, size: int) -> None:
        """Private, accepted memory outside RAM (TDVF's firmware volumes
        below 4 GiB), added at TD build like RAM."""
        if any(gpa < r.end and r.start < gpa + size for r in self.regions):
            raise TdxsimError(f"guest memory at {gpa:#x}+{size:#x} overlaps other guest memory")
        region = _Region(gpa, gpa + size)
        self.regions.append(region)
        for cpu in self.cpus:
            region.map_into(cpu)

    def _region(self, gpa: int) -> _Region | None:
        for region in self.regions:
            if region.start <= gpa < region.end:
                return region
        return None

    # --- the EPT walk of every guest access ---
    def in_ram(self, gpa: int) -> bool:
        return self._region(gpa) is not None

    def _state(self, plain: int) -> int | None:
        region = self._region(plain)
        return None if region is None else region.states[(plain - region.start) // PAGE]

    def state(self, gpa: int) -> Page | None:
        state = self._state(gpa & ~self.shared_bit)
        return None if state is None else Page(state)

    def check(self, gpa: int, la: int, access: str) -> int | EptViolation:
        """The backing address of a guest access to `gpa`, or the EPT
        violation it causes."""
        shared = bool(gpa & self.shared_bit)
        plain = gpa & ~self.shared_bit
        state = self._state(plain)
        cause = None
        if gpa >> self.gpaw:
            cause = f"the GPA is beyond GPAW {self.gpaw}"
        elif state is None:
            cause = "no guest memory at this GPA" + (" (MMIO)" if shared else "")
        elif shared and state != Page.SHARED:
            cause = "the page is private; access through the shared alias"
        elif not shared and state == Page.SHARED:
            cause = "the page is shared; access through the private alias"
        elif not shared and state == Page.PENDING:
            cause = "the private page is pending: it was never accepted (TDG.MEM.PAGE.ACCEPT)"
        return plain if cause is None else EptViolation(gpa, la, access, cause)

    # --- the TDX module's own accesses, by GPA, through the same EPT check ---
    def _pieces(self, gpa: int, size: int, access: str) -> list[tuple[int, int]] | None:
        pieces = []
        while size > 0:
            n = min(size, PAGE - gpa % PAGE)
            where = self.check(gpa, 0, access)
            if not isinstance(where, int):
                return None
            pieces.append((where, n))
            gpa, size = gpa + n, size - n
        return pieces

    def accessible(self, gpa: int, size: int) -> bool:
        return self._pieces(gpa, size, "read") is not None

    def read(self, gpa: int, size: int) -> bytes:
        return b"".join(self.cpus[0].phys_read(a, n) for a, n in self._pieces(gpa, size, "read"))

    def write(self, gpa: int, data: bytes) -> None:
        offset = 0
        for a, n in self._pieces(gpa, len(data), "write"):
            self.cpus[0].phys_write(a, data[offset:offset + n])
            offset += n

    # --- state changes ---
    def convert(self, gpa: int, size: int, shared: bool) -> bool:
        """Convert [gpa, gpa + size) as QEMU's kvm_convert_memory does: pages
        already in the target state are untouched; a page that changes loses
        its contents, and a page made private is pending until accepted.
        Outside guest memory, a conversion to shared is ignored and one to
        private fails (returns False, nothing changed)."""
        pages = range(gpa // PAGE, -(-(gpa + size) // PAGE))
        if not shared and not all(self.in_ram(p * PAGE) for p in pages):
            return False
        target = Page.SHARED if shared else Page.PENDING
        changing = [p for p in pages if self.in_ram(p * PAGE)
                    and (self._state(p * PAGE) == Page.SHARED) != shared]
        for _, run in itertools.groupby(enumerate(changing), lambda e: e[1] - e[0]):
            run = [p for _, p in run]  # contiguous
            self.set_state(run[0] * PAGE, len(run) * PAGE, target)
        return True

    def set_state(self, gpa: int, size: int, state: Page) -> None:
        """Move pages to `state`, discarding their contents (also the hook
        for TDG.MEM.PAGE.ACCEPT: pending -> private, zeroed).  Translations
        and translated code are flushed unless every page was pending: no
        access to a pending page ever succeeded, so nothing cached refers
        to one (refused accesses are never cached), and accepting memory
        page by page, as firmware does, stays cheap."""
        start, end = gpa & ~(PAGE - 1), gpa + size
        changed = range(start, end)  # backing addresses are GPAs
        flush = False
        while start < end:
            region = self._region(start)
            stop = min(end, region.end)
            first, last = (start - region.start) // PAGE, (stop - region.start + PAGE - 1) // PAGE
            flush |= region.states[first:last].count(Page.PENDING) != last - first
            region.states[first:last] = bytes([state]) * (last - first)
            region.discard(region.start + first * PAGE, (last - first) * PAGE)
            start = region.start + last * PAGE
        if flush:
            for cpu in self.cpus:
                cpu.flush_translations(changed)

    def pages(self, gpa: int, size: int) -> list[Page | None]:
        gpa &= ~self.shared_bit
        return [self.state(p) for p in range(gpa & ~(PAGE - 1), gpa + size, PAGE)]


class HostMemory:
    """The host's view of guest memory: shared pages only.  GPAs may carry
    the shared bit or not (KVM strips it before user space sees them)."""

    def __init__(self, memory: TdMemory):
        self._memory = memory

    def _check(self, gpa: int, size: int, verb: str) -> int:
        page = gpa & ~self._memory.shared_bit
        states = self._memory.pages(page, size)
        if size <= 0 or gpa >> self._memory.gpaw or None in states:
            raise HostError(f"the host cannot {verb} GPA {gpa:#x} (+{size:#x}): "
                            "no guest memory there")
        if any(s != Page.SHARED for s in states):
            raise HostError(f"the host cannot {verb} GPA {gpa:#x} (+{size:#x}): the range "
                            "holds private pages (on hardware the host sees only ciphertext)")
        return page

    def is_private(self, gpa: int) -> bool | None:
        """KVM's memory attribute of the page: True private, False shared,
        None where no memslot (guest RAM) is."""
        state = self._memory.state(gpa)
        return None if state is None else state != Page.SHARED

    def readable(self, gpa: int, size: int) -> bool:
        try:
            self._check(gpa, size, "read")
            return True
        except HostError:
            return False

    def read(self, gpa: int, size: int) -> bytes:
        return self._memory.cpus[0].phys_read(self._check(gpa, size, "read"), size)

    def write(self, gpa: int, data: bytes) -> None:
        self._memory.cpus[0].phys_write(self._check(gpa, len(data), "write"), data)

    def convert(self, gpa: int, size: int, shared: bool) -> bool:
        """Change the private/shared state of a range (user space through
        KVM; the TDX module enforces that private pages come back pending)."""
        return self._memory.convert(gpa, size, shared)
