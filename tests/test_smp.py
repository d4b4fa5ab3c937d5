"""Several vCPUs in one TD: the bundled `smp` guest (ACPI MP-wakeup mailbox,
IPIs), TDG.VP.INFO per vCPU, deterministic interleaving per seed."""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from tdxsim import TD, TdConfig
from tdxsim.events import Halted, Scheduled
from tdxsim.explore import explore_wakeups
from tdxsim.image import bundled_guest
from tdxsim.toolchain import build
from tdxsim.trace import render_all


def smp_td(vcpus: int = 1, **kw) -> TD:
    return TD(build([bundled_guest("smp")]), config=TdConfig(vcpus=vcpus), **kw)


def test_smp_guest_on_one_vcpu_has_no_ap_to_wake():
    result = smp_td().run()
    assert result.ok, result.describe()
    assert result.console == "smp: BSP up, 1 vCPUs\nsmp: every AP reported\n"


def test_smp_guest_wakes_every_ap_through_the_mailbox():
    """Done-when of issue 15: one line per AP, exit 0; the AP's CPUID went
    through a TDVMCALL, its IPI through WRMSR 0x830 -> #VE -> TDVMCALL."""
    result = smp_td(4).run()
    assert result.ok, result.describe()
    lines = result.console.splitlines()
    assert lines[0] == "smp: BSP up, 4 vCPUs" and lines[-1] == "smp: every AP reported"
    assert sorted(lines[1:-1]) == [f"smp: AP {i} up, CPUID vendor GenuineIntel" for i in (1, 2, 3)]
    icr_writes = [e for e in result.exits if e.exposed[11] == 32 and e.exposed[12] == 0x830]
    assert [e.exposed[13] for e in icr_writes] == [0xF0] * 3  # APIC ID 0, vector 0xF0


def test_same_seed_same_run_other_seed_other_interleaving():
    def switches(seed):
        result = smp_td(2, seed=seed).run()
        assert result.ok
        return [(e.time_ns, e.vcpu) for e in result.events if isinstance(e, Scheduled)]
    assert switches(5) == switches(5)
    assert switches(5) != switches(6)


def test_trace_names_the_vcpu_of_every_line():
    result = smp_td(2).run()
    lines = render_all(result.events)
    assert lines and all(re.match(r"vcpu[01] \[", line) for line in lines)
    assert any(line.startswith("vcpu1 ") and "tdvmcall CPUID" in line for line in lines)


# --- guests of the tests: every vCPU starts at _start with its index in
#     RSI; the preamble gives each its own stack. ---

PREAMBLE = """
        .globl  _start
_start: lea     stacks(%rip), %rsp
        lea     1(%rsi), %rax
        shl     $12, %rax
        add     %rax, %rsp              # vCPU i: 4 KiB stack i
        mov     %rsi, %rbx              # the index, callee-saved
        lea     idt(%rip), %rdi
        call    tdx_default_gates       # NMIs and stray vectors (irq.S)
        lidt    idt_ptr(%rip)
        test    %rbx, %rbx
        jnz     ap
"""
EPILOGUE = """
park:   cli
        mov     $1, %edi
        call    tdx_halt
        jmp     park
        .section .rodata
idt_ptr: .word 256 * 16 - 1
        .quad   idt
        .data
        .balign 16
idt:    .fill   256 * 16, 1, 0
        .bss
        .balign 16
stacks: .fill   8 * 4096, 1, 0
"""


def smp_asm(asm, body: str, vcpus: int, **kw) -> TD:
    return asm(PREAMBLE + body + EPILOGUE, config=TdConfig(vcpus=vcpus, **kw.pop("config", {})),
               **kw)


