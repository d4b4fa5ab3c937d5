"""TDG.MEM.PAGE.ACCEPT (leaf 6) and the guest library's tdx_accept_memory
(spec 1.3 leaf 6, 2.2, 4.4).

RCX = GPA | level (bits 2:0: 0 = 4K, 1 = 2M, 2 = 1G).  Statuses from spec
2.2; bits 31:0 carry the operand id (spec 2.1), which for ACCEPT's page
statuses is the SEPT level where the walk stopped (the module's
tdg_mem_page_accept.c): 0x00000B0A00000000 for a 4K page already accepted,
0xC0000B0B00000001 for a 2M request over 4K mappings.  Bad operands:
OPERAND_INVALID(RCX) = 0xC000010000000001.
"""
from __future__ import annotations

import pytest

from tdxsim import TdConfig
from tdxsim.events import MemoryConverted
from tdxsim.memory import Page

SUCCESS = 0
ALREADY_ACCEPTED = 0x0000_0B0A_0000_0000
SIZE_MISMATCH_2M = 0xC000_0B0B_0000_0001
INVALID_RCX = 0xC000_0100_0000_0001
BAD_RANGE = 0xFFFF_FFFF_FFFF_FFFF       # tdx_accept_memory: range not 4 KiB aligned
SHARED = 1 << 47
BUF = 0x200000                          # 2 MiB aligned
MiB = 1 << 20

LOAD_SRC = """
        .text
        .globl  load
load:   mov     (%rdi), %rax
        ret
"""


@pytest.fixture
def td(asm):
    return asm(LOAD_SRC)


def accept(td, rcx: int) -> int:
    """One raw TDG.MEM.PAGE.ACCEPT; returns RAX."""
    return td.call("__tdx_module_call", 6, rcx, 0, 0, 0, 0)


def make_pending(td, gpa: int, size: int) -> None:
    td.ram.convert(gpa, size, shared=True)
    td.ram.convert(gpa, size, shared=False)


def states(td, gpa: int, size: int) -> set:
    return {td.ram.state(a) for a in range(gpa, gpa + size, 0x1000)}


def test_mapgpa_round_trip_then_accept_makes_the_page_usable(td):
    """Spec 4.4: private -> shared -> private leaves the page pending; after
    the guest accepts it, it is private again and reads zero (the host's
    shared data is gone)."""
    td.write(BUF, b"private data")
    assert td.call("tdx_map_gpa", BUF, BUF + 0x1000, 1) == SUCCESS
    td.host.memory.write(BUF, b"host data")
    assert td.call("tdx_map_gpa", BUF, BUF + 0x1000, 0) == SUCCESS
    assert td.ram.state(BUF) == Page.PENDING
    assert td.call("tdx_accept_memory", BUF, BUF + 0x1000) == SUCCESS
    assert td.ram.state(BUF) == Page.PRIVATE
    assert td.call("load", BUF) == 0 and td.call("load", BUF + 8) == 0


def test_accept_zeroes_the_page_and_warns_the_second_time(td):
    make_pending(td, BUF, 0x1000)
    td.write(BUF + 0x800, b"stale")  # whatever the backing page held
    assert accept(td, BUF) == SUCCESS
    assert td.read(BUF + 0x800, 5) == bytes(5)
    assert accept(td, BUF) == ALREADY_ACCEPTED
    assert accept(td, BUF + 0x1000) == ALREADY_ACCEPTED  # accepted since TD build


def test_2m_over_4k_mappings_is_size_mismatch(td):
    """tdxsim's SEPT maps 4K pages (as KVM does): a 2M request stops at a
    non-leaf entry, pending or accepted alike; nothing changes."""
    make_pending(td, BUF, 2 * MiB)
    assert accept(td, BUF | 1) == SIZE_MISMATCH_2M
    assert states(td, BUF, 2 * MiB) == {Page.PENDING}
    assert accept(td, 4 * MiB | 1) == SIZE_MISMATCH_2M  # accepted RAM


@pytest.mark.parametrize("rcx", [
    BUF | 2,                    # 1G: the module takes 4K and 2M only
    0x4000_0000 | 2,            # ... even 1G-aligned
    BUF | 3, BUF | 7,           # no such level
    BUF | 0x8,                  # reserved bits 11:3
    BUF | 0x800,
    BUF + 0x1000 | 1,           # not 2M aligned
    BUF | 1 << 52,              # reserved bits 63:52
    BUF | 1 << 63,
    BUF | SHARED,               # a shared GPA
    BUF | 1 << 48,              # beyond GPAW 48
])
def test_bad_operands_are_operand_invalid_rcx(td, rcx):
    make_pending(td, BUF, 0x1000)
    assert accept(td, rcx) == INVALID_RCX
    assert td.ram.state(BUF) == Page.PENDING


