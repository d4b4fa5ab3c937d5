"""#VE for the instructions the TDX module intercepts (spec 8.1, 8.2, 8.3):
IN/OUT/INS/OUTS, CPUID, RDMSR/WRMSR; CPUIDVE.SET; the MSR policy.

Each test runs one real instruction from tests/guests/ve_sources.S.  The
#VE gate stops on a UD2 marker, so the test sees the exception frame and
reads VE info itself with TDG.VP.VEINFO.GET.  Expected VE info: spec 8.2
(exit reasons from spec 0.1; I/O qualification = (size - 1) | IN << 3 |
string << 4 | port << 16).  The REP (bit 5) and immediate-port (bit 6)
qualification bits and the INS/OUTS instruction information (address size
in bits 9:7, segment in 17:15) are from Intel SDM vol. 3, Tables 28-5 and
28-8.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tdxsim import TD, TdxsimError
from tdxsim.events import ExceptionInjected, VeRaised

GUEST = Path(__file__).parent / "guests" / "ve_sources.S"
OUT = 0x300000  # scratch buffer for VE info
RAX = 0x1111_2222_3333_4444
NO_VALID_VE_INFO = 0xC000_0704_0000_0000


@pytest.fixture(scope="module")
def image():
    return TD.from_source(GUEST).image


@pytest.fixture
def td(image):
    td = TD(image)
    td.call("ve_setup")
    return td


def run(td: TD, label: str, **regs):
    """Run one instruction; returns the #VE/#GP events and the stop RIP."""
    result = td.call_result(label, regs=regs)
    return result, [e for e in result.events if isinstance(e, (VeRaised, ExceptionInjected))]


def veinfo(td: TD) -> list[int]:
    assert td.call("tdx_veinfo_get", OUT) == 0
    raw = td.read(OUT, 48)
    return [int.from_bytes(raw[i:i + 8], "little") for i in range(0, 48, 8)]


def frame(td: TD, error_code: bool = False) -> tuple[int, int]:
    """(saved RIP, saved RFLAGS) of the exception frame at RSP."""
    raw = td.read(td.gprs()["rsp"] + (8 if error_code else 0), 24)
    return int.from_bytes(raw[:8], "little"), int.from_bytes(raw[16:24], "little")


def assert_ve(td: TD, label: str, events, exit_reason: int, qualification: int,
              length: int, info: int = 0) -> None:
    """A fault-like #VE at the instruction with the VE info of spec 8.2."""
    rip = td.symbol(label)
    assert [(e.vector, e.rip) for e in events] == [(20, rip)]
    assert td.vcpu.regs.rip == td.symbol("ve_stop")
    saved_rip, saved_rflags = frame(td)
    assert saved_rip == rip and saved_rflags & 1 << 16  # RF set (spec 8.3)
    # RCX exit reason, RDX qualification, R8 GLA, R9 GPA, R10 length | info << 32
    assert veinfo(td)[:5] == [exit_reason, qualification, 0, 0, length | info << 32]


# --- I/O: always #VE (spec 8.1) ---

def test_out_dx(td):
    """`out %al,%dx` to 0x3F8: reason 30, qualification 0x3F80000, length 1;
    nothing reaches the serial port."""
    result, events = run(td, "at_out_dx", rax=0x41, rdx=0x3F8)
    assert_ve(td, "at_out_dx", events, 30, 0x03F8_0000, 1)
    assert result.console == "" and result.exits == []


def test_in_dx_eax_leaves_rax_untouched(td):
    """`in %dx,%eax` from 0x71: size 4 -> 3 | IN 0x8 | 0x71 << 16.  Fault-like:
    RAX keeps its value (a native IN would have zero-extended EAX)."""
    _, events = run(td, "at_in_dx_eax", rax=RAX, rdx=0x71)
    assert td.gprs()["rax"] == RAX
    assert_ve(td, "at_in_dx_eax", events, 30, 0x0071_000B, 1)


def test_out_immediate_port(td):
    """`out %al,$0x80` (E6 80): the immediate-port bit 6 [SDM], length 2."""
    _, events = run(td, "at_out_imm", rax=0)
    assert_ve(td, "at_out_imm", events, 30, 0x0080_0040, 2)


def test_in_immediate_port(td):
    _, events = run(td, "at_in_imm", rax=RAX)
    assert td.gprs()["rax"] == RAX
    assert_ve(td, "at_in_imm", events, 30, 0x0071_0048, 2)


def test_rep_insb_has_no_side_effect(td):
    """`rep insb` (F3 6C) from port 0x60: IN | string 0x10 | REP 0x20 [SDM];
    instruction info: 64-bit addresses (2 << 7), ES (0).  Memory, RDI and RCX
    are untouched: the module intercepts before the instruction runs."""
    buffer = td.symbol("buffer")
    _, events = run(td, "at_rep_insb", rdi=buffer, rcx=3, rdx=0x60)
    assert td.read(buffer, 8) == bytes.fromhex("8877665544332211")
    assert td.gprs()["rdi"] == buffer and td.gprs()["rcx"] == 3
    assert_ve(td, "at_rep_insb", events, 30, 0x0060_0038, 2, 0x100)


