"""The local APIC timer's one-shot, periodic and TSC-deadline modes.

Expected values come from the Intel SDM vol. 3, 11.5.4 (the timer; Figure
11-10 the divide configuration: bits 3,1,0 = 000 -> 2, 001 -> 4, 010 -> 8,
011 -> 16, 100 -> 32, 101 -> 64, 110 -> 128, 111 -> 1) and 11.5.4.1
(TSC-deadline mode), and from TDX's fixed 25 MHz core crystal clock, one
APIC timer tick = 40 ns before division (Linux 6fef518594bc, KVM's
KVM_CAP_X86_APIC_BUS_CYCLES_NS; tdx-interface.md has no APIC timer entry).
The virtual TSC runs at 1 GHz: one TSC tick per virtual nanosecond.
"""
from __future__ import annotations

import pytest

from conftest import compiled

from tdxsim.devices.lapic import LocalApic
from tdxsim.events import InterruptDelivered, InterruptPosted
from tdxsim.host.msr import MsrStore

TICK_NS = 40  # 1 / 25 MHz
LVT, INITIAL, CURRENT, DIVIDE, DEADLINE = 0x832, 0x838, 0x839, 0x83E, 0x6E0
PERIODIC, TSC_DEADLINE, MASKED = 1 << 17, 2 << 17, 1 << 16
VECTOR = 0x20


class Apic:
    """A LocalApic behind the host's MSR store, on a clock the test sets."""

    def __init__(self):
        self.now = 0
        self.lapic = LocalApic(clock=lambda: self.now)
        self.msrs = MsrStore()
        self.lapic.install_msrs(self.msrs)

    def wr(self, index: int, value: int) -> bool:
        return self.msrs.write(index, value)

    def rd(self, index: int) -> int:
        return self.msrs.read(index)

    def fire(self) -> list[tuple[str, int]]:
        return self.lapic.fire_due(self.now)


@pytest.mark.parametrize("config,divisor", [(0x0, 2), (0x1, 4), (0x2, 8), (0x3, 16), (0x8, 32),
                                            (0x9, 64), (0xA, 128), (0xB, 1)])
def test_one_shot_counts_down_at_25_mhz_over_the_divisor(config, divisor):
    apic = Apic()
    apic.wr(DIVIDE, config)
    apic.wr(LVT, VECTOR)  # one-shot
    apic.wr(INITIAL, 1000)
    tick = TICK_NS * divisor
    assert apic.rd(CURRENT) == 1000
    apic.now = tick - 1
    assert apic.rd(CURRENT) == 1000  # the first decrement after one whole tick
    apic.now = 250 * tick
    assert apic.rd(CURRENT) == 750
    assert apic.lapic.next_deadline() == 1000 * tick
    assert apic.fire() == []
    apic.now = 1000 * tick
    assert apic.fire() == [("timer", VECTOR)]
    assert apic.rd(CURRENT) == 0 and apic.rd(INITIAL) == 1000  # stays at 0
    apic.now = 5000 * tick
    assert apic.fire() == [] and apic.lapic.next_deadline() is None


def test_periodic_reloads_the_initial_count_and_fires_each_period():
    apic = Apic()
    apic.wr(DIVIDE, 0xB)  # divide by 1
    apic.wr(LVT, PERIODIC | VECTOR)
    apic.wr(INITIAL, 2500)  # 100 us
    for k in (1, 2, 3):
        assert apic.lapic.next_deadline() == k * 100_000
        apic.now = k * 100_000
        assert apic.fire() == [("timer", VECTOR)]
        assert apic.rd(CURRENT) == 2500
        apic.lapic.eoi()
    apic.now = 310_000
    assert apic.rd(CURRENT) == 2250
    apic.now = 1_000_000 + 40  # missed periods: one interrupt (the IRR holds a vector once)
    assert apic.fire() == [("timer", VECTOR)]
    assert apic.lapic.next_deadline() == 1_100_000 and apic.rd(CURRENT) == 2499


def test_writing_0_to_the_initial_count_stops_the_timer():
    apic = Apic()
    apic.wr(LVT, PERIODIC | VECTOR)
    apic.wr(INITIAL, 10)
    apic.wr(INITIAL, 0)
    assert apic.lapic.next_deadline() is None and apic.rd(CURRENT) == 0


def test_current_count_is_read_only():
    apic = Apic()
    assert apic.wr(CURRENT, 5) is False  # KVM: INVALID_OPERAND (spec 6.2)


def test_masked_timer_counts_but_raises_nothing_and_unmasking_brings_no_stale_tick():
    apic = Apic()
    apic.wr(DIVIDE, 0xB)
    apic.wr(LVT, MASKED | PERIODIC | VECTOR)
    apic.wr(INITIAL, 100)  # 4 us
    assert apic.lapic.next_deadline() is None  # a halt must not wake for it
    apic.now = 4_000 * 3 + 400
    assert apic.rd(CURRENT) == 90 and apic.fire() == []
    apic.wr(LVT, PERIODIC | VECTOR)
    assert apic.fire() == []
    assert apic.lapic.next_deadline() == 16_000