def test_gpaw_52_moves_the_shared_bit(asm):
    td = asm(LOAD_SRC, config=TdConfig(gpaw=52))
    make_pending(td, BUF, 0x1000)
    assert accept(td, BUF | 1 << 51) == INVALID_RCX
    assert accept(td, BUF) == SUCCESS


# --- nothing mapped: an EPT-violation exit to the host (host/ept.py) ---

def implicit(result):
    return [(e.gpa, e.size, e.shared, e.ok) for e in result.events
            if isinstance(e, MemoryConverted) and e.implicit]


def test_accepting_a_shared_page_converts_it_first(td):
    """The module finds no private mapping and exits; KVM and QEMU convert
    the page to private (pending) and the TDCALL runs again: SUCCESS."""
    td.ram.convert(BUF, 0x1000, shared=True)
    td.host.memory.write(BUF, b"shared")
    result = td.call_result("__tdx_module_call", 6, BUF, 0, 0, 0, 0)
    assert result.return_value == SUCCESS
    assert implicit(result) == [(BUF, 0x1000, False, True)]
    assert td.ram.state(BUF) == Page.PRIVATE and td.read(BUF, 6) == bytes(6)


def test_2m_over_a_shared_range_maps_4k_then_mismatches(td):
    """KVM maps the faulting GPA at 4K, so the retried 2M accept meets a
    non-leaf entry."""
    td.ram.convert(BUF, 2 * MiB, shared=True)
    result = td.call_result("__tdx_module_call", 6, BUF | 1, 0, 0, 0, 0)
    assert result.return_value == SIZE_MISMATCH_2M
    assert implicit(result) == [(BUF, 0x1000, False, True)]
    assert td.ram.state(BUF) == Page.PENDING and td.ram.state(BUF + 0x1000) == Page.SHARED


def test_accepting_a_gpa_without_ram_stops_the_td(asm):
    td = asm(LOAD_SRC, memory=16 * MiB)
    result = td.call_result("__tdx_module_call", 6, 16 * MiB, 0, 0, 0, 0)
    assert result.reason == "crash"
    assert "TDG.MEM.PAGE.ACCEPT" in result.message and "GPA 0x1000000" in result.message


# --- tdx_accept_memory: 1G, then 2M, then 4K, as Linux ---

def spy(td) -> list[int]:
    """Record RCX of every TDG.MEM.PAGE.ACCEPT; the module still serves it."""
    seen, serve = [], td.module.handlers[6]

    def record(module, regs, time_ns):
        seen.append(regs.get(1))
        return serve(module, regs, time_ns)

    td.module.handlers[6] = record
    return seen


def test_library_falls_back_from_2m_to_4k(td):
    make_pending(td, BUF, 2 * MiB + 0x2000)
    seen = spy(td)
    assert td.call("tdx_accept_memory", BUF, BUF + 2 * MiB + 0x2000) == SUCCESS
    assert seen == [BUF | 1] + [BUF + i * 0x1000 for i in range(514)]
    assert states(td, BUF, 2 * MiB + 0x2000) == {Page.PRIVATE}


def test_library_tries_1g_first_and_a_warning_is_a_failure(asm):
    """A 1G-aligned range of at least 1 GiB: 1G (OPERAND_INVALID), 2M
    (SIZE_MISMATCH), 4K; the first page is accepted already, and like Linux
    the library gives up on that warning."""
    td = asm(LOAD_SRC, memory=2 << 30)
    seen = spy(td)
    assert td.call("tdx_accept_memory", 1 << 30, 2 << 30) == ALREADY_ACCEPTED
    assert seen == [0x4000_0002, 0x4000_0001, 0x4000_0000]


def test_library_stops_at_the_first_failing_page(td):
    make_pending(td, BUF, 0x2000)
    assert td.call("tdx_accept_memory", BUF, BUF + 0x3000) == ALREADY_ACCEPTED
    assert states(td, BUF, 0x2000) == {Page.PRIVATE}


@pytest.mark.parametrize("start,end", [(BUF + 0x800, BUF + 0x1800), (BUF, BUF + 0x1800)])
def test_library_refuses_an_unaligned_range(td, start, end):
    make_pending(td, BUF, 0x2000)
    assert td.call("tdx_accept_memory", start, end) == BAD_RANGE
