"""`--trace-out FILE --trace-format text|jsonl|chrome`: a run's events
written to disk one at a time, as they happen (TraceFile holds no list of
them, so a run of any length streams in constant memory).

- text: the lines `--trace` prints.
- jsonl: one JSON object per event: seq, type, its fields, and `text`, the
  same event's trace line.
- chrome: Chrome trace-event JSON (Perfetto UI, chrome://tracing,
  speedscope): a track per vCPU with slices for TD exits (named by
  sub-function), halts, #VE handling and interrupt handlers; instants for
  timer expiry, injection and the other events; a counter of pending
  interrupts.  Every event carries its trace line in args.trace, so the
  file holds everything the text trace holds.  Times are virtual: ts in
  microseconds, as the format wants.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from . import abi
from .errors import TdxsimError
from .events import Halted, InterruptDelivered, InterruptPosted, VeRaised, VmcallRecord, Woke
from .trace import Lines

FORMATS = ("text", "jsonl", "chrome")
PID = 1


def format_for(path: str, requested: str | None) -> str:
    """The format asked for, else the one the file name implies."""
    if requested:
        return requested
    return {".json": "chrome", ".jsonl": "jsonl"}.get(Path(path).suffix, "text")


def write(path: str, kind: str, events, end_ns: int) -> None:
    """Write a run's events, all at once (TraceFile streams them)."""
    trace = TraceFile(path, kind)
    for event in events:
        trace(event)
    trace.close(end_ns)


class TraceFile:
    """A trace file being written: call it with each event as it happens,
    then close(end_ns).  It holds only the file's buffer (and, for chrome,
    the open slices)."""

    def __init__(self, path: str, kind: str):
        self.path, self.written = path, 0
        try:
            self._out = open(path, "w", encoding="utf-8")
        except OSError as exc:
            raise self._error(exc) from None
        self._lines = Lines()
        self._format = {"text": _Text, "jsonl": _Jsonl, "chrome": _Chrome}[kind](self._out)

    def __call__(self, event) -> None:
        try:
            self._format.add(event, self._lines(event))
        except OSError as exc:
            raise self._error(exc) from None
        self.written += 1

    def close(self, end_ns: int) -> None:
        try:
            self._format.close(end_ns)
            self._out.close()
        except OSError as exc:
            raise self._error(exc) from None

    def _error(self, exc: OSError) -> TdxsimError:
        return TdxsimError(f"cannot write the trace to {self.path}: {exc.strerror or exc}")


class _Text:
    def __init__(self, out):
        self.out = out

    def add(self, event, line: str) -> None:
        self.out.write(line + "\n")

    def close(self, end_ns: int) -> None:
        pass


class _Jsonl(_Text):
    seq = 0

    def add(self, event, line: str) -> None:
        record = {"seq": self.seq, "type": type(event).__name__, **_fields(event), "text": line}
        self.out.write(json.dumps(record) + "\n")
        self.seq += 1


def _fields(event) -> dict:
    if isinstance(event, VmcallRecord):
        return {"time_ns": event.time_ns, "rip": event.rip, "name": event.name,
                "gpr_select": event.gpr_select, "xmm_select": event.xmm_select,
                "exposed": dict(zip(abi.GPR_NAMES, event.exposed)),
                "returned": {abi.GPR_NAMES[r]: v for r, v in event.returned.items()},
                "status": event.status,
                "action": type(event.action).__name__ if event.action is not None else None}
    return {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}