VP_INFO = """
        mov     $1, %eax                # TDG.VP.INFO
        .byte   0x66, 0x0f, 0x01, 0xcc
        jmp     record
ap:     mov     $1, %eax
        .byte   0x66, 0x0f, 0x01, 0xcc
record: lea     info(%rip), %rdi
        shl     $4, %rbx
        mov     %r8, (%rdi,%rbx)
        mov     %r9, 8(%rdi,%rbx)
        lock incq done(%rip)
        test    %rbx, %rbx
        jnz     park
1:      cmpq    $3, done(%rip)
        jb      1b
        xor     %edi, %edi
        call    tdx_debug_exit
        .data
info:   .fill   6, 8, 0
done:   .quad   0
"""


def test_vp_info_names_each_caller(asm):
    """Spec 1.3: R8 = NUM_VCPUS | MAX_VCPUS << 32, R9 = the caller's
    VCPU_INDEX."""
    td = smp_asm(asm, VP_INFO, 3)
    result = td.run()
    assert result.ok, result.describe()
    words = struct.unpack("<6Q", td.read(td.symbol("info"), 48))
    assert words == (3 | 3 << 32, 0, 3 | 3 << 32, 1, 3 | 3 << 32, 2)


# vCPU 1 halts with R12 = halt_r12 (IRQs off); vCPU 0 waits until it is
# about to, wakes it by `method`, and exits 0 if vCPU 1 ran on, 3 if not.
WAKE = """
        cmpq    $0, ready(%rip)
        je      .-8
        mov     method(%rip), %rax
        cmp     $1, %rax
        je      by_icr
        cmp     $2, %rax
        je      by_send_ipi
        cmp     $3, %rax
        je      by_kick
        mov     $0x830, %edi            # 4: an NMI through the ICR
        mov     $(1 << 32 | 0x400), %rsi
        call    tdx_wrmsr
        jmp     wait
by_icr: mov     $1, %edi
        mov     $0x40, %esi
        call    tdx_send_ipi
        jmp     wait
by_send_ipi:
        mov     $10, %edi               # KVM_HC_SEND_IPI: bitmap 0b10 from APIC ID 0
        mov     $0b10, %esi
        xor     %edx, %edx
        xor     %ecx, %ecx
        mov     $0x40, %r8d
        call    tdx_kvm_hypercall
        jmp     wait
by_kick:
        mov     $5, %edi                # KVM_HC_KICK_CPU: flags 0, APIC ID 1
        xor     %esi, %esi
        mov     $1, %edx
        call    tdx_kvm_hypercall
wait:   mov     $200000, %ecx
1:      cmpq    $0, woke(%rip)
        jne     2f
        loop    1b
        mov     $3, %edi
        call    tdx_debug_exit
2:      xor     %edi, %edi
        call    tdx_debug_exit

ap:     cli
        movq    $1, ready(%rip)
        mov     halt_r12(%rip), %rdi
        call    tdx_halt
        movq    $1, woke(%rip)
        jmp     park
        .data
method:   .quad 0
halt_r12: .quad 0
ready:    .quad 0
woke:     .quad 0
"""


@pytest.mark.parametrize("method,r12,woken", [
    (1, 0, True), (1, 1, False),   # a fixed IPI wakes only a halt with R12 = 0 (7.4)
    (2, 0, True), (2, 1, False),   # KVM_HC_SEND_IPI likewise
    (3, 0, True), (3, 1, True),    # a kick always does (KVM pv_unhalted)
    (4, 0, True), (4, 1, True),    # an NMI always does
], ids=["icr-r12=0", "icr-r12=1", "send_ipi-r12=0", "send_ipi-r12=1",
        "kick-r12=0", "kick-r12=1", "nmi-r12=0", "nmi-r12=1"])
def test_wakeups_across_vcpus(asm, method, r12, woken):
    td = smp_asm(asm, WAKE, 2)
    td.write(td.symbol("method"), struct.pack("<Q", method))
    td.write(td.symbol("halt_r12"), struct.pack("<Q", r12))
    result = td.run()
    assert result.reason == "exit", result.describe()
    assert result.exit_code == (0 if woken else 3)
    halts = [e for e in result.events if isinstance(e, Halted)]
    assert [h.irq_blocked for h in halts[:1]] == [bool(r12)]


