"""The platform a QEMU-hosted TDVF talks to (spec 14), plugged into the
host's device tables: fw_cfg, PCI configuration space of a Q35 machine,
CMOS/RTC, the ACPI PM timer and QEMU's debug console, next to the COM1
UART that every TD has; and the x2APIC registers KVM emulates that the
local APIC model leaves out."""
from __future__ import annotations

from ..devices.cmos import Cmos
from ..devices.debug_console import DebugConsole
from ..devices.fw_cfg import FwCfg
from ..devices.pci_ecam import PciEcam
from ..devices.pci_host import PciHost
from ..devices.pm_timer import PmTimer

# etc/system-states: one byte per sleep state S0..S5, bit 7 = supported.
# QEMU's Q35 default: S3 and S4 off (hw/acpi/ich9.c).
SYSTEM_STATES = bytes([0x80, 0, 0, 0, 0, 0x80])
# x2APIC registers read by the firmware (SDM vol. 3, Table 11-6) with their
# reset values (version: an integrated APIC with 6 LVT entries, as KVM).
X2APIC_REGISTERS = {0x802: 0, 0x803: 0x50014, 0x80D: 0, 0x80F: 0xFF, 0x828: 0,
                    0x82F: 0x10000, 0x830: 0, 0x833: 0x10000, 0x834: 0x10000,
                    0x835: 0x10000, 0x836: 0x10000, 0x837: 0x10000}

# MTRRs, which KVM emulates for a TD as for any VM (tdx_has_emulated_msr):
# MTRRcap = 8 variable ranges, fixed ranges and WC supported (KVM's
# kvm_mtrr_get_msr); the ranges and MTRRdefType are plain storage.
MSR_MTRRCAP = 0xFE
MTRRS = {MSR_MTRRCAP: 0x508, 0x2FF: 0, 0x250: 0, 0x258: 0, 0x259: 0,
         **{0x200 + i: 0 for i in range(16)}, **{0x268 + i: 0 for i in range(8)}}


def install(td) -> None:
    host = td.host
    td.fw_cfg = FwCfg(td.memory, files={"etc/system-states": SYSTEM_STATES,
                                        "bootorder": b""})
    td.fw_cfg.memory = host.memory
    td.debug_console = DebugConsole()
    pci = PciHost()
    host.io_devices += [td.fw_cfg, pci, Cmos(td.memory, clock=td.clock.now),
                        PmTimer(td.clock.now), td.debug_console]
    host.mmio_devices.append(PciEcam(pci))
    for index, value in {**X2APIC_REGISTERS, **MTRRS}.items():
        if index not in host.msrs.msrs:
            host.msrs.define(index, value, writable=index != MSR_MTRRCAP)
