"""The local APIC's registers served in C (devices/lapic.c through
host/msr.c) and the HLT that ends at once (host/halt.c) against the Python
reference (TD(native=False)), on random sequences of
TDG.VP.VMCALL<RDMSR/WRMSR> of the timer's registers, TSC deadline and EOI
and of TDG.VP.VMCALL<Instruction.HLT> at random times, with interrupts
enabled and disabled: identical replies, events (each timer interrupt
posted and delivered at the same instruction boundary, so slices end at the
deadlines a compiled write set), time and APIC state.  The rules' expected
values come from the SDM and spec 7.4 in test_lapic_timer.py and
test_hlt.py, on both paths.
"""
from __future__ import annotations

import random

import pytest

from conftest import compiled

pytestmark = compiled
LVT, INITIAL, CURRENT, DIVIDE, DEADLINE, EOI = 0x832, 0x838, 0x839, 0x83E, 0x6E0, 0x80B
RDMSR, WRMSR, HLT = 31, 32, 12  # spec 4.3: R11
CLI, STI, POPF = 0xC1, 0x57, 0x9D  # ops the guest does itself (POPF: IF = 1 by POPF)
PERIODIC, TSC_DEADLINE, MASKED = 1 << 17, 2 << 17, 1 << 16
VECTORS = [0x21, 0x31, 0x36, 0x42, 0x71, 0xEC]  # classes 2-14, two in one class

GUEST = r"""
        .text
        .globl  setup, run_ops, vmcall_insn, popf_done
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
# TDG.VP.VMCALL (RCX = 0xFC00), or CLI, STI or a POPF that sets IF (R11 =
# 0xC1, 0x57, 0x9D); out gets {R10, R11}.  IF = 1 at first.
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
        mov     8(%rbx), %r11
        cmp     $0xC1, %r11
        je      4f
        cmp     $0x57, %r11
        je      5f
        cmp     $0x9D, %r11
        je      8f
        xor     %eax, %eax
        mov     $0xFC00, %ecx
        xor     %r10d, %r10d
        mov     16(%rbx), %r12
        mov     24(%rbx), %r13
        xor     %r14d, %r14d
        xor     %r15d, %r15d
vmcall_insn:
        tdcall
        mov     %r10, 0(%rbp)
        mov     %r11, 8(%rbp)
6:      add     $32, %rbx
        add     $16, %rbp
        dec     %r9
        jmp     1b
        jmp     1b
4:      cli
        jmp     6b
5:      sti
        jmp     6b
8:      pushf
        orq     $0x200, (%rsp)
        popf
popf_done:
        jmp     6b
3:      cli
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %rbp
        pop     %rbx
        ret

irq:    incq    irqs(%rip)              # EOI here if eoi_in_irq, else by the ops' EOIs
        testq   $1, eoi_in_irq(%rip)
        jz      7f
        push    %rax
        push    %rcx
        push    %r10
        push    %r11
        push    %r12
        push    %r13
        xor     %eax, %eax
        mov     $0x3C00, %ecx
        xor     %r10d, %r10d
        mov     $32, %r11d
        mov     $0x80B, %r12d
        xor     %r13d, %r13d
        tdcall
        pop     %r13
        pop     %r12
        pop     %r11
        pop     %r10
        pop     %rcx
        pop     %rax
7:      iretq

        .section .rodata
idt_ptr:    .word 256 * 16 - 1
            .quad idt
        .data
        .balign 16
idt:        .fill 256 * 16, 1, 0
        .globl  irqs, ops, out, eoi_in_irq
irqs:       .quad 0
eoi_in_irq: .quad 0
ops:        .fill 32 * 400, 1, 0
out:        .fill 16 * 400, 1, 0
"""


def _op(rng: random.Random, halts: bool) -> tuple[int, int, int, int]:
    pick = rng.choice
    spin = pick([1, 1, 2, 10, 100, 300, 1000, 3000])
    if halts and rng.random() < 0.3:
        return spin, pick([HLT, HLT, HLT, CLI, CLI, STI, POPF]), 0, 0
    msr = pick([LVT, LVT, INITIAL, INITIAL, CURRENT, DIVIDE, DEADLINE, DEADLINE, EOI, EOI])
    if msr == LVT:
        value = pick(VECTORS) | pick([0, PERIODIC, PERIODIC, TSC_DEADLINE, 3 << 17]) \
            | pick([0, 0, 0, MASKED]) | pick([0] * 6 + [0xFFFF_0000, 1 << 12])
    elif msr == INITIAL:
        value = pick([0, 200, 1000, 5000] if halts else  # (with halts: no interrupt storm)
                     [0, 1, 3, 10, 50, 50, 200, 1000, 0xFFFF_FFFF])
    elif msr == DIVIDE:
        value = pick([0xB, 0xB, 0, 1, 2, 3, 8, 0xA, 0xFFFF_FFFF])
    elif msr == DEADLINE:
        value = pick([0, rng.randrange(3_000_000), rng.randrange(3_000_000), 2**64 - 1])
    else:
        value = pick([0, 0, 0, 5])
    value |= pick([0] * 12 + [1 << 32, 1 << 63])  # reserved in x2APIC registers
    return spin, pick([RDMSR, WRMSR, WRMSR]) if msr != CURRENT else RDMSR, msr, value


