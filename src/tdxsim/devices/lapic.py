"""The host's virtual local APIC (x2APIC MSR interface): pending vectors, the
in-service set, end of interrupt, and the TSC-deadline timer.

Priorities follow the APIC (Intel SDM vol. 3, 11.8): the highest pending
vector is delivered when its priority class (vector >> 4) is above that of
the highest in-service vector.  The TSC runs at 1 GHz of virtual time, so one
TSC tick is one virtual nanosecond.
"""
from __future__ import annotations

from .. import abi

LVT_VECTOR_MASK = 0xFF
LVT_MASKED = 1 << 16
LVT_MODE_SHIFT = 17
LVT_MODE_TSC_DEADLINE = 2
NMI = abi.NMI_VECTOR  # schedule(time, NMI) makes an NMI pending (external vectors are 32-255)


class LocalApic:
    def __init__(self):
        self.irr: set[int] = set()  # requested (pending) vectors
        self.isr: set[int] = set()  # in service, until EOI
        self.lvt_timer = LVT_MASKED
        self.tsc_deadline = 0  # 0 = disarmed
        self.scheduled: list[tuple[int, int]] = []  # (time, vector) from outside
        self.nmi_pending = False  # TD_VCPU_PEND_NMI: one NMI latched (spec 13.1)

    # --- interrupt state ---
    def post(self, vector: int) -> None:
        """An interrupt arrives (posted interrupt / IPI / device)."""
        self.irr.add(vector)

    def deliverable(self) -> int | None:
        """The vector the vCPU would take now if its IF allowed it."""
        if not self.irr:
            return None
        vector = max(self.irr)
        if self.isr and vector >> 4 <= max(self.isr) >> 4:
            return None
        return vector

    @property
    def nmi_coming(self) -> bool:
        """An NMI is pending or scheduled: what wakes a HLT with R12 != 0."""
        return self.nmi_pending or any(v == NMI for _, v in self.scheduled)

    def clear(self) -> None:
        """Forget pending, in-service and scheduled interrupts (NMI too)."""
        self.irr.clear()
        self.isr.clear()
        self.scheduled.clear()
        self.nmi_pending = False

    def acknowledge(self, vector: int) -> None:
        self.irr.discard(vector)
        self.isr.add(vector)

    def eoi(self, _value: int = 0) -> None:
        if self.isr:
            self.isr.discard(max(self.isr))

    # --- TSC-deadline timer ---
    @property
    def timer_mode(self) -> int:
        return self.lvt_timer >> LVT_MODE_SHIFT & 3

    def write_lvt_timer(self, value: int) -> None:
        self.lvt_timer = value & 0xFFFF_FFFF

    def write_tsc_deadline(self, value: int) -> None:
        self.tsc_deadline = value

    def schedule(self, time_ns: int, vector: int) -> None:
        """An external interrupt that arrives at a given virtual time (a
        device, another vCPU, or the interrupt-timing explorer)."""
        self.scheduled.append((time_ns, vector))
        self.scheduled.sort()

    def _timer_deadline(self) -> int | None:
        if self.tsc_deadline and self.timer_mode == LVT_MODE_TSC_DEADLINE:
            return self.tsc_deadline
        return None

    def next_deadline(self) -> int | None:
        """Virtual time of the next interrupt source: the armed timer or a
        scheduled interrupt."""
        timer = self._timer_deadline()
        if not self.scheduled:
            return timer
        first = self.scheduled[0][0]
        return first if timer is None else min(timer, first)

    def fire_due(self, now: int) -> list[tuple[str, int]]:
        """Raise every source whose time has come: [(source, vector)]."""
        fired = []
        deadline = self._timer_deadline()
        if deadline is not None and deadline <= now:
            self.tsc_deadline = 0  # one-shot
            if not self.lvt_timer & LVT_MASKED:
                fired.append(("timer", self.lvt_timer & LVT_VECTOR_MASK))
        while self.scheduled and self.scheduled[0][0] <= now:
            fired.append(("injected", self.scheduled.pop(0)[1]))
        for _, vector in fired:
            if vector == NMI:
                self.nmi_pending = True
            else:
                self.post(vector)
        return fired

    def install_msrs(self, msrs) -> None:
        """Route the x2APIC MSRs of the host's MSR store to this APIC."""
        msrs.define(abi.MSR_X2APIC_LVT_TIMER, LVT_MASKED, on_write=self.write_lvt_timer,
                    read=lambda: self.lvt_timer)
        msrs.define(abi.MSR_IA32_TSC_DEADLINE, 0, on_write=self.write_tsc_deadline,
                    read=lambda: self.tsc_deadline)
        msrs.define(abi.MSR_X2APIC_EOI, 0, on_write=self.eoi, read=lambda: 0)
