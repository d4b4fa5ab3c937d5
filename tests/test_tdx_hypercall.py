"""The guest library's seed `__tdx_hypercall(args, flags)` (spec 9.1), run
on real guest code: td.call("__tdx_hypercall", ARGS, flags, regs=...) on a
struct {r10, r11, r12, r13, r14, r15} written at ARGS."""
from __future__ import annotations

import pytest

from tdxsim import GuestStopped, VmResume

ARGS = 0x200000
HAS_OUTPUT = 1   # spec 9.1 TDX_HCALL_HAS_OUTPUT
ISSUE_STI = 2    # spec 9.1 TDX_HCALL_ISSUE_STI
IF = 1 << 9      # RFLAGS.IF
OPERAND_BUSY = 0x8000020000000000  # spec 2.2
INVALID_OPERAND = 0x8000000000000000  # spec 4.2

# Caller state preset before each call: callee-saved registers and the
# argument registers the stub must leave alone (spec 9.1 post-conditions).
CALLER = dict(rbx=0x3B3B_0000_0000_0003, rbp=0x5B5B_0000_0000_0005,
              rdx=0x2D2D_0000_0000_0002, r8=0x0808_0000_0000_0008,
              r9=0x0909_0000_0000_0009, r10=0x1010_0000_0000_0010,
              r11=0x1111_0000_0000_0011, r12=0x1212_0000_0000_0012,
              r13=0x1313_0000_0000_0013, r14=0x1414_0000_0000_0014,
              r15=0x1515_0000_0000_0015)
# Every exposed register rewritten by a hostile host.
MARKERS = {10: 0xBAD0_0000_0000_0A0A, 11: 0xBAD0_0000_0000_0B0B,
           12: 0xBAD0_0000_0000_0C0C, 13: 0xBAD0_0000_0000_0D0D,
           14: 0xBAD0_0000_0000_0E0E, 15: 0xBAD0_0000_0000_0F0F}


def struct(*fields: int) -> bytes:
    """struct tdx_hypercall_args: six u64 at offsets 0..40 (spec 9.1)."""
    return b"".join(f.to_bytes(8, "little") for f in fields)


def fields(td) -> list[int]:
    raw = td.read(ARGS, 48)
    return [int.from_bytes(raw[i:i + 8], "little") for i in range(0, 48, 8)]


@pytest.fixture
def td(probe):
    return probe().td


def hostile(host, exit):
    return VmResume(gprs=dict(MARKERS))


def test_returns_the_hosts_r10(td):
    """Spec 9.1: RAX = the VMM's R10 (GetTdVmCallInfo leaf 7 -> INVALID_OPERAND)."""
    td.write(ARGS, struct(0, 0x10000, 7, 0, 0, 0))
    assert td.call("__tdx_hypercall", ARGS, 0) == INVALID_OPERAND


def test_host_sees_struct_fields_in_r10_r15_only(td, recorder):
    """Spec 9.1: R10..R15 come from the struct; mask 0xFC00: RDI (the struct
    pointer) and everything else read as 0 in the VMM's view, except RAX =
    exit reason 77 and RCX = the exit qualification (spec 3.3)."""
    td.host.handlers[0x10000] = recorder
    td.write(ARGS, struct(0, 0x10000, 0xC12, 0xC13, 0xC14, 0xC15))
    td.call("__tdx_hypercall", ARGS, 0, regs=CALLER)
    [exit] = recorder.seen
    assert exit.gpr_select == 0xFC00 and exit.xmm_select == 0
    assert exit.gprs[10:] == (0, 0x10000, 0xC12, 0xC13, 0xC14, 0xC15)
    assert exit.gprs[:2] == (77, 0xFC00)
    assert exit.gprs[2:10] == (0,) * 8


def test_mask_recorded_is_0xfc00(td):
    """Spec 9.1: the mask is 0xFC00."""
    td.write(ARGS, struct(0, 0x10000, 0, 0, 0, 0))
    result = td.call_result("__tdx_hypercall", ARGS, 0)
    assert [r.gpr_select for r in result.exits] == [0xFC00]
    assert [r.xmm_select for r in result.exits] == [0]


def test_has_output_copies_r10_r15_back(td):
    """Spec 9.1: with HAS_OUTPUT the struct holds the VMM's R10..R15 (CPUID
    leaf 0x40000001 from a configured table)."""
    td.host.cpuid.set(0x4000_0001, 0, 0xA, 0xB, 0xC, 0xD)
    td.write(ARGS, struct(0, 10, 0x4000_0001, 0, 0, 0))
    assert td.call("__tdx_hypercall", ARGS, HAS_OUTPUT) == 0
    assert fields(td)[0] == 0
    assert fields(td)[2:] == [0xA, 0xB, 0xC, 0xD]


def test_without_has_output_struct_is_unchanged(td):
    """Spec 9.1: the args memory is unchanged unless HAS_OUTPUT is set."""
    td.host.handlers[10] = hostile
    before = struct(0, 10, 0x4000_0001, 0, 0, 0)
    td.write(ARGS, before)
    assert td.call("__tdx_hypercall", ARGS, 0) == MARKERS[10]
    assert td.read(ARGS, 48) == before