def _run(asm, native: bool, seed: int, exit_ns: int, halts: bool = False, count: int = 300,
         python_hlt: bool = False):
    td = asm(GUEST, native=native, ns_per_insn=3, exit_ns=exit_ns)
    if python_hlt:  # a user's HLT handler: the host bridge serves it
        hlt = td.host.handlers[HLT]
        td.host.handlers[HLT] = lambda host, exit: hlt(host, exit)
    rng = random.Random(seed)
    ops = [_op(rng, halts) for _ in range(count)]
    td.write(td.symbol("ops"), b"".join(v.to_bytes(8, "little") for op in ops for v in op))
    assert td.call_result("setup").reason == "return"
    if halts:  # interrupts that arrive every 25 us (the clock's queue) end the halts
        td.write(td.symbol("eoi_in_irq"), bytes([seed % 3 != 0]))
        for k in range(1, 800):
            td.lapic.schedule(k * 25_000, VECTORS[k % len(VECTORS)])
    result = td.call_result("run_ops", td.symbol("ops"), count, td.symbol("out"),
                            max_insns=1 << 30)
    assert result.reason in ("return", "halted"), result.describe()
    lapic, timer = td.lapic, td.lapic.timer
    state = (sorted(lapic.irr), sorted(lapic.isr), timer.lvt, timer.initial, timer.divide,
             timer.tsc_deadline, timer.expiry, lapic.next_deadline())
    return td, (list(result.events), result.reason, result.time_ns, result.instructions,
                td.read(td.symbol("out"), 16 * count), td.read(td.symbol("irqs"), 8), state)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("exit_ns", [0, 10_007])
def test_random_timer_programming_matches_the_python_path(asm, seed, exit_ns):
    events, fast = _compare(asm, seed, exit_ns, halts=False)
    assert fast.served > 100 and fast.bridged == 0
    assert sum(type(e).__name__ == "InterruptDelivered" for e in events) > 5


@pytest.mark.parametrize("seed", range(16))
def test_random_halts_match_the_python_path(asm, seed):
    """HLTs with R12 = 0 among the timer ops, with IF = 1 and IF = 0: those
    that end at once are C's (and go on in the slice only with IF = 0 and
    the slice watching for IF = 1), the others block in the run loop.  Every
    third seed, only the ops' EOIs end service: a run may then end halted
    early (all vectors blocked), and an EOI served in C can unblock a vector
    that a HLT with IF = 1 then finds."""
    events, fast = _compare(asm, seed, 307 * (seed % 2), halts=True)  # (no interrupt storm)
    halts = sum(getattr(e, "name", "") == "HLT" for e in events)
    at_once = sum(type(e).__name__ == "Woke" and e.slept_ns == 0 for e in events)
    if seed % 3:
        assert fast.bridged < halts and at_once > 0  # C ended some of them


@pytest.mark.parametrize("seed", range(1, 9))
def test_random_halts_with_a_python_handler_match_the_python_path(asm, seed):
    """The same with the HLT handler replaced (served through the host
    bridge): a halt that ends at once is recorded by the run loop's side
    of the bridge and the vCPU goes on by the same rule as after
    host/halt.c's."""
    events, fast = _compare(asm, seed, 307 * (seed % 2), halts=True, python_hlt=True)
    if seed % 3:
        assert fast.bridged > 0 and any(type(e).__name__ == "Woke" and e.slept_ns == 0
                                        for e in events)


