"""judge_all's fast path (check/quick.py) may only skip the judges on runs
where none of them finds a fault: over every stub of the checker's corpus,
good and defective, the check's own plan and fuzzed runs (with interrupts,
module failures and hostile answers), a run it calls clean gets no Finding
from any judge, and it calls the good stubs' ordinary runs clean."""
from __future__ import annotations

import pytest

from test_check import CASES, CORPUS
from tdxsim.check import Harness, load
from tdxsim.check.fuzz import boundaries, scenario
from tdxsim.check.properties import JUDGES, Finding
from tdxsim.check.quick import clean
from tdxsim.check.runner import plan
from tdxsim.toolchain import build


@pytest.mark.parametrize("stub,symbol,abi,expected", CASES)
def test_a_clean_run_has_no_finding(stub, symbol, abi, expected):
    c = load(abi)
    harness = Harness(build([CORPUS / stub], symbol, with_library=False), symbol, c)
    span = boundaries(harness)
    observed = list(plan(c, harness)) + [harness.run(scenario(c, 5, i, span)) for i in range(40)]
    cleared = 0
    for o in observed:
        if clean(c, o):
            cleared += 1
            assert not [f for judge in JUDGES if type(f := judge(c, o)) is Finding], o.scenario
    if not expected:
        assert cleared > len(observed) // 3  # the fast path is taken on a good stub's runs