def test_hostile_host_return_value_and_struct(td):
    """Spec 9.1: with a host that writes every exposed register, the return
    value is still the VMM's R10 and (HAS_OUTPUT) the struct holds R10..R15."""
    td.host.handlers[10] = hostile
    td.write(ARGS, struct(0, 10, 0, 0, 0, 0))
    assert td.call("__tdx_hypercall", ARGS, HAS_OUTPUT, regs=CALLER) == MARKERS[10]
    assert fields(td) == [MARKERS[i] for i in range(10, 16)]


@pytest.mark.parametrize("flags", [0, HAS_OUTPUT])
def test_register_postconditions_after_hostile_host(td, flags):
    """Spec 9.1 post-conditions: RCX = 0xFC00; R10 = R11 = 0; R12-R15, RBX,
    RBP hold the caller's values; RDI, RSI, RDX, R8, R9 unchanged."""
    td.host.handlers[10] = hostile
    td.write(ARGS, struct(0, 10, 0, 0, 0, 0))
    td.call("__tdx_hypercall", ARGS, flags, regs=CALLER)
    g = td.gprs()
    assert g["rcx"] == 0xFC00
    assert g["r10"] == 0 and g["r11"] == 0
    for name in ("r12", "r13", "r14", "r15", "rbx", "rbp", "rdx", "r8", "r9"):
        assert g[name] == CALLER[name], name
    assert g["rdi"] == ARGS
    assert g["rsi"] == flags


def test_rsp_preserved(asm):
    """Spec 9.1: RSP holds the caller's value after the call."""
    td = asm("""
        .globl caller
    caller:
        mov     %rsp, rsp_before(%rip)
        call    __tdx_hypercall
        mov     %rsp, rsp_after(%rip)
        ret
        .data
        .globl rsp_before, rsp_after
    rsp_before: .quad 0
    rsp_after:  .quad 1
    """)
    td.host.handlers[10] = hostile
    td.write(ARGS, struct(0, 10, 0, 0, 0, 0))
    td.call("caller", ARGS, HAS_OUTPUT, regs=CALLER)
    assert td.read(td.symbol("rsp_before"), 8) == td.read(td.symbol("rsp_after"), 8)


def test_issue_sti_is_right_before_tdcall(td):
    """Spec 9.1 step 5 / 7.3 / B7: with ISSUE_STI the bytes at the TDCALL are
    exactly FB 66 0F 01 CC (STI directly precedes TDCALL), and RFLAGS.IF = 1
    after return."""
    td.write(ARGS, struct(0, 0x10000, 0, 0, 0, 0))
    assert td.vcpu.regs.rflags & IF == 0
    result = td.call_result("__tdx_hypercall", ARGS, ISSUE_STI)
    assert result.reason == "return", result.describe()
    [record] = result.exits
    assert td.read(record.rip - 1, 5) == bytes([0xFB, 0x66, 0x0F, 0x01, 0xCC])
    assert td.vcpu.regs.rflags & IF


def test_no_sti_without_the_flag(td):
    """Spec 9.1 step 5: without ISSUE_STI no STI precedes the TDCALL and IF
    stays 0."""
    td.write(ARGS, struct(0, 0x10000, 0, 0, 0, 0))
    result = td.call_result("__tdx_hypercall", ARGS, HAS_OUTPUT)
    [record] = result.exits
    assert td.read(record.rip, 4) == bytes([0x66, 0x0F, 0x01, 0xCC])
    assert td.read(record.rip - 1, 1) != bytes([0xFB])
    assert td.vcpu.regs.rflags & IF == 0


def test_module_failure_stops_on_ud2(td, recorder):
    """Spec 9.1 step 7 / B9: a nonzero TDCALL status (here OPERAND_BUSY from a
    replaced module leaf 0) never returns: the stub hits UD2.  The crash report
    shows ud2, disassembly and registers; the host is never reached and the
    struct is not written."""
    def busy_module(module, regs, time_ns):
        regs.set(0, 0x8000020000000000)  # RAX = OPERAND_BUSY
        regs.rip = regs.rip + 4
        return None

    td.module.handlers[0] = busy_module
    td.host.handlers[10] = recorder
    before = struct(0xAA, 10, 0, 0, 0, 0)
    td.write(ARGS, before)
    with pytest.raises(GuestStopped) as info:
        td.call("__tdx_hypercall", ARGS, HAS_OUTPUT)
    result = info.value.result
    assert result.reason == "crash"
    report = result.describe()
    assert "ud2" in report
    assert "=>" in report and "__tdx_hypercall" in report     # disassembly
    assert "rax=0x8000020000000000" in report                 # registers
    assert result.crash.gprs[0] == OPERAND_BUSY
    assert recorder.seen == []
    assert td.read(ARGS, 48) == before
