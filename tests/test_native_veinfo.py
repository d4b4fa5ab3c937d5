"""TDG.VP.VEINFO.GET (leaf 3): its statuses from the spec (8.2, 1.2), on
both paths, and the compiled leaf (module/veinfo.c) against its Python
reference (TD(native=False)) on random sequences of #VEs and raw TDCALLs:
identical registers, statuses, events and VE state.
"""
from __future__ import annotations

import random

import pytest

from conftest import compiled
from test_smp import smp_asm
from tdxsim import TD
from tdxsim.events import Scheduled, VeRaised
from tdxsim.module import veinfo

NO_VALID_VE_INFO = 0xC000_0704_0000_0000  # spec 8.2
OPERAND_INVALID_RAX = 0xC000_0100_0000_0000  # spec 1.2: OPERAND_INVALID, operand RAX (0)
IO_EXIT, HLT_EXIT = 30, 12  # spec 0.1 / 8.4

# Each #VE raiser saves RSP and runs one intercepted instruction; the #VE
# (and #DF) gate unwinds to its caller, so the handler reads nothing: the
# VE info stays valid until the test's own TDCALL reads it.
GUEST = """
        .text
        .globl  setup, ghci, in8, in16, in32, out8, out32, halt, cpuid_hv, rdmsr_any
setup:  lea     idt(%rip), %rdi
        mov     $20, %esi
        lea     unwind(%rip), %rdx
        call    tdx_set_gate
        lea     idt(%rip), %rdi
        mov     $8, %esi
        lea     unwind(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)
        ret
unwind: mov     saved_rsp(%rip), %rsp
        mov     $0x5E, %eax
        ret
ghci:   tdcall
        ret
in8:    mov %rsp, saved_rsp(%rip) ; in (%dx), %al ; ret
in16:   mov %rsp, saved_rsp(%rip) ; in (%dx), %ax ; ret
in32:   mov %rsp, saved_rsp(%rip) ; in (%dx), %eax ; ret
out8:   mov %rsp, saved_rsp(%rip) ; out %al, (%dx) ; ret
out32:  mov %rsp, saved_rsp(%rip) ; out %eax, (%dx) ; ret
halt:   mov %rsp, saved_rsp(%rip) ; hlt ; ret
cpuid_hv:  mov %rsp, saved_rsp(%rip) ; mov $0x40000000, %eax ; cpuid ; ret
rdmsr_any: mov %rsp, saved_rsp(%rip) ; mov %edi, %ecx ; rdmsr ; ret
        .section .rodata
idt_ptr: .word  256 * 16 - 1
        .quad   idt
        .data
        .balign 16
saved_rsp: .quad 0
idt:    .fill   256 * 16, 1, 0
"""
RAISERS = ["in8", "in16", "in32", "out8", "out32", "halt", "cpuid_hv", "rdmsr_any"]
OUTPUTS = ("rcx", "rdx", "r8", "r9", "r10")


@pytest.fixture
def guest(asm):
    def make(**kw) -> TD:
        td = asm(GUEST, **kw)
        assert td.call_result("setup").reason == "return"
        return td
    return make


def veinfo_get(td: TD, rax: int = 3, **regs):
    """One raw TDCALL; (RAX, the five outputs, the registers it must keep)."""
    filled = {r: 0x7E00_0000_0000_0000 | i for i, r in enumerate(OUTPUTS, 1)}
    result = td.call_result("ghci", regs={**filled, "r11": 0x1111, "rbx": 0x2222, **regs,
                                          "rax": rax})
    assert result.reason == "return", result.describe()
    gprs = td.gprs()
    return gprs["rax"], [gprs[r] for r in OUTPUTS], (gprs["r11"], gprs["rbx"])


@pytest.mark.parametrize("version", [0, 1])
def test_veinfo_get_returns_the_io_ve_and_clears_valid(guest, version):
    """Spec 8.2, 8.4 (IO 30): after `in (%dx), %ax` from port 0x1234, RCX = 30
    (version 1: category 0 in RCX[63:32]), RDX = size-1 | IN << 3 | port << 16,
    R8 = R9 = 0, R10[31:0] = 2 (66 ED: the length); VALID clears, so the
    next call is TDX_NO_VALID_VE_INFO with all five outputs zero."""
    td = guest()
    assert td.call_result("in16", regs={"rdx": 0x1234}).return_value & 0xFF == 0x5E
    rax = 3 | version << 16
    assert veinfo_get(td, rax) == (0, [IO_EXIT, 1 | 1 << 3 | 0x1234 << 16, 0, 0, 2],
                                   (0x1111, 0x2222))
    assert veinfo_get(td, rax) == (NO_VALID_VE_INFO, [0] * 5, (0x1111, 0x2222))


@pytest.mark.parametrize("rax", [3 | 2 << 16, 3 | 0xFF << 16, 3 | 1 << 24, 3 | 1 << 63],
                         ids=["v2", "v255", "reserved24", "reserved63"])
def test_bad_version_or_reserved_bits_leave_the_ve_info_valid(guest, rax):
    """Spec 1.2: a version above 1 or a reserved RAX bit is
    OPERAND_INVALID(RAX), outputs untouched, and the VE info stays valid."""
    td = guest()
    td.call_result("halt")
    status, outputs, kept = veinfo_get(td, rax)
    assert status == OPERAND_INVALID_RAX
    assert outputs == [0x7E00_0000_0000_0000 | i for i in range(1, 6)]
    assert veinfo_get(td)[:2] == (0, [HLT_EXIT, 0, 0, 0, 1])