RBP_CPUID = """
        cmpq    $0, done(%rip)
        je      .-8
        xor     %edi, %edi
        call    tdx_debug_exit
ap:     mov     $0xFFEC, %ecx           # older td-shim: R10-R15, RDX, RBX, RBP, RSI, RDI, R8, R9
        xor     %r10d, %r10d
        mov     $10, %r11d              # Instruction.CPUID
        xor     %r12d, %r12d
        xor     %r13d, %r13d
        xor     %eax, %eax              # TDG.VP.VMCALL
        .byte   0x66, 0x0f, 0x01, 0xcc
        mov     %rax, status(%rip)
        mov     %r12, eax_out(%rip)
        movq    $1, done(%rip)
        jmp     park
        .data
status:  .quad  -1
eax_out: .quad  0
done:    .quad  0
"""


@pytest.mark.parametrize("no_rbp_mod,status", [(True, 0xC000010000000001), (False, 0)])
def test_ap_tdvmcall_exposing_rbp_fails_under_no_rbp_mod(asm, no_rbp_mod, status):
    """td-shim PR #861: an AP's CPUID TDVMCALL with mask 0xFFEC.  Under
    NO_RBP_MOD the module refuses it with OPERAND_INVALID(RCX) before any
    TD exit (spec 3.2); without, the host answers."""
    td = smp_asm(asm, RBP_CPUID, 2, config={"no_rbp_mod": no_rbp_mod})
    result = td.run()
    assert result.ok, result.describe()
    assert struct.unpack("<Q", td.read(td.symbol("status"), 8))[0] == status
    cpuid_exits = [e for e in result.exits if e.exposed[11] == 10]
    assert len(cpuid_exits) == (0 if no_rbp_mod else 1)
    if not no_rbp_mod:
        assert struct.unpack("<Q", td.read(td.symbol("eax_out"), 8))[0] == 0x1F


def test_every_vcpu_halted_for_good_is_reported(asm):
    td = smp_asm(asm, "        jmp park\nap:     jmp park\n", 3)
    result = td.run()
    assert result.reason == "halted"
    assert "every vCPU halted forever" in result.message
    assert all(f"vCPU {i} at " in result.message for i in range(3))


SUMS = """
ap:     xor     %r12d, %r12d
        mov     $100000, %ecx
        lea     1(%rbx), %rdx
1:      add     %rdx, %r12              # vCPU i adds i + 1, 100,000 times
        loop    1b
        lea     sums(%rip), %rdi
        mov     %r12, (%rdi,%rbx,8)
        lock incq done(%rip)
        test    %rbx, %rbx
        jnz     park
2:      cmpq    $4, done(%rip)
        jb      2b
        xor     %edi, %edi
        call    tdx_debug_exit
        .data
sums:   .fill   4, 8, 0
done:   .quad   0
"""


def test_registers_survive_switches(asm):
    td = smp_asm(asm, SUMS.replace("ap:", "        jmp ap\nap:", 1), 4)
    result = td.run()
    assert result.ok, result.describe()
    assert struct.unpack("<4Q", td.read(td.symbol("sums"), 32)) == tuple(
        100_000 * (i + 1) for i in range(4))
    assert sum(isinstance(e, Scheduled) for e in result.events) > 8  # quanta of ~100k insns


def test_host_with_another_vcpu_count_is_refused():
    from tdxsim.errors import TdxsimError
    from tdxsim.host import Host
    with pytest.raises(TdxsimError, match="vcpus=2"):
        TD(build([bundled_guest("smp")]), config=TdConfig(vcpus=2), host=Host())


# --- the explorer across vCPUs: vCPU 0 sends the wake-up at every
#     instruction boundary of vCPU 1's halt routine ---

