"""The host's virtual local APIC (x2APIC MSR interface): pending vectors, the
in-service set, end of interrupt, and the timer.

Priorities follow the APIC (Intel SDM vol. 3, 11.8): the highest pending
vector is delivered when its priority class (vector >> 4) is above that of
the highest in-service vector.  The TSC runs at 1 GHz of virtual time, so one
TSC tick is one virtual nanosecond.

The state (IRR, ISR, the pending NMI, the timer's registers and expiry)
lives in one native struct per APIC (native.h `struct tdxsim_lapic`), which
the compiled rules (devices/lapic.c, through host/msr.c) read and write
too: this Python is the reference and the API, over the same fields.  C
serves this APIC's registers only when its clock and queue are the TD's
native ones (`Clock.now`, `Clock.events`), and only for the MSRs
install_msrs routes to the methods below (`compiled_register`).
"""
from __future__ import annotations

import ctypes
from typing import Callable

from .. import abi, native
from ..clock import Clock, TimedEvents
from .vectors import VectorSet

LVT_VECTOR_MASK = 0xFF
LVT_MASKED = 1 << 16
LVT_MODE_SHIFT = 17
LVT_MODE_ONE_SHOT, LVT_MODE_PERIODIC, LVT_MODE_TSC_DEADLINE = 0, 1, 2
LVT_TIMER_WRITABLE = LVT_VECTOR_MASK | LVT_MASKED | 3 << LVT_MODE_SHIFT
DIVIDE_CONFIG_WRITABLE = 0xB  # bits 0, 1 and 3 (SDM vol. 3, Figure 11-10)
NMI = abi.NMI_VECTOR  # schedule(time, NMI) makes an NMI pending (external vectors are 32-255)
# Bits 63:32 of every x2APIC register but the ICR are reserved: KVM fails
# such a write (kvm_lapic_msr_write, "Bits 63:32 are reserved in all other
# registers"), which a TD sees as INVALID_OPERAND (spec 6.2).
X2APIC_RESERVED = 0xFFFF_FFFF_0000_0000
# native.Lapic's first fields: IRR, ISR (4 words each) and nmi_pending
_VECTOR_BYTES = native.Lapic.nmi_pending.offset + native.Lapic.nmi_pending.size


def _field(name: str) -> property:
    return property(lambda self: getattr(self.state, name),
                    lambda self, value: setattr(self.state, name, value))


