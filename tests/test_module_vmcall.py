"""The TDX module model: TDCALL RAX decoding (spec 1.2), TDG.VP.INFO (1.3)
and the TDG.VP.VMCALL exposure rules (3.2-3.4), with real guest TDCALLs."""
from __future__ import annotations

import pytest

from conftest import GPRS, GUEST, GUEST_XMM, HOST, HOST_XMM
from tdxsim import TdConfig, VmResume

OPERAND_INVALID_RAX = 0xC000010000000000  # spec 2.2, operand id 0 (RAX)
OPERAND_INVALID_RCX = 0xC000010000000001  # spec 2.2 / 3.2, operand id 1 (RCX)
NO_SELECT = ("rax", "rcx", "rsp")  # spec 3.2: never selectable


def selected(mask: int, name: str) -> bool:
    return bool(mask >> GPRS.index(name) & 1)


def assert_rejected(p, after, rcx, calls):
    """Spec 3.2: RAX = OPERAND_INVALID(RCX), no TD exit, only RAX written,
    RIP past the 4-byte TDCALL."""
    assert after.gprs["rax"] == OPERAND_INVALID_RCX
    assert calls == [] and after.result.exits == []
    assert after.rip == p.tdcall_rip + 4
    assert after.gprs["rcx"] == rcx
    assert after.gprs["rsp"] == after.rsp_before
    for name, value in GUEST.items():
        assert after.gprs[name] == value, name


# --- 3.2 validation before any TD exit ---

@pytest.mark.parametrize("bit", [0, 1, 4], ids=["rax", "rcx", "rsp"])
def test_never_selectable_gpr_is_rejected(probe, recorder, bit):
    """Spec 3.2: GPR_SELECT bit 0 (RAX), 1 (RCX) or 4 (RSP) -> RAX =
    0xC000010000000001 without a TD exit; other GPRs unchanged; RIP + 4."""
    p = probe()
    p.intercept(recorder)
    rcx = 0xFC00 | 1 << bit
    after = p.tdcall(rax=0, rcx=rcx)
    assert_rejected(p, after, rcx, recorder.seen)


@pytest.mark.parametrize("rcx", [0xFC00 | 1 << 32, 0xFC00 | 1 << 63, 0xFFFF_FFFF_0000_FC00])
def test_reserved_rcx_bits_are_rejected(probe, recorder, rcx):
    """Spec 3.1/3.2: RCX[63:32] must be 0, else OPERAND_INVALID(RCX), no exit."""
    p = probe()
    p.intercept(recorder)
    after = p.tdcall(rax=0, rcx=rcx)
    assert_rejected(p, after, rcx, recorder.seen)


def test_rbp_is_rejected_under_no_rbp_mod(probe, recorder):
    """Spec 3.2: RBP (bit 5) selected while NO_RBP_MOD = 1 (tdxsim's default,
    as KVM creates TDs) -> OPERAND_INVALID(RCX), no TD exit.  Mask 0xFFEC is
    the old EDK2 mask that breaks under NO_RBP_MOD (spec 0.1, bug class B5)."""
    p = probe()
    p.intercept(recorder)
    after = p.tdcall(rax=0, rcx=0xFFEC)
    assert_rejected(p, after, 0xFFEC, recorder.seen)


def test_rbp_is_exchanged_without_no_rbp_mod(probe):
    """Spec 3.2-3.4: with NO_RBP_MOD = 0 RBP may be selected: the VMM sees
    the guest's RBP and the guest gets the VMM's RBP back."""
    p = probe(config=TdConfig(no_rbp_mod=False))
    seen = []

    def host(h, exit):
        seen.append(exit.gprs[5])
        return VmResume(gprs={5: 0xBAD0_0000_0000_5555, 10: 0})

    p.intercept(host)
    after = p.tdcall(rax=0, rcx=0xFC20)
    assert after.gprs["rax"] == 0
    assert seen == [GUEST["rbp"]]
    assert after.gprs["rbp"] == 0xBAD0_0000_0000_5555


# --- 3.3 what the VMM sees ---