BROKEN = Path(__file__).parent / "guests" / "broken_halts.S"


@pytest.mark.parametrize("waker", ["ipi", "send-ipi"])
def test_two_vcpu_explorer_finds_the_lost_wakeup_of_a_broken_halt(waker):
    """Spec 7.3 row 3: `sti; nop; tdcall(HLT)`: an IPI from the other vCPU
    that is pending once IF = 1 is taken after the NOP, and vCPU 1 then
    sleeps with nothing pending."""
    report = explore_wakeups(TD.from_source(BROKEN), "broken_safe_halt", waker=waker)
    lost = {i.instruction.split(": ", 1)[1].split()[-1] for i in report.lost_wakeups}
    assert "nop" in lost and "tdcall" in lost
    assert report.injections[-1].outcome == "woke"  # once the HLT reached the host


@pytest.mark.parametrize("routine", ["tdx_safe_halt", "tdx_halt_then_sti"])
def test_two_vcpu_explorer_finds_none_in_the_librarys_halts(routine):
    report = explore_wakeups(TD.from_source(BROKEN), routine, waker="ipi")
    assert report.injections and not report.lost_wakeups
    assert {i.outcome for i in report.injections} == {"woke"}


def test_a_kick_is_never_lost_even_by_a_broken_halt():
    """KICK_CPU carries no vector: its PV-unhalt flag outlives the window,
    so the next HLT returns at once (KVM __kvm_emulate_halt)."""
    report = explore_wakeups(TD.from_source(BROKEN), "broken_safe_halt", waker="kick")
    assert report.injections and not report.lost_wakeups


def test_unknown_waker_is_a_clear_error():
    from tdxsim.errors import TdxsimError
    with pytest.raises(TdxsimError, match="choose one of: ipi, send-ipi, kick"):
        explore_wakeups(TD.from_source(BROKEN), "broken_safe_halt", waker="smoke")


# --- the command line ---

def test_cli_runs_smp_with_four_vcpus_and_names_them_in_the_trace(capsys):
    from tdxsim.cli import main
    assert main(["run", "smp", "--vcpus", "4", "--seed", "3", "--trace"]) == 0
    out = capsys.readouterr().out
    assert out.count("CPUID vendor GenuineIntel") == 3
    trace = [line for line in out.splitlines() if "] " in line and " ns]" in line]
    assert trace and all(re.match(r"vcpu[0-3] \[", line) for line in trace)


@pytest.mark.parametrize("argv,message", [
    (["--vcpus", "0"], "--vcpus must be a whole number from 1 to 64"),
    (["--vcpus", "65"], "--vcpus must be a whole number from 1 to 64"),
    (["--seed", "3"], "--seed chooses"),
])
def test_cli_refuses_bad_vcpu_options(capsys, argv, message):
    from tdxsim.cli import main
    assert main(["run", "smp", *argv]) == 2
    assert message in capsys.readouterr().err


def test_the_bench_guest_runs_on_four_vcpus(asm):
    """tdxsim bench's SMP row (bench_smp.py), on a short loop."""
    from tdxsim import bench_smp
    source = bench_smp.source(4, 4000)
    result = asm(source, config=TdConfig(vcpus=4)).run()
    assert result.ok, result.describe()
    assert result.instructions > 4 * 3 * 1000


def test_a_crash_names_its_vcpu(asm):
    result = smp_asm(asm, "        jmp park\nap:     ud2\n", 2).run()
    assert result.reason == "crash"
    assert "vCPU 1: #UD: ud2" in result.message


def test_chrome_trace_has_a_track_per_vcpu(tmp_path):
    from tdxsim.cli import main
    out = tmp_path / "smp.json"
    assert main(["run", "smp", "--vcpus", "3", "--trace-out", str(out)]) == 0
    events = json.loads(out.read_text())["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert names == {0: "vCPU 0", 1: "vCPU 1", 2: "vCPU 2"}
