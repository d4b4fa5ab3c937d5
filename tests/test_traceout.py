"""--trace-out/--trace-format (issue 17 item 3): the text trace, JSON lines
and Chrome trace-event JSON of a run, checked for structure and against the
text trace of the same run."""
from __future__ import annotations

import json

import pytest

from tdxsim.cli import main

# Trace-event format: B/E slices, X complete events, i instants, C counters,
# M metadata (Chrome "Trace Event Format" document).
PHASES = {"B", "E", "X", "i", "C", "M"}


@pytest.fixture
def run(capsys, tmp_path):
    """run(guest, fmt, *argv) -> (exit code, stdout, path of the trace file)."""
    def invoke(guest, fmt, *argv, name="trace.out"):
        path = tmp_path / name
        code = main(["run", guest, "--trace-out", str(path), "--trace-format", fmt, *argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, path
    return invoke


def chrome(path) -> list[dict]:
    data = json.loads(path.read_text())
    assert data["displayTimeUnit"] == "ns"
    events = data["traceEvents"]
    for e in events:
        assert e["ph"] in PHASES and e["pid"] == 1
        if e["ph"] != "M":
            assert isinstance(e["ts"], (int, float)) and e["tid"] == 0
    return events


def check_nesting(events) -> None:
    """B/E balanced and nested, X inside its parent, times never go back."""
    stack, last = [], 0.0
    for e in events:
        if e["ph"] == "M":
            continue
        assert e["ts"] >= last
        last = e["ts"]
        if e["ph"] == "B":
            stack.append(e)
        elif e["ph"] == "E":
            assert stack, "E without B"
            stack.pop()
    assert not stack


def test_chrome_trace_of_quote_has_everything_the_text_trace_has(run):
    code, _, text_path = run("quote", "text")
    assert code == 0
    text = text_path.read_text().splitlines()
    code, _, path = run("quote", "chrome", name="quote.json")
    assert code == 0
    events = chrome(path)
    check_nesting(events)
    # every event of the text trace, in order, each exactly once
    assert [e["args"]["trace"] for e in events if "trace" in e.get("args", {})] == text
    names = {e["name"] for e in events if e["ph"] == "M"}
    assert names == {"process_name", "thread_name"}
    assert any(e["ph"] == "M" and e["args"]["name"] == "vCPU 0" for e in events)
    exits = [e["name"] for e in events if e["ph"] == "X"]
    for subfn in ("SETUP_EVENT_NOTIFY_INTERRUPT", "MAP_GPA", "GET_QUOTE", "HLT", "IO", "WRMSR"):
        assert subfn in exits
    slices = [e["name"] for e in events if e["ph"] == "B"]
    assert "halt" in slices and "irq 0x50 handler" in slices
    instants = [e["name"] for e in events if e["ph"] == "i"]
    assert "injected 0x50" in instants and "wakeup 0x50" in instants
    counts = [e["args"]["pending"] for e in events if e["ph"] == "C"]
    assert counts == [1, 0]  # the notify interrupt: posted, then delivered


def test_text_trace_file_is_the_trace_lines(run):
    code, out, path = run("quote", "text", "--trace")
    lines = path.read_text().splitlines()
    assert out.splitlines()[-len(lines):] == lines


def test_chrome_slices_for_ve_handling_and_timer_instants(run):
    code, _, path = run("legacy", "chrome", name="legacy.json")
    events = chrome(path)
    check_nesting(events)
    assert sum(e["ph"] == "B" and e["name"] == "#VE handling" for e in events) >= 3
    code, _, path = run("idle", "chrome", name="idle.json")
    events = chrome(path)
    check_nesting(events)
    assert sum(e["ph"] == "i" and e["name"].startswith("timer expiry") for e in events) == 5


def test_jsonl_one_object_per_event(run):
    code, _, text_path = run("legacy", "text")
    code, _, path = run("legacy", "jsonl", name="legacy.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert [r["text"] for r in records] == text_path.read_text().splitlines()
    kinds = {r["type"] for r in records}
    assert {"VmcallRecord", "VeRaised"} <= kinds
    ve = next(r for r in records if r["type"] == "VeRaised")
    assert ve["vector"] == 20 and isinstance(ve["time_ns"], int)  # #VE is vector 20 (spec 6)


def test_format_from_the_file_name(capsys, tmp_path):
    for name, first in (("t.json", "{"), ("t.jsonl", '{"seq": 0'), ("t.txt", "[")):
        assert main(["run", "demo", "--trace-out", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_text().startswith(first)


def test_unwritable_trace_file_is_exit_2(capsys, tmp_path):
    code = main(["run", "demo", "--trace-out", str(tmp_path / "missing" / "t.json")])
    out, err = capsys.readouterr()
    assert code == 2 and "cannot write the trace" in err and "Traceback" not in err
