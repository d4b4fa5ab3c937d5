"""PCI configuration space of the modelled Q35 platform (devices/pci_host.py,
pci_ecam.py): what a guest may write.  Expected values come from the PCI
Local Bus spec 3.0 (6.2: header layout; 6.2.5.1: a BAR that is not
implemented reads as zero) and from QEMU's generic write mask
(hw/pci/pci.c pci_init_wmask: command register bits I/O space 0, memory
space 1, bus master 2, SERR 8, INTx disable 10; cache line size and
interrupt line writable; device-specific registers from 0x40 writable).
The compiled path's copy of these rules is compared with this one in
test_native_host.py."""
from __future__ import annotations

from tdxsim.devices.pci_ecam import ECAM_BASE, PciEcam
from tdxsim.devices.pci_host import PciHost

LPC = 0x1F << 15  # ECAM offset of 00:1f.0
COMMAND_WRITABLE = 1 | 2 | 4 | 1 << 8 | 1 << 10


def _ecam():
    pci = PciHost()
    return pci, PciEcam(pci)


def test_command_register_keeps_the_enables_a_guest_writes():
    _, ecam = _ecam()
    ecam.write(ECAM_BASE + LPC + 4, 2, 0xFFFF)
    assert ecam.read(ECAM_BASE + LPC + 4, 2) == COMMAND_WRITABLE
    ecam.write(ECAM_BASE + LPC + 4, 2, 0x0003)  # I/O and memory decoding
    assert ecam.read(ECAM_BASE + LPC + 4, 2) == 0x0003
    ecam.write(ECAM_BASE + LPC + 4, 4, 0xFFFF_0000)  # status: nothing writable here
    assert ecam.read(ECAM_BASE + LPC + 4, 4) == 0


def test_no_bars_identification_read_only():
    """Neither the MCH nor the LPC bridge implements a BAR: sizing (all
    ones, read back) finds nothing, so the firmware assigns them nothing."""
    _, ecam = _ecam()
    for function in (0, LPC):
        base = ECAM_BASE + function
        identity = [ecam.read(base + offset, 4) for offset in (0, 8, 0x0C)]
        for offset in range(0x10, 0x28, 4):
            ecam.write(base + offset, 4, 0xFFFF_FFFF)
            assert ecam.read(base + offset, 4) == 0
        ecam.write(base, 4, 0)
        ecam.write(base + 8, 4, 0)
        assert ecam.read(base, 4) == identity[0] and ecam.read(base + 8, 4) == identity[1]
        assert ecam.read(base + 0x0E, 1) == identity[2] >> 16 & 0xFF  # header type


def test_cache_line_interrupt_line_and_device_registers_round_trip():
    _, ecam = _ecam()
    base = ECAM_BASE + LPC
    ecam.write(base + 0x0C, 1, 0x10)
    ecam.write(base + 0x3C, 1, 0x0A)
    ecam.write(base + 0x3D, 1, 0x01)  # interrupt pin: read-only
    ecam.write(base + 0x40, 4, 0x601)  # ICH9 PMBASE (device-specific)
    assert ecam.read(base + 0x0C, 1) == 0x10
    assert ecam.read(base + 0x3C, 2) == 0x000A
    assert ecam.read(base + 0x40, 4) == 0x601


def test_config_ports_see_the_same_rules():
    pci = PciHost()
    pci.write(0xCF8, 4, 0x8000_F804)  # 00:1f.0, command
    pci.write(0xCFC, 2, 0xFFFF)
    assert pci.read(0xCFC, 2) == COMMAND_WRITABLE
    pci.write(0xCF8, 4, 0x8000_F810)  # BAR0
    pci.write(0xCFC, 4, 0xFFFF_FFFF)
    assert pci.read(0xCFC, 4) == 0
