"""PCI configuration mechanism #1 (ports 0xCF8 address, 0xCFC-0xCFF data)
with a minimal Q35 machine behind it: the MCH host bridge at 00:00.0 and the
ICH9 LPC bridge at 00:1f.0 (QEMU hw/pci-host/q35.c, hw/isa/lpc_ich9.c).
Absent functions read as all ones, as on real PCI.

Config space is plain storage except the identification header, which is
read-only: what OVMF's PlatformPei reads (the host bridge's device ID tells
it Q35 from i440FX) and writes (PMBASE, ACPI control, PCIEXBAR) round-trips.
"""
from __future__ import annotations

from .. import native

CONFIG_ADDRESS = 0xCF8
CONFIG_DATA = 0xCFC
ADDRESS_MASK = 0x80FF_FFFC  # enable (31), bus, device, function, dword offset
INTEL = 0x8086
Q35_MCH_DEVICE = 0x29C0
ICH9_LPC_DEVICE = 0x2918
READ_ONLY_END = 0x10  # vendor, device, revision, class, header type: read-only


def _function(vendor: int, device: int, class_code: int) -> bytearray:
    space = bytearray(256)
    space[0:4] = (vendor | device << 16).to_bytes(4, "little")
    space[8:12] = (class_code << 8).to_bytes(4, "little")  # revision 0
    return space


class PciHost:
    ports = range(CONFIG_ADDRESS, CONFIG_DATA + 4)

    def __init__(self):
        self.state = native.Pci()  # CONFIG_ADDRESS, and the spaces as host/io.c sees them
        self.functions = {  # (bus, device, function) -> config space
            (0, 0, 0): _function(INTEL, Q35_MCH_DEVICE, 0x060000),  # host bridge
            (0, 0x1F, 0): _function(INTEL, ICH9_LPC_DEVICE, 0x060100),  # ISA bridge
        }
        self.functions[(0, 0x1F, 0)][0x0E] = 0x80  # multi-function

    @property
    def address(self) -> int:
        return self.state.address

    @address.setter
    def address(self, value: int) -> None:
        self.state.address = value

    def _target(self, port: int):
        """(config space, offset) selected by CONFIG_ADDRESS, or None."""
        if not self.address >> 31:
            return None
        bus, dev, fn = self.address >> 16 & 0xFF, self.address >> 11 & 0x1F, self.address >> 8 & 7
        space = self.functions.get((bus, dev, fn))
        return None if space is None else (space, (self.address & 0xFC) + port - CONFIG_DATA)

    def read(self, port: int, size: int) -> int:
        if port == CONFIG_ADDRESS and size == 4:
            return self.address
        if port < CONFIG_DATA:
            return (1 << 8 * size) - 1
        target = self._target(port)
        if target is None:
            return (1 << 8 * size) - 1
        space, offset = target
        return int.from_bytes(space[offset:offset + size].ljust(size, b"\xff"), "little")

    def write(self, port: int, size: int, value: int) -> None:
        if port == CONFIG_ADDRESS and size == 4:
            self.address = value & ADDRESS_MASK
            return
        target = self._target(port) if port >= CONFIG_DATA else None
        if target is None:
            return
        self.store(*target, value.to_bytes(size, "little"))

    @staticmethod
    def store(space: bytearray, offset: int, data: bytes) -> None:
        """A config write: the identification header stays as it is."""
        for i, byte in enumerate(data):
            if READ_ONLY_END <= offset + i < len(space):
                space[offset + i] = byte
