"""The instruction counter behind virtual time: the C block hook and its
pure-Python fallback must give the same exact counts, at every stop."""
from __future__ import annotations

import pytest

from conftest import compiled
from tdxsim import TD
from tdxsim.image import bundled_guest
from tdxsim.trace import render

LOOP = """
        .globl  count10, fault_mid_block, budget
count10:                        # 1 + 3 * 3 + 1 = 11 instructions, the RET included
        mov     $3, %ecx
1:      nop
        dec     %ecx
        jnz     1b
        ret
fault_mid_block:                # the third instruction faults: two retire
        nop
        nop
        mov     (0), %rax
        nop
        ret
budget:
        nop
        jmp     budget
"""


@pytest.fixture(params=[pytest.param(True, marks=compiled), False],
                ids=["c-hook", "python-hook"])
def native(request):
    return request.param


def test_counts_are_exact(asm, native):
    td = asm(LOOP, native=native)
    assert td.vcpu.counter.native is native
    assert td.call_result("count10").instructions == 11


def test_the_last_instruction_of_a_call_is_its_ret(asm, native):
    """What the checker's reports point at when a routine returns."""
    td = asm(LOOP, native=native)
    td.call_result("count10")
    assert td.vcpu.counter.last_pc == td.symbol("count10") + 5 + 1 + 2 + 2  # the RET


def test_a_fault_inside_a_block_retires_only_what_precedes_it(asm, native):
    td = asm(LOOP, native=native)
    result = td.call_result("fault_mid_block")
    assert result.reason == "crash"
    assert result.instructions == 2


@pytest.mark.parametrize("budget", [1, 2, 7, 100])
def test_the_budget_stops_exactly(asm, native, budget):
    td = asm(LOOP, native=native)
    result = td.call_result("budget", max_insns=budget)
    assert result.reason == "budget" and result.instructions == budget


@compiled
def test_both_counters_give_the_same_idle_run():
    runs = [TD.from_source(bundled_guest("idle"), native=n).run() for n in (True, False)]
    assert [render(e) for e in runs[0].events] == [render(e) for e in runs[1].events]
    assert runs[0].instructions == runs[1].instructions
