"""The KVM-style host, beyond the instruction sub-functions: GetTdVmCallInfo,
ReportFatalError, unknown sub-functions, KVM hypercalls, user handlers and the
sub-functions tdxsim does not serve, through real guest TDCALLs (spec 4, 5,
6).  `p.vmcall(...)` runs `tdcall; ret` with the given registers and mask
0xFC00 (R10-R15) unless RCX is given."""
from __future__ import annotations

import pytest

from tdxsim import TdConfig, TdxsimError, VmResume

SUCCESS = 0x0000000000000000           # spec 4.2
INVALID_OPERAND = 0x8000000000000000   # spec 4.2
SUBFUNC_UNSUPPORTED = 0x8000000000000003  # spec 4.2
KVM_ENOSYS = 0xFFFFFFFFFFFFFC18        # spec 5: -1000
SHARED = 1 << 47                       # spec 1.3/4.4: BIT(GPAW - 1), GPAW 48


def ghci(p, subfn, *args, **regs):
    """Standard GHCI call: R10 = 0, R11 = subfn, R12.. = args."""
    names = ("r12", "r13", "r14", "r15")
    return p.vmcall(r10=0, r11=subfn, **dict(zip(names, args)), **regs)


# --- GetTdVmCallInfo (R11 = 0x10000) ---

def test_get_td_vm_call_info_leaf0(probe):
    """Spec 4.7: leaf 0 -> SUCCESS, R11..R14 = 0."""
    g = ghci(probe(), 0x10000, 0, 0x5555, 0x6666, 0x7777).gprs
    assert g["r10"] == SUCCESS
    assert (g["r11"], g["r12"], g["r13"], g["r14"]) == (0, 0, 0, 0)


def test_get_td_vm_call_info_leaf1(probe):
    """Spec 4.7: leaf 1 -> SUCCESS, R13 = R14 = 0."""
    g = ghci(probe(), 0x10000, 1, 0x6666, 0x7777).gprs
    assert g["r10"] == SUCCESS
    assert (g["r13"], g["r14"]) == (0, 0)


@pytest.mark.parametrize("leaf", [2, 7, 1 << 63])
def test_get_td_vm_call_info_other_leaf(probe, leaf):
    """Spec 4.7: any other leaf -> INVALID_OPERAND."""
    assert ghci(probe(), 0x10000, leaf).gprs["r10"] == INVALID_OPERAND


# --- ReportFatalError (R11 = 0x10003) ---

def text(s: str) -> int:
    return int.from_bytes(s.encode().ljust(8, b"\0"), "little")


MESSAGE_REGS = dict(r14=text("0123456-"), r15=text("89abcde-"), rbx=text("ghijklm-"),
                    rdi=text("nopqrst-"), rsi=text("uvwxyzA-"), r8=text("BCDEFGH-"),
                    r9=text("IJKLMNO-"), rdx=text("PQRSTUV-"))


def test_fatal_error_full_message(probe):
    """Spec 4.6: 64-byte message in R14, R15, RBX, RDI, RSI, R8, R9, RDX
    (mask 0xFFCC); the run ends with reason 'fatal' and never resumes."""
    p = probe()
    after = ghci(p, 0x10003, 0, 0, rcx=0xFFCC, expect="fatal", **MESSAGE_REGS)
    fatal = after.result.fatal
    assert fatal.message == ("0123456-89abcde-ghijklm-nopqrst-uvwxyzA-BCDEFGH-"
                             "IJKLMNO-PQRSTUV-")
    assert fatal.error_code == 0
    assert fatal.gpa is None


def test_fatal_error_nul_padded(probe):
    """Spec 4.6: the message is NUL-padded."""
    after = ghci(probe(), 0x10003, 0, 0, text("boom"), expect="fatal")
    assert after.result.fatal.message == "boom"
    assert "boom" in after.result.message


def test_fatal_error_only_selected_registers(probe):
    """Spec 4.6: only the selected registers are packed, in order.  Mask
    0x7C08 selects R14 and RBX (not R15, RDI, ...)."""
    regs = dict(MESSAGE_REGS)
    after = ghci(probe(), 0x10003, 0, 0, regs.pop("r14"), regs.pop("r15"),
                 rcx=0x7C08, expect="fatal", **regs)
    assert after.result.fatal.message == "0123456-ghijklm-"


def test_fatal_error_gpa_only_with_bit63(probe):
    """Spec 4.6: R13 is a GPA only when R12 bit 63 is set."""
    after = ghci(probe(), 0x10003, 1 << 63, 0x7000, text("x"), expect="fatal")
    assert after.result.fatal.gpa == 0x7000
    assert after.result.fatal.error_code == 1 << 63
    after = ghci(probe(), 0x10003, 0, 0x7000, text("x"), expect="fatal")
    assert after.result.fatal.gpa is None


def test_fatal_error_library(asm):
    """tdx_report_fatal_error(msg) ends the run with the message."""
    td = asm("""
        .globl _start
    _start:
        lea     msg(%rip), %rdi
        call    tdx_report_fatal_error
        .section .rodata
    msg: .asciz "the TD gave up"
    """)
    result = td.run()
    assert result.reason == "fatal"
    assert result.fatal.message == "the TD gave up"
    assert result.exits[-1].gpr_select & 0x20 == 0  # never RBP (NO_RBP_MOD)


# --- unknown sub-functions (spec 4.2, 6.1, 6.2) ---

@pytest.mark.parametrize("subfn", [0x12345, 54, 65, 0x10005, 0])
def test_unknown_subfunction_kvm(probe, subfn):
    """Spec 6.1 step 5: anything else -> SUBFUNC_UNSUPPORTED (current KVM)."""
    assert ghci(probe(), subfn).gprs["r10"] == SUBFUNC_UNSUPPORTED


