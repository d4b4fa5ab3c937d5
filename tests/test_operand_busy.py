"""TDX_OPERAND_BUSY from TDG.MR.REPORT and TDG.MR.RTMR.EXTEND (spec 13.2).

Values: OPERAND_BUSY = 0x8000020000000000 | operand id (spec 2.2, 13.2); the
operand is OPERAND_ID_RTMR = 168, the TDCS RTMR lock both leaves take
(intel/tdx-module src/td_dispatcher/vm_exits/tdg_mr_report.c and
tdg_mr_rtmr_extend.c: the lock is taken after the operand checks;
include/auto_gen/tdx_error_codes_defs.h: OPERAND_ID_RTMR = 168).
"""
from __future__ import annotations

from tdxsim import Host

BUSY_RTMR = 0x8000_0200_0000_0000 | 168
OPERAND_INVALID = 0xC000_0100_0000_0000
REPORT, DATA, EXTEND = 0x300000, 0x301000, 0x302000


def report(p, r8=0):
    return p.tdcall(rax=4, rcx=REPORT, rdx=DATA, r8=r8).gprs["rax"]


def extend(p, index=0):
    return p.tdcall(rax=2, rcx=EXTEND, rdx=index).gprs["rax"]


def test_module_option_makes_report_busy_once(probe):
    p = probe()
    p.td.write(REPORT, b"\xAA" * 1024)
    p.td.module.rtmr_lock.held_for = 1
    assert report(p) == BUSY_RTMR
    assert p.td.read(REPORT, 1024) == b"\xAA" * 1024  # nothing written
    assert report(p) == 0


def test_module_option_makes_extend_busy_and_leaves_the_rtmr(probe):
    p = probe()
    p.td.module.rtmr_lock.held_for = 2
    assert extend(p) == BUSY_RTMR
    assert extend(p) == BUSY_RTMR
    assert report(p) == 0
    assert p.td.read(REPORT + 512 + 208, 48) == bytes(48)  # RTMR0 untouched


def test_operand_checks_come_before_the_lock(probe):
    """The module checks the operands first: a bad subtype / RTMR index is
    OPERAND_INVALID even while the lock is held, and does not consume it."""
    p = probe()
    p.td.module.rtmr_lock.held_for = 1
    assert report(p, r8=1) == OPERAND_INVALID | 8
    assert extend(p, index=4) == OPERAND_INVALID | 2
    assert extend(p) == BUSY_RTMR


def test_other_leaves_ignore_the_lock(probe):
    p = probe()
    p.td.module.rtmr_lock.held_for = 1
    assert p.tdcall(rax=1).gprs["rax"] == 0  # TDG.VP.INFO
    assert p.td.module.rtmr_lock.held_for == 1


def test_hostile_host_holds_the_lock_for_some_seeds(probe):
    """Deterministic per seed: the same seed gives the same answers."""
    def answers(seed):
        p = probe(host=Host("hostile", seed=seed))
        return [report(p) for _ in range(5)]
    seen = {status for seed in range(6) for status in answers(seed)}
    assert seen == {0, BUSY_RTMR}
    assert answers(3) == answers(3)