def test_one_shot_and_periodic_switch_without_disarming():
    apic = Apic()
    apic.wr(DIVIDE, 0xB)
    apic.wr(LVT, VECTOR)
    apic.wr(INITIAL, 100)
    apic.now = 1000
    apic.wr(LVT, PERIODIC | VECTOR)
    assert apic.rd(CURRENT) == 75 and apic.lapic.next_deadline() == 4000


def test_tsc_deadline_mode_transitions_disarm_and_exclude_the_other_registers():
    """SDM 11.5.4.1: in TSC-deadline mode initial-count writes are ignored
    and the current count reads 0; in the other modes IA32_TSC_DEADLINE
    writes are ignored and it reads 0 (KVM does the same); a change into or
    out of TSC-deadline mode disarms the timer."""
    apic = Apic()
    apic.wr(LVT, VECTOR)
    apic.wr(DEADLINE, 500)
    assert apic.rd(DEADLINE) == 0
    apic.wr(INITIAL, 100)
    apic.wr(LVT, TSC_DEADLINE | VECTOR)  # disarms the one-shot count
    assert apic.rd(INITIAL) == 0 and apic.rd(CURRENT) == 0
    apic.wr(INITIAL, 100)
    assert apic.rd(INITIAL) == 0
    apic.wr(DEADLINE, 500)
    assert apic.rd(DEADLINE) == 500 and apic.lapic.next_deadline() == 500
    apic.wr(LVT, PERIODIC | VECTOR)  # disarms the deadline
    assert apic.lapic.next_deadline() is None and apic.rd(DEADLINE) == 0


def test_a_new_divisor_applies_to_the_ticks_left():
    apic = Apic()
    apic.wr(DIVIDE, 0xB)
    apic.wr(LVT, VECTOR)
    apic.wr(INITIAL, 100)
    apic.now = 2000  # 50 ticks of 40 ns counted
    apic.wr(DIVIDE, 0x0)  # divide by 2: 80 ns a tick
    assert apic.rd(CURRENT) == 50 and apic.rd(DIVIDE) == 0
    assert apic.lapic.next_deadline() == 2000 + 50 * 80


def test_reserved_bits_of_the_divide_and_lvt_registers_read_as_zero():
    apic = Apic()
    apic.wr(DIVIDE, 0xFFFF_FFFF)
    assert apic.rd(DIVIDE) == 0xB
    apic.wr(LVT, 0xFFFF_FFFF)
    assert apic.rd(LVT) == 0x7_00FF  # vector, mask, mode (delivery status 12 is read-only)


PERIODIC_GUEST = r"""
.set VE_VECTOR, 20
.set TIMER_VECTOR, 0x20
        .text
        .globl  _start
_start:
        lea     idt(%rip), %rdi
        call    tdx_default_gates
        lea     idt(%rip), %rdi
        mov     $VE_VECTOR, %esi
        lea     tdx_ve_entry(%rip), %rdx
        call    tdx_set_gate
        lea     idt(%rip), %rdi
        mov     $TIMER_VECTOR, %esi
        lea     timer_irq(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)
        xor     %edx, %edx
        mov     $0x83E, %ecx            # divide configuration: by 1
        mov     $0xB, %eax
        wrmsr
        mov     $0x832, %ecx            # LVT timer: periodic, vector 0x20
        mov     $(1 << 17 | TIMER_VECTOR), %eax
        wrmsr
        mov     $0x838, %ecx            # initial count: 2500 ticks = 100 us
        mov     $2500, %eax
        wrmsr
1:      cmpq    $3, ticks(%rip)
        jae     2f
        sti
        hlt
        cli
        jmp     1b
2:      mov     $0x839, %ecx            # current count
        rdmsr
        mov     %eax, count(%rip)
        xor     %eax, %eax
        out     %al, $0xF4

timer_irq:
        push    %rax
        push    %rcx
        push    %rdx
        incq    ticks(%rip)
        mov     $0x80B, %ecx            # EOI
        xor     %eax, %eax
        xor     %edx, %edx
        wrmsr
        pop     %rdx
        pop     %rcx
        pop     %rax
        iretq

        .section .rodata
idt_ptr:    .word 256 * 16 - 1
            .quad idt
        .data
        .balign 16
idt:        .fill 256 * 16, 1, 0
        .globl  ticks, count
ticks:      .quad 0
count:      .quad 0
"""


def test_guest_programs_a_periodic_timer_with_wrmsr_and_halts_between_ticks(asm):
    """The firmware's pattern (DXE: LVT 0x832 periodic, 0x838 initial count),
    through #VE and TDVMCALL: three ticks exactly one period apart."""
    td = asm(PERIODIC_GUEST)
    result = td.run()
    assert result.reason == "exit" and result.exit_code == 0, result.describe()
    times = [e.time_ns for e in result.events
             if isinstance(e, InterruptPosted) and e.source == "timer"]
    assert len(times) == 3
    assert times[1] - times[0] == times[2] - times[1] == 2500 * TICK_NS
    count = int.from_bytes(td.read(td.symbol("count"), 4), "little")
    assert 2400 < count <= 2500  # read a few hundred instructions after the third tick


