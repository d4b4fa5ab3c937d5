"""Memory flat in run length (issue 14 item 3): a run keeps counts of every
event and a ring of the last eventlog.RING; keep_exits keeps them all;
on_event and --trace-out see every event as it happens.  The expected
numbers come from the guest's own loop count."""
from __future__ import annotations

import json

import pytest

from tdxsim import TD
from tdxsim.bench_memory import exit_loop_source
from tdxsim.cli import main
from tdxsim.eventlog import RING

CALLS = RING + 5_000  # more than the ring holds, and more than one native buffer


def loop_guest(tmp_path, calls: int = CALLS):
    """`calls` KVM_HC_VAPIC_POLL_IRQ, then the debug-exit port: calls + 1 exits."""
    src = tmp_path / "loop.S"
    src.write_text(exit_loop_source(calls))
    return src


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    return loop_guest(tmp_path_factory.mktemp("loop"))


def test_default_run_keeps_the_last_ring_and_counts_every_exit(guest):
    full = TD.from_source(guest, library=False).run(keep_exits=True)
    result = TD.from_source(guest, library=False).run()
    assert result.reason == full.reason == "exit"
    assert len(full.events) == full.events.total == CALLS + 1
    assert len(result.events) == RING and result.events.total == CALLS + 1
    assert result.events.dropped == CALLS + 1 - RING
    assert result.counts == {"KVM_HC_VAPIC_POLL_IRQ": CALLS, "IO": 1} == full.counts
    assert result.exits[-1].name == "IO"
    assert list(result.events) == list(full.events)[-RING:]
    assert result.exits[-100:] == full.exits[-100:]


def test_on_event_sees_every_event_in_order(guest):
    td = TD.from_source(guest, library=False)
    seen = []
    result = td.run(on_event=seen.append)
    assert len(seen) == CALLS + 1 and seen[-RING:] == list(result.events)
    assert seen == list(TD.from_source(guest, library=False).run(keep_exits=True).events)


def test_a_short_run_keeps_everything(tmp_path):
    result = TD.from_source(loop_guest(tmp_path, 100), library=False).run()
    assert len(result.events) == result.events.total == 101 and result.events.dropped == 0


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
def test_trace_out_streams_every_event(guest, tmp_path, capsys, fmt):
    path = tmp_path / "trace.out"
    code = main(["run", str(guest), "--no-library", "--trace-out", str(path),
                 "--trace-format", fmt])
    capsys.readouterr()
    assert code == 0
    lines = path.read_text().splitlines()
    assert len(lines) == CALLS + 1
    assert "KVM_HC_VAPIC_POLL_IRQ" in lines[0] and "tdvmcall IO" in lines[-1]
    if fmt == "jsonl":
        assert [json.loads(lines[i])["seq"] for i in (0, -1)] == [0, CALLS]
