"""A TD built from TDVF firmware the way a TDX VMM builds it (spec 14; QEMU
hw/i386/tdx.c, tdvf.c, tdvf-hob.c; KVM_TDX_INIT_MEM_REGION).

Each descriptor section is placed at its GPA: a section without PAGE.AUG is
added with TDH.MEM.PAGE.ADD (private and accepted, in MRTD by GPA) and, with
MR.EXTEND, also measured by content; TempMem and the TD HOB start zeroed,
and the TD HOB then holds the HOB list.  All other RAM is pending (PAGE.AUG):
the firmware accepts what it uses.  The vCPU starts in the TDX reset state.
"""
from __future__ import annotations

from pathlib import Path

from .. import abi, image as image_mod
from ..errors import TdxsimError
from ..memory import Page
from ..td import TD, MiB
from ..vcpu import modes
from . import hob, platform
from .observe import EXIT_COST_NS, FirmwareObserver
from .tdvf import Section, SectionType, Tdvf, parse

PAGE = 0x1000
DEFAULT_MEMORY = 256 * MiB
MAX_MEMORY = 2048 * MiB  # all of RAM below the 32-bit PCI hole of a Q35 machine
RAM_SECTIONS = (SectionType.TEMP_MEM, SectionType.TD_HOB, SectionType.PERM_MEM,
                SectionType.PAYLOAD, SectionType.PAYLOAD_PARAM)


class FirmwareImage(image_mod.Image):
    """The firmware as the TD sees it: no ELF segments (the sections are
    placed by FirmwareTD), entry at the reset vector."""

    def entry_problem(self) -> str | None:
        return None  # the reset vector lies in the BFV: _check_layout


class FirmwareTD(TD):
    ram_base = 0  # the firmware owns all of RAM, page 0 included

    def __init__(self, firmware: Tdvf, memory: int = DEFAULT_MEMORY, **kw):
        if memory > MAX_MEMORY:
            raise TdxsimError(f"a firmware TD has at most {MAX_MEMORY >> 20} MiB of RAM "
                              f"(all below 4 GiB), not {memory >> 20} MiB")
        self.firmware = firmware
        _check_layout(firmware, memory)
        image = FirmwareImage(firmware.path, modes.RESET_RIP, [])
        super().__init__(image, memory, **{"exit_ns": EXIT_COST_NS, **kw})
        self.crash_details = True
        self.hob = self._build()
        platform.install(self)
        self.observer = FirmwareObserver(self)

    @classmethod
    def from_path(cls, path: str | Path, **kw) -> "FirmwareTD":
        return cls(parse(path), **kw)

    def _build(self) -> bytes:
        """Place the sections, write the TD HOB, compute MRTD; the TD HOB's
        bytes are returned."""
        ram = self.ram
        fw = self.firmware
        for s in fw.sections:
            if s.gpa >= self.memory:
                ram.add_region(s.gpa, s.size)
        ram.set_state(0, self.memory, Page.PENDING)
        added = [s for s in fw.sections if not s.augmented]
        for s in added:
            if s.gpa < self.memory:
                ram.set_state(s.gpa, s.size, Page.PRIVATE)
        for s in fw.sections:
            if s.augmented and s.gpa >= self.memory:
                ram.set_state(s.gpa, s.size, Page.PENDING)
            self.vcpu.phys_write(s.gpa, fw.content(s))
        td_hob = b""
        for s in fw.of_type(SectionType.TD_HOB):
            accepted = [(a.gpa, a.size) for a in added if a.type in RAM_SECTIONS]
            td_hob = hob.build(s.gpa, hob.ram_ranges(self.memory, accepted))
            if len(td_hob) > s.size:
                raise TdxsimError(f"{fw.path}: the TD HOB ({len(td_hob)} bytes) does not fit "
                                  f"its section of {s.size:#x} bytes")
            self.vcpu.phys_write(s.gpa, td_hob)
        self.module.finalize(self._build_pages(added))
        self.host.cpuid.set(0, 0, abi.CPUID_TDX_LEAF + 2, *self.host.cpuid.lookup(0, 0)[1:])
        return td_hob

    def _build_pages(self, added: list[Section]) -> list[tuple[int, bytes | None]]:
        """TDH.MEM.PAGE.ADD of every page, in descriptor order, each followed
        by TDH.MR.EXTEND of its content when the section is measured."""
        pages = []
        for s in added:
            for gpa in range(s.gpa, s.gpa + s.size, PAGE):
                pages.append((gpa, self.vcpu.phys_read(gpa, PAGE) if s.measured else None))
        return pages

    def reset(self) -> None:
        """The TDX reset state (spec 14): 32-bit protected mode, paging off,
        RIP = 0xFFFFFFF0, EBX[5:0] = GPAW, ESI = the vCPU index."""
        modes.enter_reset_state(self.vcpu, self.memory - PAGE)
        self.vcpu.regs.set_gprs({i: 0 for i in range(16)}
                                | {abi.RBX: self.config.gpaw, abi.RSI: 0})
        self.vcpu.regs.rip = modes.RESET_RIP
        self.vcpu.regs.rflags = 0x2


def _check_layout(fw: Tdvf, memory: int) -> None:
    if not fw.of_type(SectionType.BFV):
        raise TdxsimError(f"{fw.path}: the TDVF descriptor has no BFV (boot firmware) section")
    top = max(s.gpa + s.size for s in fw.sections)
    if top != 1 << 32 and all(s.gpa + s.size != 1 << 32 for s in fw.of_type(SectionType.BFV)):
        raise TdxsimError(f"{fw.path}: no BFV section ends at 4 GiB, where the reset vector is")
    for s in fw.sections:
        if s.gpa < memory < s.gpa + s.size:
            raise TdxsimError(f"{fw.path}: the {s.type.name} section at {s.gpa:#x}+{s.size:#x} "
                              f"straddles the end of RAM ({memory:#x}); choose another --memory")
        if s.type in RAM_SECTIONS and s.gpa >= memory:
            raise TdxsimError(f"{fw.path}: the {s.type.name} section at {s.gpa:#x} lies beyond "
                              f"RAM ({memory >> 20} MiB); give the TD more --memory")