def test_outsw_reports_string_and_segment(td):
    """`outsw` (66 6F) to 0x3F8: size 2 -> 1 | string 0x10; info: 64-bit
    addresses and DS (3 << 15)."""
    buffer = td.symbol("buffer")
    _, events = run(td, "at_outsw", rsi=buffer, rdx=0x3F8)
    assert td.gprs()["rsi"] == buffer
    assert_ve(td, "at_outsw", events, 30, 0x03F8_0011, 2, 0x1_8100)


def test_in_outside_the_scanned_image_is_still_fault_like(td):
    """IN in code the guest wrote at run time (not in the image): Unicorn's
    instruction hook catches it and RAX is restored."""
    td.write(0x200000, bytes.fromhex("ec c3"))  # in %dx,%al; ret
    result = td.call_result(0x200000, regs={"rax": RAX, "rdx": 0x3F8})
    [ve] = [e for e in result.events if isinstance(e, VeRaised)]
    assert ve.rip == 0x200000 and td.gprs()["rax"] == RAX
    assert veinfo(td)[:2] == [30, 0x03F8_0008]


def test_nested_io_ve_is_a_double_fault(image):
    """Spec 8.3: a #VE while VE info is valid -> #DF (vector 8, error code 0)."""
    td = TD(image)
    td.call("ve_setup_nested")
    _, events = run(td, "at_out_dx", rax=0x41, rdx=0x3F8)
    assert [e.vector for e in events] == [20, 8]
    assert td.vcpu.regs.rip == td.symbol("df_stop")
    assert td.read(td.gprs()["rsp"], 8) == bytes(8)  # the error code


# --- CPUID (spec 8.1: leaves the module does not virtualise) ---

def test_cpuid_hypervisor_leaf_raises_ve(td):
    """Leaf 0x40000000 always #VEs ([M-cpuid]): reason 10, qualification 0,
    length 2; RAX-RDX untouched."""
    regs = dict(rax=0x4000_0000, rbx=1, rcx=2, rdx=3)
    _, events = run(td, "at_cpuid", **regs)
    assert {k: td.gprs()[k] for k in regs} == regs
    assert_ve(td, "at_cpuid", events, 10, 0, 2)


def test_cpuid_leaf_0_is_answered_by_the_module(td):
    """Leaf 0 is virtualised natively: no #VE, no TD exit, the TD's CPUID
    configuration (the host table: max leaf 0x1F, "GenuineIntel")."""
    result, events = run(td, "at_cpuid", rax=0, rcx=0)
    assert result.reason == "return" and events == [] and result.exits == []
    g = td.gprs()
    assert (g["rax"], g["rbx"], g["rdx"], g["rcx"]) == (0x1F, 0x756E6547, 0x49656E69, 0x6C65746E)


def test_cpuidve_set_supervisor_forces_ve_for_every_leaf(td):
    """Spec 1.3: TDG.VP.CPUIDVE.SET RCX bit 0 -> #VE for CPUID at CPL 0."""
    assert td.call("__tdx_module_call", 5, 1, 0, 0, 0, 0) == 0
    _, events = run(td, "at_cpuid", rax=0, rcx=0)
    assert_ve(td, "at_cpuid", events, 10, 0, 2)


def test_cpuidve_set_user_only_keeps_cpl0_native(td):
    """Bit 1 (CPL > 0) does not affect CPL 0 code."""
    assert td.call("__tdx_module_call", 5, 2, 0, 0, 0, 0) == 0
    result, events = run(td, "at_cpuid", rax=0, rcx=0)
    assert events == [] and td.gprs()["rax"] == 0x1F


@pytest.mark.parametrize("rcx", [4, 1 << 63, 0xFFFF_FFFF_FFFF_FFFF])
def test_cpuidve_set_reserved_bits(td, rcx):
    """Spec 1.3: reserved RCX bits -> OPERAND_INVALID(RCX), nothing changes."""
    assert td.call("__tdx_module_call", 5, rcx, 0, 0, 0, 0) == 0xC000_0100_0000_0001
    _, events = run(td, "at_cpuid", rax=0, rcx=0)
    assert events == []


def test_cpuid_ve_reaches_the_vmm_through_a_handler(image):
    """The library handler forwards a hypervisor leaf to the VMM (spec 8.4):
    KVM's signature comes back in EBX, ECX, EDX."""
    td = TD(image)
    td.call("ve_setup")
    td.write(td.symbol("idt") + 16 * 20, _gate(td.symbol("tdx_ve_entry")))
    result = td.call_result("at_cpuid", regs=dict(rax=0x4000_0000, rcx=0))
    assert result.reason == "return", result.describe()
    g = td.gprs()
    assert (g["rbx"], g["rcx"], g["rdx"]) == (0x4B4D564B, 0x564B4D56, 0x4D)  # "KVMKVMKVM\0\0\0"
    [exit] = result.exits
    assert exit.name == "CPUID" and exit.exposed[12] == 0x4000_0000