def test_cpuid_0x15_reports_the_25_mhz_crystal_and_the_1_ghz_tsc(asm):
    """CPUID(0x15): EAX/EBX = TSC / crystal ratio, ECX = crystal Hz, fixed by
    TDX at 25 MHz; our TSC counts virtual nanoseconds: EBX/EAX = 40/1."""
    td = asm("""
        .text
        .globl  leaf15
    leaf15:
        push    %rbx
        mov     $0x15, %eax
        xor     %ecx, %ecx
        cpuid
        mov     %eax, out(%rip)
        mov     %ebx, out+4(%rip)
        mov     %ecx, out+8(%rip)
        pop     %rbx
        ret
        .data
        .globl  out
    out: .fill 12, 1, 0
    """)
    td.call("leaf15")
    raw = td.read(td.symbol("out"), 12)
    assert [int.from_bytes(raw[i:i + 4], "little") for i in (0, 4, 8)] == [1, 40, 25_000_000]


DEADLINE_IN_A_LOOP = """
        .set    VECTOR, 0xEC
        .text
        .globl  _start, spin, spun
_start:
        lea     idt(%rip), %rdi
        mov     $VECTOR, %esi
        lea     timer_irq(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)
        rdtsc                           # (RDTSC and STI stop the vCPU: not after the arming)
        shl     $32, %rdx
        or      %rdx, %rax
        lea     5000(%rax), %rbx        # 5 us after the RDTSC (RBX survives the calls)
        mov     %rbx, deadline(%rip)
        sti                             # IF = 1 from here on
        mov     $0x832, %edi            # LVT timer: TSC-deadline mode (SDM 11.5.4.1)
        mov     $(2 << 17 | VECTOR), %esi
        call    tdx_wrmsr               # TDG.VP.VMCALL<Instruction.WRMSR>
        mov     $0x6E0, %edi            # IA32_TSC_DEADLINE
        mov     %rbx, %rsi
        call    tdx_wrmsr
        mov     $100000, %ecx           # 200,000 instructions
spin:   dec     %ecx
        jnz     spin
spun:   cli
        xor     %edi, %edi
        call    tdx_debug_exit

timer_irq:
        iretq

        .section .rodata
idt_ptr:    .word 256 * 16 - 1
            .quad idt
        .data
        .balign 16
idt:        .fill 256 * 16, 1, 0
        .globl  deadline
deadline:   .quad 0
"""


@pytest.mark.parametrize("replaced", [False, True])
@pytest.mark.parametrize("native", [pytest.param(True, marks=compiled), False])
def test_a_deadline_armed_by_a_tdvmcall_fires_on_time_inside_a_long_slice(asm, native, replaced):
    """SDM 11.5.4.1: the timer fires when the TSC reaches IA32_TSC_DEADLINE.
    Armed through TDG.VP.VMCALL<WRMSR> while nothing else was due, the
    interrupt still comes at that instruction boundary, not at the end of
    the slice that was running when the guest armed it; also when a user's
    Python handler serves the WRMSR (through the host bridge when compiled)."""
    td = asm(DEADLINE_IN_A_LOOP, native=native)
    if replaced:
        wrmsr = td.host.handlers[32]  # Instruction.WRMSR (spec 4.7)
        td.host.handlers[32] = lambda host, exit: wrmsr(host, exit)
    result = td.run()
    assert result.reason == "exit" and result.exit_code == 0, result.describe()
    [delivered] = [e for e in result.events if isinstance(e, InterruptDelivered)]
    deadline = int.from_bytes(td.read(td.symbol("deadline"), 8), "little")
    assert delivered.time_ns == deadline
    assert td.symbol("spin") <= delivered.rip < td.symbol("spun")


def test_bits_63_32_of_the_x2apic_registers_are_reserved():
    """KVM kvm_lapic_msr_write: 'Bits 63:32 are reserved in all other
    registers' (than the ICR): the write fails (INVALID_OPERAND to a TD,
    spec 6.2) and changes nothing.  IA32_TSC_DEADLINE is 64 bits wide."""
    apic = Apic()
    apic.wr(LVT, VECTOR)
    for index, value in ((INITIAL, 1 << 32 | 5), (LVT, 1 << 63), (DIVIDE, 1 << 40 | 0xB),
                         (0x80B, 1 << 32)):
        assert apic.wr(index, value) is False
    assert apic.rd(INITIAL) == 0 and apic.rd(LVT) == VECTOR and apic.rd(DIVIDE) == 0
    apic.wr(LVT, TSC_DEADLINE | VECTOR)
    assert apic.wr(DEADLINE, 1 << 40) is True and apic.rd(DEADLINE) == 1 << 40


@pytest.mark.parametrize("native", [pytest.param(True, marks=compiled), False])
def test_a_reserved_bit_in_a_timer_register_write_is_invalid_operand(probe, native):
    p = probe(native=native)
    after = p.vmcall(r11=32, r12=INITIAL, r13=1 << 32 | 100)
    assert after.gprs["r10"] == 0x8000_0000_0000_0000  # TDG.VP.VMCALL_INVALID_OPERAND
    assert p.td.lapic.timer.initial == 0
