"""HLT support end to end: the STI shadow, interrupt delivery, KVM's halt
rules (R12), virtual time, and the lost-wakeup explorer (spec 7)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import compiled
from tdxsim import TD, VmResume
from tdxsim import explore as explore_mod
from tdxsim.host import Host
from tdxsim.events import Halted, InterruptDelivered, InterruptPosted, Woke
from tdxsim.explore import explore_wakeups
from tdxsim.vcpu.interrupts import install_idt_stub
from tdxsim.image import bundled_guest
from tdxsim.trace import render

GUESTS = Path(__file__).parent / "guests"
VECTOR = 0xEC

SHADOW_SRC = """
        .text
        .globl  shadow, double_sti, after_sti, after_second
shadow:
        sti
        mov     $1, %eax        # the shadowed instruction
after_sti:
        mov     $2, %eax
        ret
double_sti:
        sti
        sti                     # IF already 1: no new shadow
after_second:
        nop
        ret
"""


def deliveries(result):
    return [e for e in result.events if isinstance(e, InterruptDelivered)]


def with_pending(td: TD, at_boundary: int = 0) -> TD:
    install_idt_stub(td.vcpu, VECTOR)
    td.lapic.schedule(td.now_ns() + at_boundary * td.ns_per_insn, VECTOR)
    return td


def test_interrupt_pending_at_sti_is_taken_after_the_next_instruction(asm):
    """SDM / spec 7.1: STI that sets IF inhibits interrupts until the
    instruction after it completes."""
    td = with_pending(asm(SHADOW_SRC))
    result = td.call_result("shadow")
    assert result.reason == "return", result.describe()
    [delivered] = deliveries(result)
    assert delivered.rip == td.symbol("after_sti")


def test_sti_shadows_do_not_chain(asm):
    """Spec 7.1: after `sti; sti` the interrupt may be taken before the third
    instruction, since the second STI finds IF = 1."""
    td = with_pending(asm(SHADOW_SRC))
    result = td.call_result("double_sti")
    [delivered] = deliveries(result)
    assert delivered.rip == td.symbol("after_second")


IF_SETTERS_SRC = """
        .text
        .globl  by_popf, after_popf, by_iret, iret_target, timer_mid_block, tick
by_popf:
        mov     $1, %eax
        pushfq
        orq     $0x200, (%rsp)  # IF
        popfq                   # no shadow: taken before the next instruction
after_popf:
        mov     $2, %eax
        ret
by_iret:
        mov     %rsp, %rax      # an interrupt frame back to iret_target, IF = 1
        pushq   $0x10           # SS (tdxsim's flat GDT)
        pushq   %rax
        pushq   $0x202
        pushq   $0x8            # CS
        leaq    iret_target(%rip), %rax
        pushq   %rax
        iretq
iret_target:                    # RSP is back at the return address
        ret
timer_mid_block:
        sti
        nop
        .rept 20
        inc     %eax
        .endr
tick:
        ret