def test_unknown_subfunction_kvm_legacy(probe):
    """Spec 4.2/6.2: KVM before 2025 answered INVALID_OPERAND."""
    assert ghci(probe(host="kvm-legacy"), 0x12345).gprs["r10"] == INVALID_OPERAND


# --- KVM hypercalls (spec 5) ---

def test_kvm_vapic_poll_irq(probe):
    """Spec 5: nr 1 (KVM_HC_VAPIC_POLL_IRQ) is a no-op returning 0."""
    assert probe().vmcall(r10=1, r11=0xDEAD).gprs["r10"] == 0


@pytest.mark.parametrize("nr", [2, 3, 4, 999])
def test_kvm_unknown_hypercall_enosys(probe, nr):
    """Spec 5: unhandled nr (incl. KVM_HC_FEATURES = 3) -> -KVM_ENOSYS."""
    assert probe().vmcall(r10=nr).gprs["r10"] == KVM_ENOSYS


def test_kvm_hypercall_library_passes_arguments(probe):
    """Spec 5: tdx_kvm_hypercall(nr, a0..a3): R10 = nr, R11..R14 = a0..a3;
    returns R10."""
    p = probe()
    seen = []

    def handler(host, exit):
        seen.append((exit.r10, exit.r11, exit.r12, exit.r13, exit.r14))
        return VmResume(gprs={10: 0x77})

    p.td.host.kvm_handlers[11] = handler
    assert p.td.call("tdx_kvm_hypercall", 11, 0xA0, 0xA1, 0xA2, 0xA3) == 0x77
    assert seen == [(11, 0xA0, 0xA1, 0xA2, 0xA3)]
    assert p.td.call("tdx_kvm_hypercall", 999, 0, 0, 0, 0) == KVM_ENOSYS


# --- user handlers ---

def test_user_handler_override(probe):
    """td.host.handlers[subfn] = fn(host, exit) -> VmResume replaces a
    sub-function; the guest sees its outputs."""
    p = probe()
    p.td.host.handlers[10] = lambda host, exit: VmResume(
        gprs={10: 0, 12: exit.r12 + 1, 13: 0xB, 14: 0xC, 15: 0xD})
    g = ghci(p, 10, 41).gprs
    assert (g["r10"], g["r12"], g["r13"], g["r14"], g["r15"]) == (0, 42, 0xB, 0xC, 0xD)


def test_user_handler_for_new_subfunction(probe):
    """A handler can be added for a sub-function the host does not serve."""
    p = probe()
    p.td.host.handlers[0x10001] = lambda host, exit: VmResume(gprs={10: 1, 11: exit.r12})
    g = ghci(p, 0x10001, 0x4000).gprs
    assert (g["r10"], g["r11"]) == (1, 0x4000)


def test_raising_handler_is_reported_not_a_traceback(probe):
    """A handler that raises ends the run with reason 'error' and a message
    naming the sub-function, never a Python traceback."""
    p = probe()

    def broken(host, exit):
        raise ValueError("host bug")

    p.td.host.handlers[10] = broken
    after = ghci(p, 10, 0, expect="error")
    assert "CPUID" in after.result.message
    assert "host bug" in after.result.message
    assert "Traceback" not in after.result.message


def test_raising_tdxsim_error_also_names_the_subfunction(probe):
    """A handler raising a TdxsimError (e.g. HostError, meant for 'a host-side
    handler failed') is reported the same way: 'error', sub-function named."""
    p = probe()

    def broken(host, exit):
        raise TdxsimError("host bug")

    p.td.host.handlers[10] = broken
    after = ghci(p, 10, 0, expect="error")
    assert "host bug" in after.result.message
    assert "CPUID" in after.result.message


def test_handler_returning_wrong_type_is_reported(probe):
    """A handler that returns something other than a VmResume -> 'error'."""
    p = probe()
    p.td.host.handlers[31] = lambda host, exit: 0
    after = ghci(p, 31, 0x1B, expect="error")
    assert "RDMSR" in after.result.message


@pytest.mark.parametrize("gprs", [{"r11": 1}, {11: None}], ids=["name-key", "none-value"])
def test_handler_returning_malformed_vmresume_is_reported(probe, gprs):
    """A VmResume whose gprs are not {index: int} (e.g. a register name as
    key, as VmResume.status() accepts) -> 'error' naming the sub-function,
    not a Python exception out of td.call_result."""
    p = probe()
    p.td.host.handlers[31] = lambda host, exit: VmResume(gprs=dict(gprs))
    after = ghci(p, 31, 0x1B, expect="error")
    assert "RDMSR" in after.result.message


# --- sub-functions tdxsim does not serve: KVM's own checks still apply ---

def test_map_gpa_unsupported_returns_start_gpa_in_r11(probe):
    """Spec 6.3 step 1: when user space has not enabled the MapGPA exit, KVM
    answers SUBFUNC_UNSUPPORTED with R11 = R12 (the start GPA)."""
    p = probe()
    p.td.host.map_gpa_exit = False
    g = ghci(p, 0x10001, SHARED | 0x100000, 0x2000).gprs
    assert g["r10"] == SUBFUNC_UNSUPPORTED
    assert g["r11"] == SHARED | 0x100000


def test_get_quote_private_gpa_is_invalid_operand(probe):
    """Spec 6.2: GetQuote with a private buffer GPA -> INVALID_OPERAND (KVM
    checks this before forwarding to user space)."""
    assert ghci(probe(), 0x10002, 0x100000, 0x1000).gprs["r10"] == INVALID_OPERAND
