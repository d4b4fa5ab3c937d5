"""PCI configuration mechanism #1 (ports 0xCF8 address, 0xCFC-0xCFF data)
with a minimal Q35 machine behind it: the MCH host bridge at 00:00.0 and the
ICH9 LPC bridge at 00:1f.0 (QEMU hw/pci-host/q35.c, hw/isa/lpc_ich9.c).
Absent functions read as all ones, as on real PCI.

The standard header (0x00-0x3F) keeps only the bits QEMU lets a guest
write (hw/pci/pci.c pci_init_wmask): the command register's I/O space,
memory space, bus master, SERR and INTx-disable enables, the cache line
size and the interrupt line.  The rest reads as built: neither device has
a base address register (QEMU registers none for them), so a BAR reads 0
whatever is written, and PciBus's sizing probe (all ones, read back) finds
no resources.  OVMF's PciBus learns the attributes a device supports by
writing the command register and reading it back, and SioBusDxe starts on
the LPC bridge only once I/O and memory decoding read back enabled
(OvmfPkg/SioBusDxe/SioBusDxe.c).  Past the header, the device-specific
registers are plain storage (QEMU's default mask there is all ones): what
OVMF's PlatformPei reads (the host bridge's device ID tells it Q35 from
i440FX) and writes (PMBASE, ACPI control, PCIEXBAR) round-trips.
"""
from __future__ import annotations

from .. import native

CONFIG_ADDRESS = 0xCF8
CONFIG_DATA = 0xCFC
ADDRESS_MASK = 0x80FF_FFFC  # enable (31), bus, device, function, dword offset
INTEL = 0x8086
Q35_MCH_DEVICE = 0x29C0
ICH9_LPC_DEVICE = 0x2918
# The standard header's registers a guest writes (PCI Local Bus 3.0, 6.2;
# QEMU hw/pci/pci.c pci_init_wmask): command bits IO 0, memory 1, bus master
# 2, SERR 8, INTx disable 10; cache line size; interrupt line.
COMMAND, CACHE_LINE_SIZE, INTERRUPT_LINE, HEADER_END = 0x04, 0x0C, 0x3C, 0x40
COMMAND_WRITABLE = 0x0507


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
        """A config write: only the writable bits of each byte change."""
        for i, byte in enumerate(data):
            at = offset + i
            if at < len(space):
                mask = writable(at)
                space[at] = space[at] & ~mask | byte & mask


def writable(offset: int) -> int:
    """The bits of config byte `offset` a write changes (devices.c pci_writable)."""
    if offset >= HEADER_END or offset in (CACHE_LINE_SIZE, INTERRUPT_LINE):
        return 0xFF
    if offset in (COMMAND, COMMAND + 1):
        return COMMAND_WRITABLE >> 8 * (offset - COMMAND) & 0xFF
    return 0
