"""A TD with several vCPUs: their contexts on the one engine, whose turn it
is (scheduler.py), halts that block one vCPU while the others run, and
wake-ups across vCPUs.

The TD runs the current vCPU with its usual loop; this object tells it when
to switch (the quantum is over, the vCPU halted or yielded) and makes the
switch: the vCPU's context (vcpu/context.py), the module's TDVPS
(`module.select`), and the local APIC the TD delivers from.  Every switch
is a `Scheduled` event, so the trace names the vCPU of every line.

A halt (Instruction.HLT) ends the vCPU's turn unless a wake event is
already there (KVM __kvm_emulate_halt); a halted vCPU gets a turn again
only at the virtual time its wake event can come: a timer, an interrupt
or kick sent by another vCPU (at the sender's time), host work.  When
every vCPU is halted and none can ever wake, the run ends 'halted'.
"""
from __future__ import annotations

from . import abi
from .events import Halted, Scheduled, Woke
from .scheduler import QUANTUM_NS, Scheduler
from .vcpu.context import VcpuContext, set_time, switch


class Smp:
    def __init__(self, td, seed: int = 0, quantum_ns: int = QUANTUM_NS):
        self.td = td
        self.count = td.config.vcpus
        self.seed, self.quantum_ns = seed, quantum_ns
        self.contexts: list[VcpuContext] = []
        self.run = None  # the Execution running now

    # --- the TD's hooks ---
    def reset(self) -> None:
        """Every vCPU at the state vCPU 0 has now (the entry point), with its
        index in RSI, as TDVF expects (spec 14)."""
        td, cpu = self.td, self.td.vcpu
        self.contexts = []
        for index in range(self.count):
            cpu.regs.set_gprs({abi.RSI: index})
            self.contexts.append(VcpuContext(index, cpu))
        cpu.regs.set_gprs({abi.RSI: 0})
        self.sched = Scheduler(self.count, self.seed, self.quantum_ns)
        now = td.clock.now()
        self.sched.time = [now] * self.count
        for context in self.contexts:
            context.time_ns = now
        self.halts: list[tuple[bool, int, int] | None] = [None] * self.count  # (R12, since, rip)
        self.current = 0
        self._enter(0)

    def start(self, run) -> None:
        """A run begins (execution.py; the TD's event log is new): name the
        vCPU."""
        self.run = run
        run.lapic = self.td.lapic
        self.planned = self.sched.planned(self.current)
        self.end = self.sched.quantum_end(self.current)
        self.yielded = False
        self._record_switch()

    def must_switch(self) -> bool:
        return (self.yielded or self.halts[self.current] is not None
                or self.td.clock.now() >= self.end)

    def exact_end(self, limit: int) -> bool:
        """Must a slice that ends at `limit` end exactly there?  Not when the
        quantum is what ends it (a block boundary is as good), unless a
        tool planned the turn (explore.py)."""
        return self.planned or limit != self.td.vcpu.instructions + self.insns_left()

    def quantum_over(self) -> None:
        self.end = 0

    def insns_left(self) -> int:
        """Instructions until the current quantum ends (at least 1)."""
        return self.td.clock.insns_until(self.end)

    def halt(self, irq_blocked: bool) -> None:
        """Instruction.HLT from the current vCPU: resume at once if a wake
        event is already there, else block it (spec 7.4)."""
        td, index = self.td, self.current
        now = td.clock.now()
        rip = td.vcpu.regs.rip - abi.TDCALL_LEN
        td.events.append(Halted(now, rip, irq_blocked))
        event = td.host.vcpus[index].wake_event(irq_blocked)
        if event is not None:
            td.events.append(Woke(now, None if event == "kick" else event, 0))
        else:
            self.halts[index] = (irq_blocked, now, rip)

    def set_time(self, index: int, time_ns: int) -> None:
        """vCPU `index`'s virtual time is time_ns from now (a tool staging a
        run, explore.py)."""
        self.sched.time[index] = time_ns
        if index == self.current:
            set_time(self.td.vcpu, self.td.clock, time_ns)
        else:
            self.contexts[index].time_ns = time_ns

    def enter(self, index: int) -> None:
        """Put vCPU `index` on the engine (a tool preparing its registers)."""
        self._enter(index)

    def yield_to(self, target: int) -> None:
        self.sched.yield_to(target)
        self.yielded = True

    def switch(self):
        """End the current vCPU's turn and start the next one's: None, or
        the run's end when every vCPU is halted for good."""
        sched, td = self.sched, self.td
        sched.ran(self.current, td.clock.now())
        self._refresh_halts()
        while True:
            index = sched.pick()
            if index is None:
                return self.run._end("halted", self._deadlock())
            self._enter(index)
            self._record_switch()  # before its wake-up's events: they are its own
            if self.halts[index] is None or self._try_wake(index):
                break
        self.planned = sched.planned(index)
        self.end = sched.quantum_end(index)
        self.yielded = False
        return None

    # --- inside ---
    def _enter(self, index: int) -> None:
        td = self.td
        if self.contexts and index != self.current:
            switch(td.vcpu, td.clock, self.contexts[self.current], self.contexts[index])
        self.current = index
        td.vcpu_index = index
        td.module.select(index)
        td.lapic = td.host.vcpus[index].lapic
        td.compiled_vcpu()
        if self.run is not None:
            self.run.lapic = td.lapic

    def _record_switch(self) -> None:
        td = self.td
        td.events.append(Scheduled(td.clock.now(), self.current, td.vcpu.regs.rip))

    def _refresh_halts(self) -> None:
        """A halted vCPU's next chance to wake: when another vCPU kicked it;
        at once if a wake event is already there; else its next timer or
        an interrupt sent to it (at the sender's time)."""
        for index, halt in enumerate(self.halts):
            if halt is not None:
                host_vcpu = self.td.host.vcpus[index]
                lapic = host_vcpu.lapic
                if host_vcpu.kicked is not None:
                    at = host_vcpu.kicked
                elif lapic.nmi_pending or lapic.arrivals_waiting or \
                        not halt[0] and lapic.deliverable() is not None:
                    at = self.sched.time[index]
                else:
                    at = self._wake_time(index, halt[0])
                self.sched.halt(index, at)

    def _wake_time(self, index: int, irq_blocked: bool) -> int | None:
        """When a halted vCPU's timers or scheduled interrupts act next; with
        interrupts reported blocked, only a coming NMI counts."""
        td = self.td
        if irq_blocked and not td.host.vcpus[index].lapic.nmi_coming:
            return None
        return td.host.next_deadline(index)

    def _try_wake(self, index: int) -> bool:
        """The halted vCPU's turn comes at its wake time: does it wake?"""
        td, sched = self.td, self.sched
        irq_blocked, since, rip = self.halts[index]
        if sched.wake_at[index] is not None:
            td.clock.advance_to(sched.wake_at[index])
        self.run._fire_timers()
        event = td.host.vcpus[index].wake_event(irq_blocked)
        now = td.clock.now()
        if event is None:
            sched.ran(index, now)
            sched.halt(index, self._wake_time(index, irq_blocked))
            return False
        self.halts[index] = None
        sched.wake(index, now)
        td.events.append(Woke(now, None if event == "kick" else event, now - since))
        return True

    def _deadlock(self) -> str:
        td = self.td
        lines = []
        for index, halt in enumerate(self.halts):
            irq_blocked, _, rip = halt
            why = "R12 != 0: only an NMI could wake it" if irq_blocked else \
                "no interrupt pending, no timer armed"
            lines.append(f"vCPU {index} at {td.image.describe(rip)} ({why})")
        return ("every vCPU halted forever (a lost wakeup or a deadlock): "
                + "; ".join(lines))

