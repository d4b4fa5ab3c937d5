"""The bundled "legacy" guest: the demo written with plain out/cpuid/rdmsr/
wrmsr/hlt, turned into TDVMCALLs by the library's #VE handler (spec 8.4)."""
from __future__ import annotations

import textwrap

from tdxsim import TD
from tdxsim.cli import main
from tdxsim.events import Halted, VeRaised, Woke
from tdxsim.explore import explore_wakeups
from tdxsim.image import bundled_guest


def cli(capsys, *argv):
    code = main(["run", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_legacy_prints_exactly_what_the_demo_prints(capsys):
    demo = cli(capsys, "demo")
    legacy = cli(capsys, "legacy")
    assert demo[0] == legacy[0] == 0
    assert legacy[1] == demo[1]
    assert legacy[1].startswith("Hello from a TD guest\n")


def test_legacy_goes_through_ve_for_every_plain_instruction():
    """Every COM1 byte, the RDMSR, both WRMSRs, the HLT and the debug exit
    are a #VE each, then exactly the TDVMCALL the demo issues directly; the
    CPUID leaf 0 is answered by the module without any exit."""
    result = TD.from_source(bundled_guest("legacy")).run()
    assert result.ok, result.describe()
    ves = [e for e in result.events if isinstance(e, VeRaised)]
    assert all(e.vector == 20 for e in ves)
    reasons = [e.exit_reason for e in ves]
    assert reasons.count(31) == 1 and reasons.count(32) == 2 and reasons.count(12) == 1
    assert reasons.count(30) == len(result.console) + 1  # + the debug exit
    names = [x.name for x in result.exits]
    assert "CPUID" not in names and len(names) == len(ves)
    assert any(isinstance(e, Halted) for e in result.events)
    assert any(isinstance(e, Woke) for e in result.events)


def test_trace_shows_ve_info_and_the_tdvmcall_it_became(capsys):
    code, out, err = cli(capsys, "legacy", "--trace")
    lines = out.splitlines()
    rdmsr = next(i for i, line in enumerate(lines) if "#VE" in line and "RDMSR (31)" in line)
    assert "qual=0x0" in lines[rdmsr] and "len=2" in lines[rdmsr]
    assert "tdvmcall RDMSR" in lines[rdmsr + 1] and "msr=0x1b" in lines[rdmsr + 1]
    assert "<- #VE at" in lines[rdmsr + 1]
    out_line = next(line for line in lines if "#VE" in line and "port=0x3f8" in line)
    assert "IO (30) out port=0x3f8 size=1: qual=0x3f80000" in out_line


def test_sti_hlt_through_the_library_handler_keeps_the_wakeup(tmp_path):
    """The library handler issues the HLT TDVMCALL with IF = 0 and R12 = 0,
    so unlike Linux's pre-v6.15 handler (tests/guests/ve_halt.S) no
    interrupt boundary of `sti; hlt` loses the wakeup (spec 7.3)."""
    src = tmp_path / "safe.S"
    src.write_text(textwrap.dedent("""\
        .text
        .globl  sti_hlt
    sti_hlt:
        push    %rbp
        mov     %rsp, %rbp
        lea     tdx_ve_entry(%rip), %rsi
        mov     $20, %edi
        call    gate
        lea     stub(%rip), %rsi
        mov     $0xEC, %edi
        call    gate
        lidt    idtr(%rip)
        sti
        hlt
        cli
        pop     %rbp
        ret
    stub:
        iretq
    gate:
        shl     $4, %edi
        lea     idt(%rip), %rax
        add     %rdi, %rax
        mov     %si, (%rax)
        movw    $8, 2(%rax)
        movw    $0x8E00, 4(%rax)
        shr     $16, %rsi
        mov     %si, 6(%rax)
        shr     $16, %rsi
        mov     %esi, 8(%rax)
        ret
        .section .rodata
    idtr:   .word 4095
            .quad idt
        .data
        .balign 16
    idt:    .fill 4096, 1, 0
    """))
    report = explore_wakeups(TD.from_source(src), "sti_hlt")
    assert report.injections and not report.lost_wakeups, report.render()