@pytest.mark.parametrize("mask", [0xFC00, 0xFFCC, 0x0800, 0x4844, 0x0000, 0xFFCC | 0x0F0F << 16])
def test_host_sees_selected_gprs_and_zero_for_the_rest(probe, recorder, mask):
    """Spec 3.3: GPR i (2..15) selected -> the guest's value; unselected -> 0;
    RSP never exchanged; GPR_SELECT/XMM_SELECT reported as the qualification."""
    p = probe()
    p.intercept(recorder)
    after = p.tdcall(rax=0, rcx=mask)
    assert after.gprs["rax"] == 0
    [exit] = recorder.seen
    assert exit.gpr_select == mask & 0xFFFF
    assert exit.xmm_select == mask >> 16
    assert exit.gprs[4] == 0  # RSP
    assert exit.gprs[0] == 77  # RAX: VM exit reason TDCALL
    assert exit.gprs[1] == mask  # RCX: exit qualification (GPR_SELECT | XMM_SELECT << 16)
    for i, name in enumerate(GPRS):
        if name in NO_SELECT:
            continue
        expected = GUEST[name] if selected(mask, name) else 0
        assert exit.gprs[i] == expected, name


@pytest.mark.parametrize("xmm_select", [0x0000, 0x0001, 0x8421, 0xFFFF])
def test_xmm_selection_both_directions(probe, xmm_select):
    """Spec 3.3/3.4: XMM_SELECT bit j (RCX bit 16 + j) sends XMMj to the VMM
    (others read 0) and takes the VMM's XMMj back; unselected XMMs keep the
    guest's values."""
    p = probe()
    seen = []

    def host(h, exit):
        seen.append(exit.xmms)
        return VmResume(gprs={10: 0}, xmms=dict(enumerate(HOST_XMM)))

    p.intercept(host)
    result, xmms = p.xmm_tdcall(GUEST_XMM, rax=0, rcx=0xFC00 | xmm_select << 16)
    [exit_xmms] = seen
    for j in range(16):
        sel = xmm_select >> j & 1
        assert exit_xmms[j] == (GUEST_XMM[j] if sel else 0), f"xmm{j} seen by host"
        assert xmms[j] == (HOST_XMM[j] if sel else GUEST_XMM[j]), f"xmm{j} after resume"


# --- 3.4 what the guest gets back ---

@pytest.mark.parametrize("mask", [0xFC00, 0xFFCC, 0x0844, 0x0000])
def test_resume_takes_only_selected_gprs_from_a_hostile_host(probe, mask):
    """Spec 3.4: after a host that writes markers into all 16 GPR slots and
    all XMMs: RAX = 0, RCX = the control word, RSP unchanged, selected GPRs =
    the host's values, unselected = the guest's own, RIP = TDCALL + 4."""
    p = probe()

    def hostile(h, exit):
        return VmResume(gprs=dict(HOST), xmms=dict(enumerate(HOST_XMM)))

    p.intercept(hostile)
    after = p.tdcall(rax=0, rcx=mask)
    assert len(after.result.exits) == 1
    assert after.gprs["rax"] == 0
    assert after.gprs["rcx"] == mask
    assert after.gprs["rsp"] == after.rsp_before
    assert after.rip == p.tdcall_rip + 4
    for i, name in enumerate(GPRS):
        if name in NO_SELECT:
            continue
        expected = HOST[i] if selected(mask, name) else GUEST[name]
        assert after.gprs[name] == expected, name


def test_resume_keeps_unselected_xmms_from_a_hostile_host(probe):
    """Spec 3.4: a host writing every XMM changes only the selected ones."""
    p = probe()
    p.intercept(lambda h, exit: VmResume(gprs=dict(HOST), xmms=dict(enumerate(HOST_XMM))))
    _, xmms = p.xmm_tdcall(GUEST_XMM, rax=0, rcx=0x0002_FC00)  # XMM1 only
    assert xmms[1] == HOST_XMM[1]
    assert [x for j, x in enumerate(xmms) if j != 1] == \
        [x for j, x in enumerate(GUEST_XMM) if j != 1]


def test_rflags_unchanged_across_vmcall(probe):
    """Spec 3.4 (modelled as preserved): RFLAGS comes back unchanged."""
    p = probe()
    p.intercept(lambda h, exit: VmResume(gprs=dict(HOST)))
    p.td.vcpu.regs.rflags = 0x2 | 1 << 9 | 1 << 0  # IF and CF set
    after = p.tdcall(rax=0, rcx=0xFC00)
    assert after.rflags & (1 << 9 | 1) == (1 << 9 | 1)


