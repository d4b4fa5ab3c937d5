"""`tdxsim bench`'s per-sub-function loops measure served calls, not
errors: every loop's exit succeeds (the requests are valid by spec 4-7:
SUCCESS, 0 for the KVM hypercalls), with handlers replaced by Python
wrappers the exits are the same; --compare refuses what is not a bench
run."""
from __future__ import annotations

import pytest

from tdxsim import abi
from tdxsim.bench import _bench_td
from tdxsim.bench_exits import LOOPS, PENDING_VECTOR, VE_LOOP, replace_handlers, source
from tdxsim.cli import main
from tdxsim.events import VeRaised


def exits_of(td, i: int, count: int = 3):
    td.lapic.post(PENDING_VECTOR)
    result = td.call_result(f"loop_{i}", count)
    assert result.reason == "return", result.describe()
    return result.exits


@pytest.fixture(scope="module")
def tds():
    default, python = _bench_td(source()), _bench_td(source())
    replace_handlers(python.host)
    return default, python


@pytest.mark.parametrize("i", range(len(LOOPS)), ids=[name for name, *_ in LOOPS])
def test_each_loop_is_served(tds, i):
    default, python = tds
    name, r10, r11 = LOOPS[i][:3]
    exits = exits_of(default, i)
    assert len(exits) == 3
    assert all(e.exposed[abi.R10] == r10 and e.exposed[abi.R11] == r11 for e in exits)
    assert all(e.status == 0 for e in exits), name
    same = exits_of(python, i)
    assert [(e.exposed, e.returned) for e in same] == [(e.exposed, e.returned) for e in exits]


def test_compare_refuses_what_is_not_a_bench_run(tmp_path, capsys):
    bad = tmp_path / "old.json"
    bad.write_text("{]")
    assert main(["bench", "--compare", str(bad)]) == 2
    assert main(["bench", "--compare", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "not the output of `tdxsim bench --json`" in err and "cannot read" in err


def test_the_ve_loop_takes_the_guest_library_handler_each_round():
    """The #VE row times round trips, not errors: each `in` raises #VE
    (spec 8.1: IO, exit reason 30), the handler's VEINFO.GET and
    Instruction.IO (port 0x80: unclaimed, reads all ones) succeed, and the
    loop returns."""
    td = _bench_td(VE_LOOP)
    td.call("ve_setup")
    result = td.call_result("ve_loop", 3)
    assert result.reason == "return", result.describe()
    ves = [e for e in result.events if isinstance(e, VeRaised)]
    assert [(e.vector, e.exit_reason) for e in ves] == [(20, 30)] * 3
    assert [(e.exposed[abi.R11], e.exposed[abi.R14], e.status) for e in result.exits] \
        == [(abi.SubFn.IO, 0x80, 0)] * 3
