"""The x2APIC registers a TD accesses without any exit: the CPU's APIC
virtualization serves them from the virtual-APIC page ([M-msr]
msr_config_lookup.c marks TPR, PPR, EOI, ISR, TMR, IRR and SELF_IPI as never
exiting).  tdxsim serves them from the local APIC model directly.
Register semantics follow the SDM (vol. 3, 11.12): EOI and SELF_IPI are
write-only, PPR/ISR/TMR/IRR read-only; a wrong access is #GP(0).  TPR is
kept but does not yet gate delivery.
"""
from __future__ import annotations

TPR, PPR, EOI, SELF_IPI = 0x808, 0x80A, 0x80B, 0x83F
ISR, TMR, IRR = 0x810, 0x818, 0x820  # eight 32-bit registers each


def _bits(vectors: set[int], base: int, index: int) -> int:
    first = 32 * (index - base)
    return sum(1 << (v - first) for v in vectors if first <= v < first + 32)


class VirtualApic:
    def __init__(self, lapic):
        self.lapic = lapic
        self.tpr = 0

    def read(self, index: int) -> int | None:
        """The register's value, or None for #GP."""
        if index == TPR:
            return self.tpr
        if index == PPR:
            isrv = max(self.lapic.isr, default=0)
            return self.tpr if self.tpr >> 4 >= isrv >> 4 else isrv & 0xF0
        if ISR <= index < ISR + 8:
            return _bits(self.lapic.isr, ISR, index)
        if TMR <= index < TMR + 8:
            return 0  # every interrupt tdxsim delivers is edge-triggered
        if IRR <= index < IRR + 8:
            return _bits(self.lapic.irr, IRR, index)
        return None

    def write(self, index: int, value: int) -> bool:
        """False for #GP (a read-only register or reserved bits set)."""
        if index == TPR and value >> 8 == 0:
            self.tpr = value
        elif index == EOI and value == 0:
            self.lapic.eoi()
        elif index == SELF_IPI and value >> 8 == 0:
            self.lapic.post(value)
        else:
            return False
        return True