def test_vmcall_record_rip_is_the_tdcall(probe, recorder):
    """Spec 1.1: the TDCALL is at the recorded RIP and the guest resumes at
    RIP + 4 (trap-like exit)."""
    p = probe()
    p.intercept(recorder)
    after = p.tdcall(rax=0, rcx=0xFC00)
    [record] = after.result.exits
    assert record.rip == p.tdcall_rip
    assert p.td.read(record.rip, 4) == bytes([0x66, 0x0F, 0x01, 0xCC])
    assert after.rip == record.rip + 4


# --- 1.2 RAX decoding ---

@pytest.mark.parametrize("rax", [1 << 24, 1 << 63, 0xFFFF_FFFF_FF00_0000, 1 << 40 | 1])
def test_reserved_rax_bits_are_rejected(probe, recorder, rax):
    """Spec 1.2: RAX[63:24] reserved -> OPERAND_INVALID(RAX), no TD exit,
    RIP past the TDCALL."""
    p = probe()
    p.intercept(recorder)
    after = p.tdcall(rax=rax, rcx=0xFC00)
    assert after.gprs["rax"] == OPERAND_INVALID_RAX
    assert recorder.seen == [] and after.result.exits == []
    assert after.rip == p.tdcall_rip + 4


@pytest.mark.parametrize("rax", [0x0001_0000, 0x00FF_0000, 0x0001_0001], ids=["vmcall-v1", "vmcall-v255", "info-v1"])
def test_nonzero_version_is_rejected(probe, recorder, rax):
    """Spec 1.2: a nonzero version (RAX[23:16]) is accepted only by VM.RD and
    VEINFO.GET; TDG.VP.VMCALL and TDG.VP.INFO -> OPERAND_INVALID(RAX)."""
    p = probe()
    p.intercept(recorder)
    after = p.tdcall(rax=rax, rcx=0xFC00)
    assert after.gprs["rax"] == OPERAND_INVALID_RAX
    assert recorder.seen == []
    assert after.rip == p.tdcall_rip + 4


@pytest.mark.parametrize("leaf", [0x7F, 0xFFFF, 13])
def test_unknown_leaf_is_a_status_and_execution_continues(probe, leaf):
    """Spec 1.2: an unknown leaf is OPERAND_INVALID(RAX) as a status (not #UD);
    execution continues after the TDCALL (the function returns normally)."""
    p = probe()
    result = p.td.call_result("ghci", regs={"rax": leaf})
    assert result.reason == "return", result.describe()
    assert result.return_value == OPERAND_INVALID_RAX
    assert result.exits == []


# --- 1.3 TDG.VP.INFO ---

def test_vp_info_defaults(probe):
    """Spec 1.3: TDG.VP.INFO -> RAX = 0, RCX[5:0] = GPAW (48 by default),
    R11 = 0; no TD exit."""
    p = probe()
    after = p.tdcall(rax=1, rcx=0)
    assert after.gprs["rax"] == 0
    assert after.gprs["rcx"] & 0x3F == 48
    assert after.gprs["r11"] == 0
    assert after.result.exits == []
    assert after.rip == p.tdcall_rip + 4


def test_vp_info_reports_td_configuration(probe):
    """Spec 1.3: RCX = GPAW, RDX = ATTRIBUTES, R8 = NUM_VCPUS[31:0] |
    MAX_VCPUS[63:32], R9 = VCPU_INDEX, R11 = 0."""
    p = probe(config=TdConfig(gpaw=52, attributes=0x1000_0000, vcpus=3, max_vcpus=8))
    p.td.module.select(2)  # vCPU 2 calls
    after = p.tdcall(rax=1, rcx=0)
    assert after.gprs["rax"] == 0
    assert after.gprs["rcx"] & 0x3F == 52
    assert after.gprs["rdx"] == 0x1000_0000
    assert after.gprs["r8"] == 0x0000_0008_0000_0003
    assert after.gprs["r9"] == 2
    assert after.gprs["r11"] == 0