class ApicTimer:
    """The local APIC timer (SDM vol. 3, 11.5.4): one-shot and periodic modes
    count the initial count down to 0 at the APIC timer frequency (25 MHz over
    the divide configuration, abi.APIC_BUS_CYCLE_NS); TSC-deadline mode fires
    when the TSC reaches IA32_TSC_DEADLINE.  The count is not stored: it is
    derived from the virtual time of the next expiry, so the timer costs
    nothing between its events.  A masked LVT still counts; it only keeps
    the interrupt back (nor is it latched for an unmask later).
    state: the native struct it keeps its registers in (its APIC's)."""

    def __init__(self, clock: Callable[[], int], state: native.Lapic | None = None):
        self.clock = clock
        self.state = state if state is not None else native.Lapic()
        self.lvt = LVT_MASKED
        self.initial = 0
        self.divide = 0  # divide configuration register: divide by 2
        self.tsc_deadline = 0  # 0 = disarmed
        self.expiry = None  # one-shot/periodic: when the count reaches 0

    # --- the registers, in the native struct ---
    lvt, initial, divide, tsc_deadline = map(_field, ("lvt", "initial", "divide",
                                                      "tsc_deadline"))

    @property
    def expiry(self) -> int | None:
        state = self.state
        return state.expiry if state.counting else None

    @expiry.setter
    def expiry(self, time_ns: int | None) -> None:
        """(u64 in the struct, as lapic.c computes it)"""
        state = self.state
        state.counting, state.expiry = time_ns is not None, (time_ns or 0) & abi.MASK64

    @property
    def mode(self) -> int:
        return self.lvt >> LVT_MODE_SHIFT & 3

    @property
    def tick_ns(self) -> int:
        code = self.divide & 3 | self.divide >> 1 & 4  # bits 3, 1, 0
        return abi.APIC_BUS_CYCLE_NS * (1 if code == 7 else 2 << code)

    @property
    def period_ns(self) -> int:
        return self.initial * self.tick_ns

    # --- the registers as the MSRs read and write them ---
    def read_lvt(self) -> int:
        return self.lvt

    def read_initial(self) -> int:
        return self.initial

    def read_divide(self) -> int:
        return self.divide

    def write_lvt(self, value: int) -> None:
        """A change into or out of TSC-deadline mode disarms the timer (SDM
        11.5.4.1; KVM apic_update_lvtt); one-shot <-> periodic keeps it."""
        old_deadline_mode = self.mode == LVT_MODE_TSC_DEADLINE
        unmasking = self.lvt & LVT_MASKED and not value & LVT_MASKED
        self.lvt = value & LVT_TIMER_WRITABLE
        if old_deadline_mode != (self.mode == LVT_MODE_TSC_DEADLINE):
            self.initial, self.expiry, self.tsc_deadline = 0, None, 0
        elif unmasking:
            self._skip_to(self.clock())  # expiries while masked stay lost

    def write_initial(self, value: int) -> None:
        """Loading the initial count (re)starts the count; 0 stops it.
        Ignored in TSC-deadline mode (SDM 11.5.4.1)."""
        if self.mode == LVT_MODE_TSC_DEADLINE:
            return
        self.initial = value
        self.expiry = self.clock() + self.period_ns if value else None

    def current_count(self) -> int:
        """Ticks left until the count reaches 0; 0 once a one-shot count
        has expired, and always in TSC-deadline mode."""
        if self.expiry is None or self.mode == LVT_MODE_TSC_DEADLINE:
            return 0
        left = self.expiry - self.clock()
        if self.mode == LVT_MODE_PERIODIC:  # reloaded from the initial count
            left = left % self.period_ns or self.period_ns
        return max(0, -(-left // self.tick_ns))

    def write_divide(self, value: int) -> None:
        """A new divisor applies to the ticks still to count (as KVM's
        update_target_expiration rescales the time left)."""
        now, left = self.clock(), self.current_count()
        self.divide = value & DIVIDE_CONFIG_WRITABLE
        if self.expiry is not None and left:
            self.expiry = now + left * self.tick_ns

    def write_tsc_deadline(self, value: int) -> None:
        """Writes outside TSC-deadline mode are ignored (KVM
        kvm_set_lapic_tscdeadline_msr); 0 disarms."""
        if self.mode == LVT_MODE_TSC_DEADLINE:
            self.tsc_deadline = value

    def read_tsc_deadline(self) -> int:
        return self.tsc_deadline if self.mode == LVT_MODE_TSC_DEADLINE else 0

    # --- the events ---
    def next_expiry(self) -> int | None:
        """Virtual time of the next expiry; None when disarmed, and for a
        masked periodic timer (its expiries change nothing the guest sees,
        and a halt must not wake at each one)."""
        state = self.state  # read once: the run loop asks every slice
        lvt = state.lvt
        mode = lvt >> LVT_MODE_SHIFT & 3
        if mode == LVT_MODE_TSC_DEADLINE:
            return state.tsc_deadline or None
        if mode == LVT_MODE_PERIODIC and lvt & LVT_MASKED or not state.counting:
            return None
        return state.expiry

    def fire(self, now: int) -> int | None:
        """The vector to post if the timer expired by now."""
        if self.mode == LVT_MODE_TSC_DEADLINE:
            if not self.tsc_deadline or self.tsc_deadline > now:
                return None
            self.tsc_deadline = 0  # one-shot
        elif self.expiry is None or self.expiry > now:
            return None
        else:
            self._skip_to(now)
        return None if self.lvt & LVT_MASKED else self.lvt & LVT_VECTOR_MASK

    def _skip_to(self, now: int) -> None:
        """Past the expiries due by now: a one-shot count stops at 0, a
        periodic one reloads (several missed periods post one interrupt,
        as the IRR holds a vector once)."""
        if self.expiry is None or self.expiry > now:
            return
        if self.mode != LVT_MODE_PERIODIC:
            self.expiry = None
        else:
            self.expiry += (now - self.expiry) // self.period_ns * self.period_ns + self.period_ns

    def install_msrs(self, msrs) -> None:
        define, reserved = msrs.define, X2APIC_RESERVED
        define(abi.MSR_X2APIC_LVT_TIMER, LVT_MASKED, on_write=self.write_lvt,
               read=self.read_lvt, reserved=reserved)
        define(abi.MSR_X2APIC_TIMER_INITIAL_COUNT, 0, on_write=self.write_initial,
               read=self.read_initial, reserved=reserved)
        define(abi.MSR_X2APIC_TIMER_CURRENT_COUNT, 0, writable=False, read=self.current_count)
        define(abi.MSR_X2APIC_TIMER_DIVIDE_CONFIG, 0, on_write=self.write_divide,
               read=self.read_divide, reserved=reserved)
        define(abi.MSR_IA32_TSC_DEADLINE, 0, on_write=self.write_tsc_deadline,
               read=self.read_tsc_deadline)


class LocalApic:
    def __init__(self, clock: Callable[[], int] = lambda: 0,
                 events: TimedEvents | None = None):
        """clock: virtual time now; events: the TD's queue of timed events
        (clock.py), where interrupts scheduled from outside wait."""
        self.state = state = native.Lapic()
        self.irr = VectorSet(state.irr)  # requested (pending) vectors
        self.isr = VectorSet(state.isr)  # in service, until EOI
        self.timer = ApicTimer(clock, state)
        self.events = events if events is not None else TimedEvents()
        self._arrived: list[tuple[str, int]] = []  # scheduled interrupts now due
        self._nmis_scheduled = 0
        owner = getattr(clock, "__self__", None)  # C tells time only by the TD's clock
        if type(owner) is Clock and getattr(clock, "__func__", None) is Clock.now \
                and self.events is owner.events:
            state.clock = ctypes.pointer(owner.state)
        self.pointer = ctypes.pointer(state)  # for C (host, vCPU): made once
        self._vectors = ctypes.addressof(state)  # (clear)

    @property
    def nmi_pending(self) -> bool:
        """TD_VCPU_PEND_NMI: one NMI latched (spec 13.1)."""
        return bool(self.state.nmi_pending)

    @nmi_pending.setter
    def nmi_pending(self, pending: bool) -> None:
        self.state.nmi_pending = bool(pending)

    # --- interrupt state ---
    def post(self, vector: int) -> None:
        """An interrupt arrives (posted interrupt / IPI / device)."""
        self.irr.add(vector)

    def deliverable(self) -> int | None:
        """The vector the vCPU would take now if its IF allowed it."""
        vector = self.irr.highest()
        if vector is None:
            return None
        in_service = self.isr.highest()
        if in_service is not None and vector >> 4 <= in_service >> 4:
            return None
        return vector

    @property
    def arrivals_waiting(self) -> bool:
        """Scheduled interrupts have arrived (the clock's queue ran them,
        perhaps from another vCPU's turn) that fire_due has not raised yet."""
        return bool(self._arrived)

    @property
    def nmi_coming(self) -> bool:
        """An NMI is pending or scheduled: what wakes a HLT with R12 != 0."""
        return self.nmi_pending or self._nmis_scheduled > 0

    def clear(self) -> None:
        """Forget pending, in-service and scheduled interrupts (NMI too)."""
        ctypes.memset(self._vectors, 0, _VECTOR_BYTES)  # IRR, ISR and the pending NMI at once
        self.events.cancel(self)
        self._arrived.clear()
        self._nmis_scheduled = 0

    def acknowledge(self, vector: int) -> None:
        self.irr.discard(vector)
        self.isr.add(vector)

    def eoi(self, _value: int = 0) -> None:
        in_service = self.isr.highest()
        if in_service is not None:
            self.isr.discard(in_service)

    def read_eoi(self) -> int:
        return 0  # write-only; KVM reads it as 0

    # --- the timer (ApicTimer) ---
    @property
    def lvt_timer(self) -> int:
        return self.timer.lvt

    @property
    def tsc_deadline(self) -> int:
        return self.timer.tsc_deadline

    def write_lvt_timer(self, value: int) -> None:
        self.timer.write_lvt(value)

    def write_tsc_deadline(self, value: int) -> None:
        self.timer.write_tsc_deadline(value)

    def schedule(self, time_ns: int, vector: int) -> None:
        """An external interrupt that arrives at a given virtual time (a
        device, another vCPU, or the interrupt-timing explorer)."""
        if type(vector) is not int or not 0 <= vector < 256:
            raise ValueError(f"an interrupt vector is 0..255, not {vector!r}")
        self._nmis_scheduled += vector == NMI
        self.events.at(time_ns, lambda: self._arrive(vector), owner=self)

    def _arrive(self, vector: int) -> None:
        self._nmis_scheduled -= vector == NMI
        self._arrived.append(("injected", vector))

    def next_deadline(self) -> int | None:
        """Virtual time of the next interrupt source: the armed timer or the
        next timed event (a scheduled interrupt, or host work that may
        raise one)."""
        if self._arrived:  # released by another vCPU's turn (several vCPUs share the queue)
            return self.timer.clock()
        timer = self.timer.next_expiry()  # the run loop asks a few times per slice
        event = self.events.next_time()
        if event is None:
            return timer
        return event if timer is None else min(timer, event)

    def fire_due(self, now: int) -> list[tuple[str, int]]:
        """Run the timed events due, then raise every source whose time has
        come: [(source, vector)], the timer first."""
        self.events.run_due(now)
        fired = []
        vector = self.timer.fire(now)
        if vector is not None:
            fired.append(("timer", vector))
        fired += self._arrived
        self._arrived.clear()
        for _, vector in fired:
            if vector == NMI:
                self.nmi_pending = True
            else:
                self.post(vector)
        return fired

    def install_msrs(self, msrs) -> None:
        """Route the x2APIC MSRs of the host's MSR store to this APIC."""
        self.timer.install_msrs(msrs)
        msrs.define(abi.MSR_X2APIC_EOI, 0, on_write=self.eoi, read=self.read_eoi,
                    reserved=X2APIC_RESERVED)


# The MSRs devices/lapic.c serves, by the (read, on_write) install_msrs gives them.
_COMPILED = {
    abi.MSR_X2APIC_LVT_TIMER: (ApicTimer.read_lvt, ApicTimer.write_lvt),
    abi.MSR_X2APIC_TIMER_INITIAL_COUNT: (ApicTimer.read_initial, ApicTimer.write_initial),
    abi.MSR_X2APIC_TIMER_CURRENT_COUNT: (ApicTimer.current_count, None),
    abi.MSR_X2APIC_TIMER_DIVIDE_CONFIG: (ApicTimer.read_divide, ApicTimer.write_divide),
    abi.MSR_IA32_TSC_DEADLINE: (ApicTimer.read_tsc_deadline, ApicTimer.write_tsc_deadline),
    abi.MSR_X2APIC_EOI: (LocalApic.read_eoi, LocalApic.eoi),
}


def compiled_register(index: int, read, on_write):
    """The native APIC whose register MSR `index` is, when C may serve it:
    its callbacks are the ones install_msrs gave it, of one ApicTimer or
    LocalApic (not a subclass) that tells time by the TD's clock.  None:
    Python serves it (a callback or class the user replaced)."""
    owner = getattr(read, "__self__", None)
    functions = (getattr(read, "__func__", None), getattr(on_write, "__func__", None))
    if _COMPILED.get(index) != functions or type(owner) not in (ApicTimer, LocalApic) \
            or on_write is not None and on_write.__self__ is not owner:
        return None
    return owner.state if owner.state.clock else None