"""


def test_popf_and_iret_that_set_if_deliver_at_the_next_boundary(asm):
    """SDM vol. 3, 6.8.1: POPF and IRET may set IF, and neither opens a
    shadow: a waiting interrupt is taken right after them."""
    td = with_pending(asm(IF_SETTERS_SRC))
    result = td.call_result("by_popf")
    assert [d.rip for d in deliveries(result)] == [td.symbol("after_popf")]
    td = with_pending(asm(IF_SETTERS_SRC))
    result = td.call_result("by_iret")
    assert result.reason == "return", result.describe()
    assert [d.rip for d in deliveries(result)] == [td.symbol("iret_target")]


@pytest.mark.parametrize("native", [pytest.param(True, marks=compiled), False])
def test_a_timer_inside_a_block_fires_at_its_exact_instruction(asm, native):
    """With IF = 1 the interrupt is taken at the instruction boundary where
    the deadline falls, even in the middle of a translation block."""
    for boundary in (5, 13, 21):
        td = asm(IF_SETTERS_SRC, native=native)
        install_idt_stub(td.vcpu, VECTOR)
        start = td.now_ns()
        td.lapic.schedule(start + boundary * td.ns_per_insn, VECTOR)
        result = td.call_result("timer_mid_block")
        [delivered] = deliveries(result)
        # sti, nop, then incs: the boundary before instruction `boundary`
        assert delivered.rip == td.symbol("timer_mid_block") + 1 + 1 + 2 * (boundary - 2)
        assert delivered.time_ns == start + boundary * td.ns_per_insn


def test_sti_tdcall_hlt_returns_at_once_when_an_interrupt_is_pending(asm):
    """Spec 7.3 row 1: the interrupt stays pending across `sti; tdcall`, the
    host sees it, the halt returns without sleeping, and the interrupt is
    delivered after the TDCALL."""
    td = with_pending(asm("nop\n"))
    result = td.call_result("tdx_safe_halt")
    assert result.reason == "return", result.describe()
    halted = [e for e in result.events if isinstance(e, Halted)]
    woke = [e for e in result.events if isinstance(e, Woke)]
    assert len(halted) == 1 and not halted[0].irq_blocked
    assert woke and woke[0].slept_ns == 0
    [delivered] = deliveries(result)
    assert delivered.rip == result.exits[0].rip + 4  # right after the TDCALL


def test_hlt_with_r12_set_ignores_pending_interrupts(asm):
    """Spec 7.4: R12 != 0 means interrupts are blocked; a pending interrupt
    does not wake the vCPU and, without NMI/INIT, it halts forever."""
    td = with_pending(asm("nop\n"))
    result = td.call_result("tdx_halt", 1)
    assert result.reason == "halted"
    assert "R12 != 0" in result.message
    assert [e.irq_blocked for e in result.events if isinstance(e, Halted)] == [True]


def test_hlt_with_r12_clear_and_if_clear_wakes_on_pending_interrupt(asm):
    """Spec 7.3 row 2 (Linux v6.3+): HLT with IF = 0 and R12 = 0 wakes on a
    pending interrupt, which the later STI delivers."""
    td = with_pending(asm("nop\n"))
    result = td.call_result("tdx_halt_then_sti")
    assert result.reason == "return", result.describe()
    assert any(isinstance(e, Woke) for e in result.events)
    assert len(deliveries(result)) == 1


def test_halt_with_nothing_to_wake_is_a_diagnostic_not_a_hang(asm):
    td = asm("nop\n")
    result = td.call_result("tdx_halt", 0)
    assert result.reason == "halted"
    assert "halted forever" in result.message
    assert "tdx_halt" in result.message  # names the halt site


def test_halt_sleeps_until_the_timer_in_virtual_time(asm):
    """The vCPU sleeps until the TSC deadline; virtual time jumps there."""
    td = asm("nop\n")
    install_idt_stub(td.vcpu, VECTOR)
    td.host.lapic.write_lvt_timer(2 << 17 | VECTOR)
    td.host.lapic.write_tsc_deadline(5_000_000)
    result = td.call_result("tdx_safe_halt")
    assert result.reason == "return", result.describe()
    [woke] = [e for e in result.events if isinstance(e, Woke)]
    assert woke.time_ns == 5_000_000
    assert deliveries(result)[0].time_ns == 5_000_000


def test_interrupt_without_an_idt_is_a_crash_report(asm):
    td = asm(SHADOW_SRC)
    td.lapic.schedule(0, VECTOR)
    result = td.call_result("shadow")
    assert result.reason == "crash"
    assert "no IDT" in result.message and "registers" in result.message


def test_explorer_proves_tdx_safe_halt_free_of_lost_wakeups(asm):
    td = asm("nop\n")
    report = explore_wakeups(td, "tdx_safe_halt")
    assert report.injections and not report.lost_wakeups
    assert {i.outcome for i in report.injections} == {"woke"}


def test_explorer_proves_linux_63_halt_free_of_lost_wakeups(asm):
    td = asm("nop\n")
    assert not explore_wakeups(td, "tdx_halt_then_sti").lost_wakeups


def test_explorer_finds_the_window_of_sti_nop_tdcall():
    """Spec 7.3 row 3: `sti; nop; tdcall(HLT)` loses the wakeup when the
    interrupt is taken after the NOP.  The report names the instruction."""
    td = TD.from_source(GUESTS / "broken_halts.S")
    report = explore_wakeups(td, "broken_safe_halt")
    lost = {i.instruction.split(": ", 1)[1].split()[-1] for i in report.lost_wakeups}
    assert "nop" in lost and "tdcall" in lost
    # after the TDCALL has reached the host, an interrupt wakes it as it should
    assert report.injections[-1].outcome == "woke"


def test_explorer_finds_early_sti():
    """Spec 7.3 row 4: IF = 1 well before the halt TDCALL."""
    td = TD.from_source(GUESTS / "broken_halts.S")
    report = explore_wakeups(td, "early_sti_halt")
    assert len(report.lost_wakeups) >= 5
    assert "lose the wakeup" in report.render()



def test_explorer_runs_keep_the_templates_handlers_and_hostile_seed(asm):
    """Each injection run starts from a TD like the template: a handler the
    user replaced and the hostile host's seed carry over."""
    td = TD.from_source(bundled_guest("idle"), host=Host("hostile", seed=7))
    calls = []

    def hlt(host, exit):
        calls.append(exit.r12)
        return VmResume.status(0)  # never blocks: every run returns

    td.host.handlers[12] = hlt  # Instruction.HLT (spec 4.3)
    report = explore_wakeups(td, "tdx_safe_halt")
    assert calls and all(i.outcome == "returned" for i in report.injections)
    fresh = explore_mod._fresh(td, 0xEC)
    assert fresh.host.adversary.seed == 7 and fresh.host.handlers[12] is hlt

def test_rdtsc_reads_virtual_time(asm):
    """RDTSC returns the virtual TSC (1 GHz, 1 instruction = 1 ns by
    default), never the host's clock: two runs agree exactly."""
    src = """
        .globl tsc
    tsc:
        nop
        nop
        rdtsc
        shl $32, %rdx
        or %rdx, %rax
        ret
    """
    first = asm(src).call("tsc")
    assert first == asm(src).call("tsc")
    assert first == 3  # two NOPs and the RDTSC itself have retired


def test_tsc_deadline_in_the_past_fires_at_once_and_zero_disarms(asm):
    td = asm("nop\n")
    lapic = td.host.lapic
    lapic.write_lvt_timer(2 << 17 | VECTOR)
    lapic.write_tsc_deadline(1)
    assert lapic.fire_due(10) == [("timer", VECTOR)]
    lapic.write_tsc_deadline(100)
    lapic.write_tsc_deadline(0)
    assert lapic.next_deadline() is None


def test_idle_guest_is_deterministic():
    runs = []
    for _ in range(2):
        result = TD.from_source(bundled_guest("idle")).run()
        assert result.reason == "exit" and result.exit_code == 0, result.describe()
        runs.append(([render(e) for e in result.events], result.console))
    assert runs[0] == runs[1]
    assert runs[0][1].count("tick ") == 5
    kinds = {type(e).__name__ for e in TD.from_source(bundled_guest("idle")).run().events}
    assert {"Halted", "Woke", "InterruptDelivered", "InterruptPosted"} <= kinds
