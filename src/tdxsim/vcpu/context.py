"""Several vCPUs on one Unicorn engine: each vCPU's architectural state is
a saved Unicorn context (registers, control registers, descriptor tables,
MSRs, FPU/SSE state) plus what tdxsim tracks itself (the STI shadow, NMI
blocking, its virtual time), and switching vCPUs swaps them.

One engine keeps translated code, trap hooks and the instruction counter
shared, as the vCPUs share the guest's memory; a switch costs a context
save and restore (a few microseconds), where an engine per vCPU would cost
a slow emu_start per slice and duplicate every hook.  The TLB is flushed
only when the incoming vCPU's CR3 differs.

Virtual time is per vCPU: the shared clock (clock.py) counts the engine's
instructions, and a switch sets its added time so that it reads the
incoming vCPU's own time (the difference may wrap modulo 2**64, as the C
clock computes it).
"""
from __future__ import annotations

from unicorn import x86_const as X

MASK64 = (1 << 64) - 1


class VcpuContext:
    """One vCPU's state while it is not on the engine."""

    def __init__(self, index: int, cpu):
        self.index = index
        self.saved = cpu.uc.context_save()
        self.time_ns = 0
        self.in_sti_shadow = False
        self.nmi_blocked = False

    def save(self, cpu, clock) -> None:
        cpu.uc.context_update(self.saved)
        self.time_ns = clock.now()
        self.in_sti_shadow = cpu.in_sti_shadow
        self.nmi_blocked = cpu.nmi_blocked

    def restore(self, cpu, clock) -> None:
        uc = cpu.uc
        cr3 = uc.reg_read(X.UC_X86_REG_CR3)
        uc.context_restore(self.saved)
        if uc.reg_read(X.UC_X86_REG_CR3) != cr3:
            uc.ctl_flush_tlb()
        set_time(cpu, clock, self.time_ns)
        cpu.set_sti_shadow(self.in_sti_shadow)
        cpu.nmi_blocked = self.nmi_blocked


def set_time(cpu, clock, time_ns: int) -> None:
    """Make the clock read time_ns for the vCPU on the engine now."""
    state = clock.state
    state.added_ns = (time_ns - cpu.instructions * state.ns_per_insn) & MASK64


def switch(cpu, clock, leaving: VcpuContext, entering: VcpuContext) -> None:
    """Put `entering` on the engine in place of `leaving`."""
    if leaving is entering:
        return
    leaving.save(cpu, clock)
    entering.restore(cpu, clock)
