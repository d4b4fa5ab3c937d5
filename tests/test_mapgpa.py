"""MapGPA (R11 = 0x10001): KVM's algorithm (spec 6.3), the guest rules
(spec 4.4) and the guest library's retry loop (bug class B11)."""
from __future__ import annotations

import pytest

from tdxsim import VmResume
from tdxsim.errors import HostError
from tdxsim.events import MemoryConverted
from tdxsim.memory import Page

SUCCESS = 0x0000000000000000             # spec 4.2
RETRY = 0x0000000000000001
INVALID_OPERAND = 0x8000000000000000
ALIGN_ERROR = 0x8000000000000002
SUBFUNC_UNSUPPORTED = 0x8000000000000003
SHARED = 1 << 47                          # spec 1.3/4.4, GPAW 48
MiB = 1 << 20
BUF = 0x200000
WINDOW = 0xFFFF_8000_0000_0000            # tdxsim's shared window (README)
GIVE_UP = 0x0000000000000001              # tdx_map_gpa: retries ran out (= RETRY)
BAD_RESUME = 0xFFFFFFFFFFFFFFFE           # tdx_map_gpa: resume GPA outside the range

READ_SRC = """
        .text
        .globl  load
load:   mov     (%rdi), %rax
        ret
"""


def map_gpa(p, gpa, size, **regs):
    g = p.vmcall(r10=0, r11=0x10001, r12=gpa, r13=size, **regs).gprs
    return g["r10"], g["r11"]


def states(td, gpa, size):
    return {td.ram.state(a) for a in range(gpa, gpa + size, 0x1000)}


def test_private_to_shared_and_back(probe):
    p = probe()
    assert map_gpa(p, BUF | SHARED, 0x2000)[0] == SUCCESS
    assert states(p.td, BUF, 0x2000) == {Page.SHARED}
    assert map_gpa(p, BUF, 0x2000)[0] == SUCCESS
    assert states(p.td, BUF, 0x2000) == {Page.PENDING}  # spec 4.4: accept next


@pytest.mark.parametrize("gpa,size", [
    (BUF | SHARED, 0),                                  # size 0
    (0xFFFF_FFFF_FFFF_F000, 0x2000),                    # wraps around
    (1 << 48, 0x1000),                                  # first byte beyond GPAW 48
    ((1 << 48) - 0x1000, 0x2000),                       # last byte beyond GPAW 48
    (SHARED - 0x1000, 0x2000),                          # private first, shared last
    (BUF | 1, 0),                                       # invalid and unaligned: step 2 first
], ids=["size-0", "wrap", "first-beyond-gpaw", "last-beyond-gpaw", "mixed", "order"])
def test_range_checks_are_invalid_operand_with_r11_start(probe, gpa, size):
    """Spec 6.3 step 2: INVALID_OPERAND with R11 = R12, nothing converted."""
    p = probe()
    assert map_gpa(p, gpa, size) == (INVALID_OPERAND, gpa)
    assert not [e for e in p.td.events if isinstance(e, MemoryConverted)]


@pytest.mark.parametrize("gpa,size", [(BUF + 0x800 | SHARED, 0x1000), (BUF | SHARED, 0x800)],
                         ids=["gpa", "size"])
def test_unaligned_is_align_error_with_r11_start(probe, gpa, size):
    """Spec 6.3 step 3 (after the range checks): ALIGN_ERROR, R11 = R12."""
    p = probe()
    assert map_gpa(p, gpa, size) == (ALIGN_ERROR, gpa)
    assert states(p.td, BUF, 0x2000) == {Page.PRIVATE}


@pytest.mark.parametrize("host,status", [("kvm", SUBFUNC_UNSUPPORTED),
                                         ("kvm-legacy", INVALID_OPERAND)])
def test_exit_not_enabled(probe, host, status):
    """Spec 6.3 step 1: without the user-space exit, SUBFUNC_UNSUPPORTED
    (INVALID_OPERAND before 2025) with R11 = R12."""
    p = probe(host=host)
    p.td.host.map_gpa_exit = False
    assert map_gpa(p, BUF | SHARED, 0x1000) == (status, BUF | SHARED)


def test_pending_interrupt_gives_retry_after_one_2mib_step(probe):
    """Spec 6.3 steps 4-7: 2 MiB steps counted from R12 (not 2 MiB aligned);
    after each step a pending interrupt gives RETRY with R11 = next."""
    p = probe()
    p.td.lapic.post(0x30)  # pending; the probe runs with IF = 0
    start = BUF + 0x1000 | SHARED
    assert map_gpa(p, start, 6 * MiB) == (RETRY, start + 2 * MiB)
    assert states(p.td, BUF + 0x1000, 2 * MiB) == {Page.SHARED}
    assert states(p.td, BUF + 0x1000 + 2 * MiB, 4 * MiB) == {Page.PRIVATE}
    assert map_gpa(p, start + 2 * MiB, 4 * MiB) == (RETRY, start + 4 * MiB)
    assert map_gpa(p, start + 4 * MiB, 2 * MiB)[0] == SUCCESS


def test_without_pending_interrupt_the_whole_range_converts(probe):
    p = probe()
    assert map_gpa(p, BUF | SHARED, 6 * MiB)[0] == SUCCESS
    assert states(p.td, BUF, 6 * MiB) == {Page.SHARED}
    converted = [e for e in p.td.events if isinstance(e, MemoryConverted)]
    assert [(e.gpa, e.size) for e in converted] == [(BUF + i * 2 * MiB, 2 * MiB) for i in range(3)]


def test_already_private_page_keeps_its_contents(probe):
    p = probe()
    p.td.write(BUF, b"keep me")
    assert map_gpa(p, BUF, 0x1000)[0] == SUCCESS
    assert p.td.ram.state(BUF) == Page.PRIVATE and p.td.read(BUF, 7) == b"keep me"


