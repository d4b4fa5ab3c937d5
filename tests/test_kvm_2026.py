"""The `kvm` personality as of 2026 and `kvm-legacy` (spec 13.1, 4.7, 6.3).

Expected values are the spec's: GetTdVmCallInfo leaf 1 bit 1 =
SetupEventNotifyInterrupt, bit 0 = GetQuote on pre-2025 hosts only; MapGPA
RETRY with R11 = the next GPA when user space refuses a step with EAGAIN,
possibly with no progress; Linux's guest gives up after 3 retries without
progress (spec 4.4).
"""
from __future__ import annotations

import pytest

from tdxsim import Host
from tdxsim.memory import Page

SUCCESS, RETRY = 0x0, 0x1                 # spec 4.2
INVALID_OPERAND = 0x8000000000000000
SUBFUNC_UNSUPPORTED = 0x8000000000000003
SHARED = 1 << 47                          # spec 1.3, GPAW 48
MiB = 1 << 20
BUF = 0x200000
GIVE_UP = 0x1                             # tdx_map_gpa: retries ran out (README)


def info_leaf1(p):
    g = p.vmcall(r10=0, r11=0x10000, r12=1, r13=0x5555, r14=0x6666).gprs
    return g["r10"], g["r11"], g["r12"], g["r13"], g["r14"]


@pytest.mark.parametrize("host,bitmap", [("kvm", 0b10), ("kvm-legacy", 0b11)])
def test_get_td_vm_call_info_leaf1_per_personality(probe, host, bitmap):
    """Spec 13.1: current KVM/QEMU answer bit 1 only; kvm-legacy bit 0 too."""
    assert info_leaf1(probe(host=host)) == (SUCCESS, bitmap, 0, 0, 0)


def test_library_wrapper_reads_bit1_only(probe):
    """tdx_get_td_vm_call_info(1, out) against the default (current) host."""
    p = probe()
    out = p.td.symbol("xmm_in")
    assert p.td.call("tdx_get_td_vm_call_info", 1, out) == SUCCESS
    assert int.from_bytes(p.td.read(out, 8), "little") == 0b10


@pytest.mark.parametrize("vector,status", [(31, INVALID_OPERAND), (32, SUCCESS),
                                           (255, SUCCESS), (256, INVALID_OPERAND)])
def test_setup_event_notify_interrupt_range(probe, vector, status):
    """Spec 13.1: KVM checks 32 <= vector <= 255 before user space records it."""
    p = probe()
    assert p.vmcall(r10=0, r11=0x10004, r12=vector).gprs["r10"] == status
    assert p.td.host.notify_vector == (vector if status == SUCCESS else None)


def test_mapgpa_eagain_on_the_first_step_is_retry_without_progress(probe):
    """Spec 13.1: user space refuses the first step -> RETRY, R11 = R12."""
    p = probe()
    p.td.host.map_gpa_eagain = lambda gpa, size: True
    g = p.vmcall(r10=0, r11=0x10001, r12=BUF | SHARED, r13=0x4000).gprs
    assert (g["r10"], g["r11"]) == (RETRY, BUF | SHARED)
    assert {p.td.ram.state(a) for a in range(BUF, BUF + 0x4000, 0x1000)} == {Page.PRIVATE}


def test_mapgpa_eagain_mid_range_is_retry_with_the_next_gpa(probe):
    """Spec 6.3 + 13.1: the first 2 MiB step converts, the second is refused."""
    p = probe()
    p.td.host.map_gpa_eagain = lambda gpa, size: gpa >= BUF + 2 * MiB
    g = p.vmcall(r10=0, r11=0x10001, r12=BUF | SHARED, r13=3 * MiB).gprs
    assert (g["r10"], g["r11"]) == (RETRY, BUF + 2 * MiB | SHARED)
    assert p.td.ram.state(BUF) == Page.SHARED
    assert p.td.ram.state(BUF + 2 * MiB) == Page.PRIVATE


def test_library_gives_up_after_three_tries_without_progress(probe):
    """Spec 4.4 (Linux v6.7+): 3 calls without progress, then the library's
    documented result 1 (RETRY: retries ran out)."""
    p = probe()
    asked = []
    p.td.host.map_gpa_eagain = lambda gpa, size: asked.append(gpa) or True
    result = p.td.call_result("tdx_map_gpa", BUF, BUF + 0x4000, 1)
    assert result.reason == "return" and result.return_value == GIVE_UP
    assert [r.exposed[12] for r in result.exits] == [BUF | SHARED] * 3
    assert asked == [BUF] * 3


def test_library_finishes_when_user_space_refuses_each_step_once(probe):
    """Every step refused once: progress each time, so the library resumes
    from R11 and completes the whole range."""
    p = probe()
    refused = set()

    def eagain(gpa, size):
        first = gpa not in refused
        refused.add(gpa)
        return first
    p.td.host.map_gpa_eagain = eagain
    assert p.td.call("tdx_map_gpa", BUF, BUF + 5 * MiB, 1) == SUCCESS
    assert {p.td.ram.state(a) for a in range(BUF, BUF + 5 * MiB, 0x1000)} == {Page.SHARED}


def test_hostile_host_lies_retry_without_progress(probe):
    """The hostile host answers MapGPA with RETRY and R11 = R12 for some
    seed; the library never loops more than 3 times on it."""
    for seed in range(60):
        p = probe(host=Host("hostile", seed=seed))
        result = p.td.call_result("tdx_map_gpa", BUF, BUF + 0x4000, 1)
        exits = result.exits
        if len(exits) == 3 and all(r.returned.get(10) == RETRY and r.returned.get(11) == BUF | SHARED
                                   for r in exits):
            assert result.return_value == GIVE_UP
            return
    pytest.fail("no seed in 0..59 made the hostile host stall MapGPA three times")