@compiled
def test_the_compiled_leaf_serves_only_where_python_would_see_nothing(guest):
    """veinfo.c serves VEINFO.GET, except when the handler was replaced or a
    Python observer watches TDCALLs: those calls reach Python."""
    td = guest()
    td.call_result("halt")
    veinfo_get(td)
    assert td.module.fast.veinfo_served == 1
    seen = []
    td.module.handlers[3] = lambda module, regs, now: seen.append(regs.rip) or \
        veinfo.handle(module, regs, now)
    td.call_result("halt")
    assert veinfo_get(td)[0] == 0 and len(seen) == 1
    del td.module.handlers[3]
    td.module.handlers[3] = veinfo.handle

    class Watcher:
        def tdcall_before(self, regs):
            seen.append(regs.get(0))

        def tdcall_after(self, regs):
            return True

    td.observe_tdcalls(Watcher())
    assert veinfo_get(td)[0] == NO_VALID_VE_INFO and seen[-1] == 3
    assert td.module.fast.veinfo_served == 1


def _step(rng: random.Random, td: TD):
    """One random step; what it left, to compare."""
    if rng.random() < 0.45:
        name = rng.choice(RAISERS)
        result = td.call_result(name, regs={
            "rdx": rng.choice([0x80, 0x3F8, 0x1234, 0xCF8, 0x608, rng.randrange(1 << 16)]),
            "rdi": rng.choice([0x10, 0x1A0, 0x6E0, 0xC0000080, rng.getrandbits(32)]),
            "rax": rng.getrandbits(64)})
        ves = [(e.rip, e.exit_reason, e.vector, e.info) for e in result.events
               if isinstance(e, VeRaised)]
        return name, result.reason, ves, td.gprs()
    rax = rng.choice([3, 3, 3, 0x10003, 0x10003, 0x20003, 3 | 1 << 24, 3 | 1 << 40, 0x10001])
    regs = {r: rng.getrandbits(64) for r in ("rcx", "rdx", "r8", "r9", "r10", "r11", "r12")}
    result = td.call_result("ghci", regs={**regs, "rax": rax})
    return "veinfo", result.reason, result.return_value, td.gprs(), td.vcpu.regs.rip


@compiled
@pytest.mark.parametrize("seed", range(6))
def test_compiled_veinfo_get_matches_python(guest, seed):
    """The same random sequence on the compiled path and the Python one."""
    tds = [guest(), guest(native=False)]
    for step in range(60):
        seen = [_step(random.Random(seed * 1000 + step), td) for td in tds]
        assert seen[0] == seen[1], f"seed {seed}, step {step}"
        assert tds[0].module.ve.info == tds[1].module.ve.info
        assert tds[0].module.ve.state.gets == tds[1].module.ve.state.gets  # both paths count
    assert tds[0].module.fast.veinfo_served > 0 and tds[1].module.fast.veinfo_served == 0


# Every vCPU takes 16 #VEs for `in (%dx), %al` from its own port 0x100 + i;
# its handler spins (the scheduler may switch vCPUs between the #VE and
# VEINFO.GET), reads its VE info, records RDX and returns past the `in`.
SMP_VE = """
ap:     .set    VCPUS, 4
        .globl  own_ve, own_ve_end
        lea     idt(%rip), %rdi
        mov     $20, %esi
        lea     own_ve(%rip), %rdx
        call    tdx_set_gate
        mov     $16, %r12d
1:      lea     0x100(%rbx), %edx
        in      (%dx), %al
        dec     %r12d
        jnz     1b
        lock incq done(%rip)
        test    %rbx, %rbx
        jnz     park
2:      cmpq    $VCPUS, done(%rip)
        jb      2b
        xor     %edi, %edi
        call    tdx_debug_exit
own_ve: push    %rax
        push    %rcx
        push    %rdx
        push    %r8
        push    %r9
        push    %r10
        mov     $20000, %ecx            # 40 k instructions: most quanta end here
3:      dec     %ecx
        jnz     3b
        mov     $3, %eax                # TDG.VP.VEINFO.GET
        tdcall
        mov     %rbx, %r8               # out[i * 16 + r12 - 1] = RDX
        shl     $4, %r8
        lea     -1(%r8,%r12), %r8
        lea     out(%rip), %r9
        mov     %rdx, (%r9,%r8,8)
        mov     %r10d, %eax             # RIP += the instruction's length
        add     %rax, 48(%rsp)
        pop     %r10
        pop     %r9
        pop     %r8
        pop     %rdx
        pop     %rcx
        pop     %rax
        iretq
own_ve_end:
        .data
out:    .fill   4 * 16, 8, 0
done:   .quad   0
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_each_vcpu_reads_its_own_ve_info(asm, seed):
    """Spec 8.2: VE information is per vCPU (TDVPS).  With four vCPUs
    interleaved between their #VEs and VEINFO.GETs, each reads the
    qualification of its own IN: size 1 (0), IN (bit 3), port 0x100 + i
    in bits 31:16."""
    td = smp_asm(asm, SMP_VE, 4, seed=seed)
    result = td.run()
    assert result.ok, result.describe()
    raw = td.read(td.symbol("out"), 4 * 16 * 8)
    words = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]
    assert words == [1 << 3 | (0x100 + i) << 16 for i in range(4) for _ in range(16)]
    handler = range(td.symbol("own_ve"), td.symbol("own_ve_end"))
    assert any(e.rip in handler for e in result.events if isinstance(e, Scheduled))


@compiled
def test_each_vcpu_reads_its_own_ve_info_compiled(asm):
    native, python = (smp_asm(asm, SMP_VE, 4, seed=1, native=n) for n in (True, False))
    a, b = native.run(), python.run()
    assert a.ok and list(a.events) == list(b.events) and a.time_ns == b.time_ns
    assert native.module.fast.veinfo_served == 4 * 16
