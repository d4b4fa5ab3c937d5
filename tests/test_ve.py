"""#VE for HLT and TDG.VP.VEINFO.GET (spec 8), and the `sti; hlt` lost
wakeup through the #VE path (spec 7.3 row 5)."""
from __future__ import annotations

from pathlib import Path

from conftest import GUEST
from tdxsim import TD
from tdxsim.events import VeRaised
from tdxsim.explore import explore_wakeups

GUESTS = Path(__file__).parent / "guests"

VEINFO_SRC = """
        .text
        .globl  hlt_with_ve_idt, nested

# Load an IDT whose #VE gate (vector 20) points at `ve_gate_target`, hlt.
hlt_with_ve_idt:
        lea     idt(%rip), %rdi
        lea     ve_gate_target(%rip), %rsi
        mov     %si, 16 * 20(%rdi)
        movw    $0x08, 16 * 20 + 2(%rdi)
        movw    $0x8E00, 16 * 20 + 4(%rdi)
        shr     $16, %rsi
        mov     %si, 16 * 20 + 6(%rdi)
        lidt    idt_ptr(%rip)
the_hlt:
        hlt
        ret
        .globl  the_hlt

# The #VE handler stops at a UD2 marker so the test can read VE info itself.
ve_gate_target:
        ud2

        .section .rodata
idt_ptr: .word 256 * 16 - 1
         .quad idt
        .data
        .balign 16
idt:    .fill 256 * 16, 1, 0
"""

NESTED_SRC = VEINFO_SRC.replace("ve_gate_target:\n        ud2", "ve_gate_target:\n        hlt")


def read_out(td: TD, address: int) -> list[int]:
    raw = td.read(address, 48)
    return [int.from_bytes(raw[i:i + 8], "little") for i in range(0, 48, 8)]


def test_veinfo_get_without_pending_ve_returns_no_valid_ve_info(asm):
    """Spec 2.2 / 8.2: TDX_NO_VALID_VE_INFO = 0xC000070400000000, and the
    module zeroes RCX, RDX, R8..R10 even on failure."""
    td = asm(VEINFO_SRC)
    assert td.call("tdx_veinfo_get", 0) == 0xC000070400000000
    regs = td.gprs()
    # __tdx_module_call returns with its outputs still in place
    assert [regs[r] for r in ("rcx", "rdx", "r8", "r9", "r10")] == [0, 0, 0, 0, 0]


def test_a_failed_veinfo_get_zeroes_outputs_the_guest_had_set(probe):
    """Spec 8.2: the handler zeroes RCX, RDX and R8..R10 first, even on
    failure.  A raw TDCALL (leaf 3) with those registers full of the guest's
    values, and no VE info valid: RAX = TDX_NO_VALID_VE_INFO and all five
    read 0; the registers it does not write keep the guest's values."""
    p = probe()
    filled = {r: 0x7E00_0000_0000_0000 | i for i, r in enumerate(("rcx", "rdx", "r8", "r9",
                                                                   "r10"), 1)}
    after = p.tdcall(rax=3, **filled)
    assert after.gprs["rax"] == 0xC000070400000000
    assert [after.gprs[r] for r in filled] == [0, 0, 0, 0, 0]
    assert after.gprs["r11"] == GUEST["r11"] and after.gprs["rbx"] == GUEST["rbx"]


def test_hlt_raises_ve_with_the_hlt_exit_info(asm):
    """Spec 8.1-8.3: HLT in a TD raises #VE (vector 20), fault-like (saved
    RIP = the HLT); VE info holds exit reason 12 and length 1."""
    td = asm(VEINFO_SRC)
    result = td.call_result("hlt_with_ve_idt")
    assert result.reason == "crash" and "ud2" in result.message  # in the handler
    [ve] = [e for e in result.events if isinstance(e, VeRaised)]
    assert ve.vector == 20 and ve.rip == td.symbol("the_hlt") and ve.exit_reason == 12
    frame = td.read(td.gprs()["rsp"], 24)
    assert int.from_bytes(frame[:8], "little") == td.symbol("the_hlt")
    assert int.from_bytes(frame[16:24], "little") & 1 << 16  # RF set by the module
    # The handler's VEINFO.GET: SUCCESS, RCX = 12, R10[31:0] = 1; then VALID clears.
    assert td.call("tdx_veinfo_get", 0x300000) == 0
    out = read_out(td, 0x300000)
    assert out[0] == 12 and out[4] & 0xFFFF_FFFF == 1
    assert td.call("tdx_veinfo_get", 0x300000) == 0xC000070400000000


def test_nested_ve_is_a_double_fault(asm):
    """Spec 8.3: a #VE while VE info is still valid becomes #DF (vector 8)."""
    td = asm(NESTED_SRC)
    result = td.call_result("hlt_with_ve_idt")
    assert [e.vector for e in result.events if isinstance(e, VeRaised)] == [20, 8]
    assert result.reason == "crash" and "vector 8" in result.message


def test_nested_ve_is_gp_under_the_sdv_option(asm):
    from tdxsim import TdConfig
    td = asm(NESTED_SRC, config=TdConfig(legacy_nested_ve_gp=True))
    result = td.call_result("hlt_with_ve_idt")
    assert [e.vector for e in result.events if isinstance(e, VeRaised)] == [20, 13]


def test_ve_without_an_idt_is_a_crash_report(asm):
    td = asm("        .globl h\nh:\n        hlt\n        ret\n")
    result = td.call_result("h")
    assert result.reason == "crash" and "cannot deliver #VE" in result.message


def test_sti_hlt_through_ve_loses_the_wakeup_that_sti_tdcall_keeps():
    """Spec 7.3: `sti; hlt` goes through #VE, whose handler re-enables IRQs
    before its HLT TDCALL, so an interrupt pending at the STI is consumed
    first.  The direct `sti; tdcall` (tdx_safe_halt) has no such window."""
    td = TD.from_source(GUESTS / "ve_halt.S")
    via_ve = explore_wakeups(td, "ve_sti_hlt")
    lost = [i.instruction for i in via_ve.lost_wakeups]
    assert any(text.endswith("sti") for text in lost)
    assert any(text.endswith("hlt") for text in lost)
    assert not explore_wakeups(td, "tdx_safe_halt").lost_wakeups


def test_cli_hlt_through_ve_reports_interrupts_blocked():
    """Linux's handle_halt passes R12 = irqs_disabled(): with IF = 0 the
    halt is blocked and only NMI/INIT could end it."""
    result = TD.from_source(GUESTS / "ve_halt.S").call_result("ve_cli_hlt")
    assert result.reason == "halted" and "R12 != 0" in result.message