def _compare(asm, seed: int, exit_ns: int, halts: bool, python_hlt: bool = False) -> list:
    native, a = _run(asm, True, seed, exit_ns, halts, python_hlt=python_hlt)
    python, b = _run(asm, False, seed, exit_ns, halts, python_hlt=python_hlt)
    fast = native.module.fast
    assert python.module.fast.served == 0
    events, other = a[0], b[0]
    for i, (x, y) in enumerate(zip(events, other)):
        assert x == y, f"event {i} differs"
    assert len(events) == len(other)
    assert a[1:] == b[1:]
    return events, fast


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


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("enable", ["if", "popf"])
def test_a_vector_an_eoi_unblocks_comes_at_the_first_boundary_with_if_1(asm, native, enable):
    """SDM 11.8.4-11.8.5 and spec 7.4: a pending vector blocked by a higher
    one in service becomes deliverable at the EOI, and is delivered at the
    first instruction boundary with IF = 1 (completing a TDCALL counts as
    one): right after the EOI's TDCALL when IF = 1 ('if'); with IF = 0
    ('popf'), a HLT with R12 = 0 then resumes at once and the vector comes
    right after the POPF that sets IF.  The EOI goes through
    TDG.VP.VMCALL<WRMSR>, inside a slice that was not waiting for IF."""
    td = asm(GUEST, native=native)
    td.call_result("setup")
    td.lapic.isr.add(0xEC)
    td.lapic.post(0x31)
    ops = [(1, WRMSR, EOI, 0), (50, RDMSR, LVT, 0)]
    if enable == "popf":
        ops = [(1, CLI, 0, 0), ops[0], (1, HLT, 0, 0), (20, POPF, 0, 0), ops[1]]
    td.write(td.symbol("ops"), b"".join(v.to_bytes(8, "little") for op in ops for v in op))
    result = td.call_result("run_ops", td.symbol("ops"), len(ops), td.symbol("out"))
    assert result.reason == "return", result.describe()
    [delivered] = [e for e in result.events if type(e).__name__ == "InterruptDelivered"]
    assert delivered.vector == 0x31
    if enable == "if":
        [eoi] = [e for e in result.events if getattr(e, "name", "") == "WRMSR"]
        assert delivered.rip == td.symbol("vmcall_insn") + 4 == eoi.rip + 4
    else:
        [woke] = [e for e in result.events if type(e).__name__ == "Woke"]
        assert woke.vector == 0x31 and woke.slept_ns == 0
        assert delivered.rip == td.symbol("popf_done")
    if native:  # every TDG.VP.VMCALL, the HLT too, in C
        fast = td.module.fast
        assert fast.served == len(ops) - 2 * (enable == "popf") and not fast.bridged


def test_the_quiet_check_answers_as_the_run_loop(asm):
    """Execution._quiet (devices/lapic.c tdxsim_apic_quiet_limit) against
    the run loop's own questions on random APIC states: timer modes, masks,
    expiries and TSC deadlines, pending and in-service vectors, a pending
    NMI, scheduled interrupts, times and budgets.  It gives the slice
    limit the loop would plan when nothing is pending or due, else 0."""
    from tdxsim.execution import Execution

    td = asm("        .globl _start\n_start: hlt\n", native=True)
    lapic, state, rng = td.lapic, td.lapic.state, random.Random(11)
    quiet = planned = 0
    for _ in range(4000):
        lapic.clear()
        state.lvt = rng.choice([0, PERIODIC, TSC_DEADLINE]) | rng.choice([0, MASKED]) | 0xEC
        state.counting, state.initial = rng.random() < 0.5, rng.randrange(1, 1000)
        state.expiry = rng.randrange(1 << 20)
        state.tsc_deadline = rng.choice([0, rng.randrange(1 << 20), (1 << 64) - 1])
        for vector in rng.sample(VECTORS, rng.choice([0, 0, 0, 1, 2])):
            lapic.irr.add(vector)
        for vector in rng.sample(VECTORS, rng.choice([0, 0, 1])):
            lapic.isr.add(vector)
        state.nmi_pending = rng.random() < 0.1
        if rng.random() < 0.3:
            lapic.schedule(rng.randrange(1 << 20), rng.choice(VECTORS))
        td.clock.state.added_ns = rng.randrange(1 << 19)
        td.clock.ns_per_insn = rng.choice([1, 3, 1000])
        run = Execution(td, 0, rng.choice([1, 50, 10**6, 10**12, 9 * 10**18]), 0)
        assert run._quiet is not None
        due, now = td.host.next_deadline(0), td.clock.now()
        busy = lapic.nmi_pending or lapic.deliverable() is not None or lapic.arrivals_waiting \
            or due is not None and due <= now
        expected = 0 if busy else run._slice_limit(False, due)
        got = run._quiet()
        # 0 (the loop asks in full) also where C cannot tell no deadline
        # from one at the end of time (2^64 - 1) before the budget's end
        assert got == expected or got == 0 and (due is None or due >= (1 << 64) - 1), \
            (got, expected, due)
        quiet += got != 0
        planned += 1
    assert 1000 < quiet < planned
    lapic.clear()
