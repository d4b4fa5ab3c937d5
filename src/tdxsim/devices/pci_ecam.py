"""PCI Express enhanced configuration access (ECAM, "MMCONFIG"): the Q35
PCIEXBAR window, 1 MiB per bus, 4 KiB per function, over the same config
spaces as ports 0xCF8/0xCFC (pci_host.py).  QEMU's Q35 puts it at
0xB0000000 (hw/i386/pc_q35.c: MCH_HOST_BRIDGE_PCIEXBAR_DEFAULT)."""
from __future__ import annotations

from .pci_host import PciHost

ECAM_BASE = 0xB000_0000
ECAM_SIZE = 256 << 20  # 256 buses


class PciEcam:
    def __init__(self, pci: PciHost, base: int = ECAM_BASE):
        self.pci, self.base, self.size = pci, base, ECAM_SIZE

    def contains(self, gpa: int, size: int) -> bool:
        return self.base <= gpa and gpa + size <= self.base + self.size

    def _target(self, gpa: int):
        offset = gpa - self.base
        space = self.pci.functions.get((offset >> 20, offset >> 15 & 0x1F, offset >> 12 & 7))
        return space, offset & 0xFFF

    def read(self, gpa: int, size: int) -> int:
        space, offset = self._target(gpa)
        if space is None or offset >= len(space):
            return (1 << 8 * size) - 1
        return int.from_bytes(space[offset:offset + size], "little")

    def write(self, gpa: int, size: int, value: int) -> None:
        space, offset = self._target(gpa)
        if space is not None:
            self.pci.store(space, offset, value.to_bytes(size, "little"))
