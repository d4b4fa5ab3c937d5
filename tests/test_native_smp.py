"""The compiled TDG.VP.VMCALL path with several vCPUs against the Python
reference (TD(native=False)): the bundled `smp` guest, every vCPU
programming its own APIC timer through the MSRs C serves per vCPU, and the
two-vCPU wake-up explorer: identical events (each vCPU's exits, switches,
halts and wake-ups), console, time and results."""
from __future__ import annotations

import pytest

from conftest import compiled
from test_smp import BROKEN, smp_asm, smp_td

from tdxsim import TD
from tdxsim.explore import explore_wakeups

pytestmark = compiled


def _same(native, python) -> None:
    a, b = native.run(), python.run()
    assert a.ok and b.ok, a.describe()
    assert list(a.events) == list(b.events)
    assert (a.console, a.time_ns, a.instructions) == (b.console, b.time_ns, b.instructions)


@pytest.mark.parametrize("vcpus,seed", [(2, 0), (2, 1), (4, 0), (4, 3)])
def test_the_smp_guest_runs_the_same_compiled(vcpus, seed):
    native, python = smp_td(vcpus, seed=seed), smp_td(vcpus, seed=seed, native=False)
    _same(native, python)
    assert native.module.fast.served + native.module.fast.bridged > 0


TIMERS = """
        lea     1(%rbx), %r9
        imul    $1000, %r9, %r9         # vCPU i writes (i + 1) * 1000 + k
        lea     out(%rip), %r8
        mov     %rbx, %rax
        shl     $10, %rax               # 64 pairs of 8-byte words per vCPU
        add     %rax, %r8
        xor     %ebp, %ebp
        xor     %eax, %eax              # LVT timer: periodic, masked, vector 0x40
        mov     $0x3C00, %ecx
        xor     %r10d, %r10d
        mov     $32, %r11d
        mov     $0x832, %r12d
        mov     $0x30040, %r13d
        tdcall
1:      lea     (%r9,%rbp), %r13        # WRMSR initial count
        xor     %eax, %eax
        mov     $0x3C00, %ecx
        xor     %r10d, %r10d
        mov     $32, %r11d
        mov     $0x838, %r12d
        tdcall
        mov     $300, %ecx
2:      dec     %ecx
        jnz     2b
        xor     %eax, %eax              # RDMSR initial count
        mov     $0x1C00, %ecx
        xor     %r10d, %r10d
        mov     $31, %r11d
        mov     $0x838, %r12d
        tdcall
        mov     %r11, (%r8)
        xor     %eax, %eax              # RDMSR current count
        mov     $0x1C00, %ecx
        xor     %r10d, %r10d
        mov     $31, %r11d
        mov     $0x839, %r12d
        tdcall
        mov     %r11, 8(%r8)
        add     $16, %r8
        inc     %rbp
        cmp     $64, %rbp
        jb      1b
        cmp     $2, %rbx                # vCPU 2: SetupEventNotifyInterrupt(0x50)
        jne     4f
        xor     %eax, %eax
        mov     $0x1C00, %ecx
        xor     %r10d, %r10d
        mov     $0x10004, %r11d
        mov     $0x50, %r12d
        tdcall
4:      lock incq done(%rip)
        test    %rbx, %rbx
        jnz     park
3:      cmpq    $VCPUS, done(%rip)
        jb      3b
        xor     %edi, %edi
        call    tdx_debug_exit
        .data
        .globl  out
out:    .fill   4 * 64 * 2, 8, 0
done:   .quad   0
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_each_vcpu_programs_its_own_apic_timer_compiled(asm, seed):
    """C serves each vCPU's own MSR store: every vCPU reads back the
    initial counts it wrote itself (SDM 11.5.4), whatever the
    interleaving, and the same current counts as on the Python path; the
    event-notify vector is registered for the vCPU that asked (through the
    bridge, which names the vCPU)."""
    body = "ap:\n.set VCPUS, 4\n" + TIMERS
    native, python = (smp_asm(asm, body, 4, seed=seed, native=n) for n in (True, False))
    _same(native, python)
    out = native.read(native.symbol("out"), 4 * 64 * 16)
    assert out == python.read(python.symbol("out"), 4 * 64 * 16)
    words = [int.from_bytes(out[i:i + 8], "little") for i in range(0, len(out), 8)]
    assert words[0::2] == [(i + 1) * 1000 + k for i in range(4) for k in range(64)]
    assert native.module.fast.served > 4 * 64 * 3  # (bridged: the parked HLTs, the exit)
    for td in (native, python):  # each APIC keeps its own vCPU's last write
        assert [v.lapic.timer.initial for v in td.host.vcpus] == [1063, 2063, 3063, 4063]
        assert (td.host.notify_vector, td.host.notify_vcpu) == (0x50, 2)  # spec 4.7


@pytest.mark.parametrize("waker", ["ipi", "send-ipi", "kick"])
def test_the_two_vcpu_explorer_finds_the_same_compiled(waker):
    reports = [explore_wakeups(TD.from_source(BROKEN, native=n), "broken_safe_halt",
                               waker=waker) for n in (True, False)]
    native, python = ([(i.instruction, i.outcome) for i in r.injections] for r in reports)
    assert native == python and native
