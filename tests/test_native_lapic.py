"""The local APIC's registers served in C (devices/lapic.c through
host/msr.c) against the Python reference (TD(native=False)), on random
sequences of TDG.VP.VMCALL<RDMSR/WRMSR> of the timer's registers, TSC
deadline and EOI at random times, with interrupts enabled: identical
replies, events (each timer interrupt posted and delivered at the same
instruction boundary, so slices end at the deadlines a compiled write set),
time and APIC state.  The rules' expected values come from the SDM in
test_lapic_timer.py, on both paths.
"""
from __future__ import annotations

import random

import pytest

from conftest import compiled

pytestmark = compiled
LVT, INITIAL, CURRENT, DIVIDE, DEADLINE, EOI = 0x832, 0x838, 0x839, 0x83E, 0x6E0, 0x80B
RDMSR, WRMSR = 31, 32  # spec 4.3: R11
PERIODIC, TSC_DEADLINE, MASKED = 1 << 17, 2 << 17, 1 << 16
VECTORS = [0x21, 0x31, 0x36, 0x42, 0x71, 0xEC]  # classes 2-14, two in one class

GUEST = r"""
        .text
        .globl  setup, run_ops
setup:  lea     idt(%rip), %rdi
        call    tdx_default_gates
        .irp    vector, 0x21, 0x31, 0x36, 0x42, 0x71, 0xEC
        lea     idt(%rip), %rdi
        mov     $\vector, %esi
        lea     irq(%rip), %rdx
        call    tdx_set_gate
        .endr
        lidt    idt_ptr(%rip)
        ret

# run_ops(ops, count, out): per op {spin, R11, R12, R13} spin, then one
# TDG.VP.VMCALL (RCX = 0xFC00); out gets {R10, R11}.  IF = 1 throughout.
run_ops:
        push    %rbx
        push    %rbp
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        mov     %rdi, %rbx
        mov     %rdx, %rbp
        mov     %rsi, %r9
        sti
1:      test    %r9, %r9
        jz      3f
        mov     0(%rbx), %r8
2:      dec     %r8
        jnz     2b
        xor     %eax, %eax
        mov     $0xFC00, %ecx
        xor     %r10d, %r10d
        mov     8(%rbx), %r11
        mov     16(%rbx), %r12
        mov     24(%rbx), %r13
        xor     %r14d, %r14d
        xor     %r15d, %r15d
        tdcall
        mov     %r10, 0(%rbp)
        mov     %r11, 8(%rbp)
        add     $32, %rbx
        add     $16, %rbp
        dec     %r9
        jmp     1b
3:      cli
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %rbp
        pop     %rbx
        ret

irq:    incq    irqs(%rip)              # no EOI: the ops' EOIs end service
        iretq

        .section .rodata
idt_ptr:    .word 256 * 16 - 1
            .quad idt
        .data
        .balign 16
idt:        .fill 256 * 16, 1, 0
        .globl  irqs, ops, out
irqs:       .quad 0
ops:        .fill 32 * 400, 1, 0
out:        .fill 16 * 400, 1, 0
"""


def _op(rng: random.Random) -> tuple[int, int, int, int]:
    pick = rng.choice
    spin = pick([1, 1, 2, 10, 100, 300, 1000, 3000])
    msr = pick([LVT, LVT, INITIAL, INITIAL, CURRENT, DIVIDE, DEADLINE, DEADLINE, EOI, EOI])
    if msr == LVT:
        value = pick(VECTORS) | pick([0, PERIODIC, PERIODIC, TSC_DEADLINE, 3 << 17]) \
            | pick([0, 0, 0, MASKED]) | pick([0] * 6 + [0xFFFF_0000, 1 << 12])
    elif msr == INITIAL:
        value = pick([0, 1, 3, 10, 50, 50, 200, 1000, 0xFFFF_FFFF])
    elif msr == DIVIDE:
        value = pick([0xB, 0xB, 0, 1, 2, 3, 8, 0xA, 0xFFFF_FFFF])
    elif msr == DEADLINE:
        value = pick([0, rng.randrange(3_000_000), rng.randrange(3_000_000), 2**64 - 1])
    else:
        value = pick([0, 0, 0, 5])
    value |= pick([0] * 12 + [1 << 32, 1 << 63])  # reserved in x2APIC registers
    return spin, pick([RDMSR, WRMSR, WRMSR]) if msr != CURRENT else RDMSR, msr, value


def _run(asm, native: bool, seed: int, exit_ns: int, count: int = 300):
    td = asm(GUEST, native=native, ns_per_insn=3, exit_ns=exit_ns)
    rng = random.Random(seed)
    ops = [_op(rng) for _ in range(count)]
    td.write(td.symbol("ops"), b"".join(v.to_bytes(8, "little") for op in ops for v in op))
    assert td.call_result("setup").reason == "return"
    result = td.call_result("run_ops", td.symbol("ops"), count, td.symbol("out"),
                            max_insns=1 << 30)
    assert result.reason == "return", result.describe()
    lapic, timer = td.lapic, td.lapic.timer
    state = (sorted(lapic.irr), sorted(lapic.isr), timer.lvt, timer.initial, timer.divide,
             timer.tsc_deadline, timer.expiry, lapic.next_deadline())
    return td, (list(result.events), result.time_ns, result.instructions,
                td.read(td.symbol("out"), 16 * count), td.read(td.symbol("irqs"), 8), state)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("exit_ns", [0, 10_007])
def test_random_timer_programming_matches_the_python_path(asm, seed, exit_ns):
    native, a = _run(asm, True, seed, exit_ns)
    python, b = _run(asm, False, seed, exit_ns)
    assert native.module.fast.served > 100 and native.module.fast.bridged == 0
    assert python.module.fast.served == 0
    events, other = a[0], b[0]
    for i, (x, y) in enumerate(zip(events, other)):
        assert x == y, f"event {i} differs"
    assert len(events) == len(other)
    assert a[1:] == b[1:]
    assert sum(type(e).__name__ == "InterruptDelivered" for e in events) > 5


def test_a_replaced_apic_callback_goes_to_python(asm):
    """A user's callback on a timer MSR is Python's; the others stay in C."""
    td = asm(GUEST, native=True)
    seen = []
    td.host.msrs.msrs[INITIAL].on_write = seen.append
    ops = [(1, WRMSR, INITIAL, 77), (1, WRMSR, LVT, 0x31 | MASKED), (1, RDMSR, INITIAL, 0)]
    td.write(td.symbol("ops"), b"".join(v.to_bytes(8, "little") for op in ops for v in op))
    td.call_result("setup")
    assert td.call_result("run_ops", td.symbol("ops"), 3, td.symbol("out")).reason == "return"
    fast = td.module.fast
    assert seen == [77] and fast.bridged == 2 and fast.served == 1
    assert td.lapic.timer.lvt == 0x31 | MASKED and td.lapic.timer.initial == 0
