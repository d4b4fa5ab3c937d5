"""What the host keeps per vCPU (KVM's struct kvm_vcpu): the local APIC and
its MSRs, the PV-unhalt flag of KVM_HC_KICK_CPU, and the wake rule of a
halted vCPU.  Everything else the host has (devices, quote service, CPUID
table, timed work) is shared by the TD's vCPUs.
"""
from __future__ import annotations

from .. import abi
from ..devices.lapic import NMI, LocalApic
from . import msr


class HostVcpu:
    def __init__(self, index: int, clock):
        """clock: the TD's clock (clock.py): its time, and its one queue of
        timed events, where this vCPU's scheduled interrupts wait."""
        self.index = index
        self.apic_id = index  # its x2APIC ID (a one-vCPU host may give another: vcpu_apic_id)
        self.msrs = msr.MsrStore(clock.now)
        self.lapic = LocalApic(clock.now, clock.events)
        self.lapic.install_msrs(self.msrs)
        # The ICR reads back the last IPI sent; a write is an IPI, which only
        # Python sends (msr.handle_wrmsr, ipi.py): the callback keeps C away.
        self.msrs.define(abi.MSR_X2APIC_ICR, 0, on_write=lambda value: None)
        self.kicked: int | None = None  # KVM pv_unhalted: set at this virtual time

    def wake_event(self, irq_blocked: bool) -> int | str | None:
        """What ends a halt now (KVM kvm_vcpu_has_events, spec 7.4): an NMI,
        a kick ('kick'; it is consumed), or, when the HLT reported
        interrupts unblocked (R12 = 0), a deliverable vector.  None: none."""
        lapic = self.lapic
        if lapic.nmi_pending:
            return NMI
        if self.kicked is not None:
            self.kicked = None
            return "kick"
        return None if irq_blocked else lapic.deliverable()