def _plain(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


class _Track:
    """One vCPU's track: open slices as a stack (B/E events nest)."""

    def __init__(self, emit, tid: int):
        self.emit, self.tid, self.open = emit, tid, []

    def begin(self, name: str, ts: float, cat: str, line: str) -> None:
        self.open.append(name)
        self.emit({"ph": "B", "name": name, "cat": cat, "ts": ts, "pid": PID, "tid": self.tid,
                   "args": {"trace": line}})

    def end_through(self, name: str, ts: float) -> None:
        """Close `name` (and whatever opened inside it), if it is open."""
        if name in self.open:
            while self.open:
                closed = self.open.pop()
                self.emit({"ph": "E", "ts": ts, "pid": PID, "tid": self.tid})
                if closed == name:
                    return

    def event(self, ph: str, name: str, ts: float, cat: str, line: str) -> None:
        extra = {"dur": 0} if ph == "X" else {"s": "t"}
        self.emit({"ph": ph, "name": name, "cat": cat, "ts": ts, "pid": PID, "tid": self.tid,
                   **extra, "args": {"trace": line}})


class _Chrome:
    def __init__(self, out):
        self.out, self.first = out, True
        self.tracks: dict[int, _Track] = {}
        self.pending: set[int] = set()
        self.ts, self.vcpu = 0.0, 0
        out.write('{"displayTimeUnit": "ns", "traceEvents": [\n')
        self.emit({"ph": "M", "name": "process_name", "pid": PID, "args": {"name": "tdxsim TD"}})

    def emit(self, record: dict) -> None:
        self.out.write(("" if self.first else ",\n") + json.dumps(record))
        self.first = False

    def add(self, event, line: str) -> None:
        tid = self.vcpu = getattr(event, "vcpu", self.vcpu)  # Scheduled: from here its vCPU's
        if tid not in self.tracks:
            self.emit({"ph": "M", "name": "thread_name", "pid": PID, "tid": tid,
                       "args": {"name": f"vCPU {tid}"}})
            self.tracks[tid] = _Track(self.emit, tid)
        self.ts = event.time_ns / 1000
        _chrome_event(self.tracks[tid], event, line, self.ts, self.pending, self.emit)

    def close(self, end_ns: int) -> None:
        for track in self.tracks.values():
            if track.open:
                track.end_through(track.open[0], max(self.ts, end_ns / 1000))
        self.out.write("\n]}\n")


_VE_NAMES = {20: "#VE handling", 8: "#DF (nested #VE)", 13: "#GP (nested #VE)"}


def _chrome_event(track: _Track, event, line: str, ts: float, pending: set, emit) -> None:
    if track.open and track.open[-1] in _VE_NAMES.values() and not isinstance(event, VmcallRecord):
        track.end_through(track.open[-1], ts)  # a #VE handled without a TD exit
    if isinstance(event, VmcallRecord):
        track.event("X", event.name, ts, "exit", line)
        if track.open and track.open[-1] in _VE_NAMES.values():
            track.end_through(track.open[-1], ts)  # the exit the #VE became
        if _is_eoi(event):
            track.end_through(_open_irq(track), ts)
    elif isinstance(event, Halted):
        track.end_through(_open_irq(track), ts)  # an EOI without a TD exit
        track.begin("halt", ts, "halt", line)
    elif isinstance(event, Woke):
        track.end_through("halt", ts)
        track.event("i", f"wakeup {event.vector:#x}", ts, "interrupt", line)
    elif isinstance(event, VeRaised):
        track.begin(_VE_NAMES.get(event.vector, "#VE"), ts, "ve", line)
    elif isinstance(event, InterruptDelivered):
        pending.discard(event.vector)
        _counter(emit, track.tid, ts, pending)
        name = f"irq {event.vector:#x} handler"
        track.end_through(name, ts)  # delivered again: the last one was EOIed
        track.begin(name, ts, "interrupt", line)
    elif isinstance(event, InterruptPosted):
        pending.add(event.vector)
        name = "timer expiry" if event.source == "timer" else event.source
        track.event("i", f"{name} {event.vector:#x}", ts, "interrupt", line)
        _counter(emit, track.tid, ts, pending)
    else:
        track.event("i", type(event).__name__, ts, "event", line)


def _open_irq(track: _Track) -> str | None:
    """The innermost open interrupt handler (its end is the EOI exit, else the
    next halt or delivery of the same vector)."""
    return next((n for n in reversed(track.open) if n.startswith("irq ")), None)


def _is_eoi(record: VmcallRecord) -> bool:
    g = record.exposed
    return (g[abi.R10] == 0 and g[abi.R11] == abi.SubFn.WRMSR
            and g[abi.R12] == abi.MSR_X2APIC_EOI)


def _counter(emit, tid: int, ts: float, pending: set) -> None:
    emit({"ph": "C", "name": "pending interrupts", "ts": ts, "pid": PID, "tid": tid,
          "args": {"pending": len(pending)}})
