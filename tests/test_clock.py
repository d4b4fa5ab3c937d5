"""The TD's one virtual clock (clock.py; README "Design: one clock").

tdxsim's time model: the TSC runs at 1 GHz of virtual time, every retired
instruction takes ns_per_insn (1 by default), a halted vCPU adds the time it
sleeps without instructions, and a platform may charge a cost per TD exit.
The expected numbers below are counted by hand from the guest code.
GHCI layouts: RDMSR is R11 = 31, R12 = index -> R11 = value (spec 4.3);
IA32_TSC is MSR 0x10 (SDM vol. 4); TDG.VP.VMCALL is leaf 0 (spec 1.3)."""
from __future__ import annotations

import pytest

from conftest import compiled
from tdxsim import TD
from tdxsim.clock import Clock
from tdxsim.events import Woke
from tdxsim.native import Counter
from tdxsim.vcpu.interrupts import install_idt_stub

VECTOR = 0xEC

# rdtsc is instruction 3; RDMSR(IA32_TSC) through TDG.VP.VMCALL is the
# 10th: 2 nops, rdtsc, 6 register moves, tdcall.
TSC_PAIR = """
        .globl tsc_pair
    tsc_pair:
        nop
        nop
        rdtsc                   # 3
        shl $32, %rdx
        or %rdx, %rax
        mov %rax, %r14          # 6: RDTSC's value kept in R14
        xor %eax, %eax          # TDG.VP.VMCALL
        mov $0x1c00, %ecx       # R10, R11, R12 exposed
        xor %r10d, %r10d
        mov $31, %r11d          # Instruction.RDMSR
        mov $0x10, %r12d        # IA32_TSC
        tdcall                  # 12
        mov %r11, %rax          # the TSC MSR as the host read it
        sub %r14, %rax          # returned: MSR - RDTSC
        ret
"""


def test_clock_is_instructions_times_rate_plus_time_without_instructions():
    counter = Counter()
    clock = Clock(ns_per_insn=3)
    assert clock.now() == 0  # no vCPU ticks it yet
    clock.count(counter)
    counter.count = 10
    assert clock.now() == 30
    clock.advance(7)  # halted: time passes, no instruction retires
    assert (clock.now(), counter.count) == (37, 10)
    clock.advance_to(100)
    assert clock.now() == 100
    clock.advance_to(50)  # a deadline already past: time never goes back
    assert clock.now() == 100
    assert clock.insns_until(100) == 1 and clock.insns_until(106) == 2
    assert clock.insns_until(107) == 3  # the instruction that reaches it


def test_exit_cost_is_added_per_exit():
    clock = Clock(exit_ns=10_000)
    clock.count(Counter())
    clock.exit_to_host()
    clock.exit_to_host()
    assert clock.now() == 20_000


def test_ns_per_insn_must_be_positive():
    with pytest.raises(ValueError):
        Clock(ns_per_insn=0)


@pytest.mark.parametrize("rate", [1, 3])
def test_tsc_msr_and_rdtsc_read_the_same_clock(asm, rate):
    """RDTSC at instruction 3 reads 3 ticks per ns_per_insn; the host's
    IA32_TSC, read for the exit at instruction 12 (the TDCALL counts, as
    RDTSC counts itself), is 9 instructions on and is the exit's time."""
    td = asm(TSC_PAIR, ns_per_insn=rate)
    result = td.call_result("tsc_pair")
    assert result.return_value == 9 * rate
    [exit] = result.exits
    assert exit.returned[11] == exit.time_ns == 12 * rate
    assert result.time_ns == td.now_ns() == td.host.msrs.read(0x10) == 15 * rate


def test_halted_time_advances_the_clock_without_instructions(asm):
    """HLT TDVMCALL with R12 = 0 and a TSC-deadline timer armed at 5 ms
    (spec 7.4): the vCPU sleeps until the deadline, virtual time jumps
    there and the instruction count does not move."""
    td = asm("nop\n")
    install_idt_stub(td.vcpu, VECTOR)
    td.host.lapic.write_lvt_timer(2 << 17 | VECTOR)  # TSC-deadline mode (SDM 11.5.4.1)
    td.host.lapic.write_tsc_deadline(5_000_000)
    result = td.call_result("tdx_safe_halt")
    [woke] = [e for e in result.events if isinstance(e, Woke)]
    assert woke.time_ns == 5_000_000
    assert result.time_ns - result.instructions == woke.slept_ns > 4_999_000


SERIAL_TWICE = """
        .globl two_exits
    two_exits:
        xor %eax, %eax          # TDG.VP.VMCALL
        mov $0xfc00, %ecx       # R10..R15 exposed
        xor %r10d, %r10d
        mov $30, %r11d          # Instruction.IO
        mov $1, %r12d           # size 1
        mov $1, %r13d           # write
        mov $0x3f8, %r14d       # COM1
        mov $0x41, %r15d        # 'A'
        tdcall                  # exit 1
        xor %eax, %eax
        tdcall                  # exit 2: 2 instructions later
        ret
"""


@pytest.mark.parametrize("native", [False, pytest.param(True, marks=compiled)])
def test_each_exit_to_the_host_costs_exit_ns_on_both_paths(asm, native):
    """A platform that charges 10 us per exit (the firmware TD's): the
    second exit comes 2 instructions and one exit cost after the first,
    whether Python or the compiled path served the first."""
    td = asm(SERIAL_TWICE, exit_ns=10_000, native=native)
    result = td.call_result("two_exits")
    assert result.reason == "return", result.describe()
    assert result.console == "AA"
    first, second = result.exits
    assert second.time_ns - first.time_ns == 2 + 10_000
    assert result.time_ns == result.instructions + 2 * 10_000