def test_conversion_to_private_outside_ram_fails_with_r11_next(probe):
    """Spec 6.3 step 5: user space refuses -> INVALID_OPERAND, R11 = next;
    the steps before it stay converted."""
    p = probe(memory=16 * MiB)
    start = 16 * MiB - 3 * MiB  # the stack is in the last MiB; it stays private
    assert map_gpa(p, start | SHARED, 2 * MiB)[0] == SUCCESS
    assert map_gpa(p, start, 4 * MiB) == (INVALID_OPERAND, start + 2 * MiB)
    assert states(p.td, start, 2 * MiB) == {Page.PENDING}
    assert states(p.td, start + 2 * MiB, MiB) == {Page.PRIVATE}


def test_conversion_to_shared_outside_ram_is_ignored(probe):
    """QEMU ignores converting an unassigned (MMIO) region to shared."""
    assert map_gpa(probe(), 0xFEB00000 | SHARED, 0x1000)[0] == SUCCESS


def test_host_reads_a_page_only_after_mapgpa_and_finds_it_zeroed(asm):
    """The host cannot read a private page; after the guest's MapGPA it can,
    and the private contents are gone (the page reads as zeros), for the
    guest too."""
    td = asm(READ_SRC)
    td.write(BUF, b"private secret")
    with pytest.raises(HostError):
        td.host.memory.read(BUF | SHARED, 14)
    assert td.call("tdx_map_gpa", BUF, BUF + 0x1000, 1) == SUCCESS
    assert td.host.memory.read(BUF | SHARED, 14) == bytes(14)
    assert td.call("load", WINDOW + BUF) == 0
    td.host.memory.write(BUF, b"from the host")
    assert td.call("load", WINDOW + BUF).to_bytes(8, "little") == b"from the"
    assert td.call("tdx_map_gpa", BUF, BUF + 0x1000, 0) == SUCCESS
    assert td.read(BUF, 13) == bytes(13)  # shared contents discarded too
    with pytest.raises(HostError):
        td.host.memory.read(BUF, 8)


# --- the guest library's retry loop (spec 4.4, bug class B11) ---

def test_library_sets_the_shared_bit_on_start_and_end(probe):
    p = probe()
    result = p.td.call_result("tdx_map_gpa", BUF, BUF + 0x3000, 1)
    assert result.return_value == SUCCESS
    [record] = result.exits
    assert record.exposed[11:14] == (0x10001, BUF | SHARED, 0x3000)


def test_library_follows_real_retries_to_the_end(probe):
    """With an interrupt pending, KVM answers RETRY after every 2 MiB; the
    library resumes from R11 each time and finishes."""
    p = probe()
    p.td.lapic.post(0x30)
    result = p.td.call_result("tdx_map_gpa", BUF, BUF + 5 * MiB, 1)
    assert result.return_value == SUCCESS
    assert [r.exposed[12] for r in result.exits] == [BUF + i * 2 * MiB | SHARED for i in range(3)]
    assert states(p.td, BUF, 5 * MiB) == {Page.SHARED}


def scripted(p, answers):
    """A user host handler that answers MapGPA from a list of (R10, R11)."""
    seen = []

    def handler(host, exit):
        seen.append(exit.r12)
        status, r11 = answers[min(len(seen), len(answers)) - 1]
        return VmResume.status(status, r11=r11(exit) if callable(r11) else r11)

    p.td.host.handlers[0x10001] = handler
    return seen


def test_library_gives_up_after_three_retries_without_progress(probe):
    """Linux v6.7+: 3 retries without progress, then failure."""
    p = probe()
    seen = scripted(p, [(RETRY, lambda exit: exit.r12)])
    assert p.td.call("tdx_map_gpa", BUF, BUF + 0x4000, 1) == GIVE_UP
    assert seen == [BUF | SHARED] * 3


def test_library_progress_resets_the_retry_count(probe):
    p = probe()
    start = BUF | SHARED
    seen = scripted(p, [(RETRY, start), (RETRY, start), (RETRY, start + 0x1000),
                        (RETRY, start + 0x1000), (RETRY, start + 0x1000), (SUCCESS, 0)])
    assert p.td.call("tdx_map_gpa", BUF, BUF + 0x4000, 1) == SUCCESS
    assert seen == [start] * 3 + [start + 0x1000] * 3


@pytest.mark.parametrize("resume", [BUF + 0x4000 | SHARED, BUF - 0x1000 | SHARED, BUF, 0],
                         ids=["end", "below-start", "private-alias", "zero"])
def test_library_refuses_a_resume_gpa_outside_the_range(probe, resume):
    """Spec 4.4: R11 is untrusted and must satisfy start <= R11 < end."""
    p = probe()
    seen = scripted(p, [(RETRY, resume)])
    assert p.td.call("tdx_map_gpa", BUF, BUF + 0x4000, 1) == BAD_RESUME
    assert len(seen) == 1


def test_library_returns_the_hosts_error(probe):
    p = probe()
    scripted(p, [(ALIGN_ERROR, BUF)])
    assert p.td.call("tdx_map_gpa", BUF, BUF + 0x4000, 1) == ALIGN_ERROR


def test_library_scrubs_the_resume_gpa(probe):
    """No VMM value stays live in RCX, R10, R11 after the call (spec 3.5)."""
    p = probe()
    scripted(p, [(RETRY, 0xBAD0_0000_0000_0BAD)])
    p.td.call("tdx_map_gpa", BUF, BUF + 0x4000, 1)
    g = p.td.gprs()
    assert 0xBAD0_0000_0000_0BAD not in (g["rcx"], g["r10"], g["r11"])