def _gate(handler: int) -> bytes:
    low = handler & 0xFFFF | 0x08 << 16 | 0x8E00 << 32 | (handler >> 16 & 0xFFFF) << 48
    return low.to_bytes(8, "little") + (handler >> 32).to_bytes(8, "little")


# --- RDMSR / WRMSR ---

def test_rdmsr_of_apic_base_raises_ve(td):
    """IA32_APIC_BASE (0x1B) is not virtualised by the module: reason 31,
    length 2; RAX and RDX untouched."""
    _, events = run(td, "at_rdmsr", rcx=0x1B, rax=RAX, rdx=RAX)
    assert td.gprs()["rax"] == RAX and td.gprs()["rdx"] == RAX
    assert_ve(td, "at_rdmsr", events, 31, 0, 2)


def test_wrmsr_of_tsc_deadline_raises_ve(td):
    _, events = run(td, "at_wrmsr", rcx=0x6E0, rax=5, rdx=0)
    assert_ve(td, "at_wrmsr", events, 32, 0, 2)
    assert td.lapic.tsc_deadline == 0  # the write never happened


def test_native_msrs_run_without_exit(td):
    """PAT is virtualised natively (its reset value, SDM); IA32_TSC reads the
    virtual TSC; FS_BASE writes take effect.  No #VE, no TD exit."""
    result, events = run(td, "at_rdmsr", rcx=0x277)
    assert events == [] and result.exits == []
    assert (td.gprs()["rdx"], td.gprs()["rax"]) == (0x0007_0406, 0x0007_0406)
    result, _ = run(td, "at_rdmsr", rcx=0x10)
    tsc = td.gprs()["rdx"] << 32 | td.gprs()["rax"]
    assert 0 < tsc <= result.time_ns
    run(td, "at_wrmsr", rcx=0xC000_0100, rax=0x5000, rdx=0)
    assert td.vcpu.uc.msr_read(0xC000_0100) == 0x5000


def test_msr_gp_from_the_default_policy(td):
    """SGX launch-key MSRs are #GP(0) in a TD ([M-msr]): fault-like, error code 0."""
    _, events = run(td, "at_rdmsr", rcx=0x8C)
    assert [(type(e).__name__, e.vector) for e in events] == [("ExceptionInjected", 13)]
    assert td.vcpu.regs.rip == td.symbol("gp_stop")
    assert td.read(td.gprs()["rsp"], 8) == bytes(8)
    assert frame(td, error_code=True)[0] == td.symbol("at_rdmsr")


def test_msr_policy_is_configurable(td):
    td.module.msr_policy.set(0x1B, read="gp")
    _, events = run(td, "at_rdmsr", rcx=0x1B)
    assert [e.vector for e in events] == [13]
    with pytest.raises(TdxsimError, match="unknown MSR action"):
        td.module.msr_policy.set(0x1B, read="maybe")


def test_efer_write_may_change_only_sce(td):
    """[M-msr] wrmsr_ia32_efer: SCE may change (native); any other bit -> #VE."""
    efer = td.vcpu.uc.msr_read(0xC000_0080)
    result, events = run(td, "at_wrmsr", rcx=0xC000_0080, rax=efer | 1, rdx=0)
    assert events == [] and td.vcpu.uc.msr_read(0xC000_0080) == efer | 1
    _, events = run(td, "at_wrmsr", rcx=0xC000_0080, rax=efer ^ 1 << 11, rdx=0)  # NXE flips
    assert [e.vector for e in events] == [20] and veinfo(td)[0] == 32


def test_apic_virtualized_registers(td):
    """SELF_IPI, IRR and EOI never exit ([M-msr]): a self-IPI becomes
    pending and shows in IRR; a non-zero EOI is #GP(0) (SDM x2APIC)."""
    run(td, "at_wrmsr", rcx=0x83F, rax=0x41, rdx=0)
    assert 0x41 in td.lapic.irr
    run(td, "at_rdmsr", rcx=0x822)  # IRR bits 64..95
    assert td.gprs()["rax"] == 1 << 1
    _, events = run(td, "at_wrmsr", rcx=0x80B, rax=1, rdx=0)
    assert [e.vector for e in events] == [13]


def test_rewritten_code_runs_natively(td):
    """An exit address whose code the guest replaced stops being intercepted."""
    at = td.symbol("at_out_dx")
    td.write(at, bytes.fromhex("90"))  # nop; the `ret` follows
    result, events = run(td, "at_out_dx", rax=0x41, rdx=0x3F8)
    assert result.reason == "return" and events == []
