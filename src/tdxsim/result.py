"""How a run of the TD ended (`TD.run()`, `TD.call_result()`)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .errors import TdxsimError
from .eventlog import EventLog
from .events import VmcallRecord
from .exits import FatalError
from .vcpu.crash import CrashReport


@dataclass
class RunResult:
    """How a run ended.  reason: 'exit' (debug-exit port), 'return' (td.call
    returned), 'fatal' (ReportFatalError), 'crash', 'halted' (no wake event can
    come), 'budget' (instruction budget), 'timeout' (wall clock), 'error'
    (a host handler or an unmodelled feature), 'interrupted' (TD.interrupt(),
    e.g. on a signal)."""
    reason: str
    message: str = ""
    exit_code: int | None = None
    console: str = ""
    events: EventLog | list = field(default_factory=list)  # exits, interrupts, halts, timers
    instructions: int = 0
    time_ns: int = 0
    crash: CrashReport | None = None
    fatal: FatalError | None = None
    return_value: int | None = None
    _exits: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def counts(self) -> Counter:
        """Every event of the run, also those the ring dropped: TD exits by
        sub-function name, other events by type name (eventlog.py)."""
        if isinstance(self.events, EventLog):
            return self.events.counts
        log = EventLog(ring=None)
        for event in self.events:
            log.append(event)
        return log.counts

    @property
    def ok(self) -> bool:
        return self.reason in ("exit", "return") and not self.exit_code

    @property
    def exits(self) -> list[VmcallRecord]:
        """The TD exits among the events (kept while the events stay the same)."""
        if type(self.events) is EventLog:
            return self.events.exits()
        if self._exits is None or self._exits[0] != len(self.events):
            self._exits = (len(self.events),
                           [e for e in self.events if isinstance(e, VmcallRecord)])
        return self._exits[1]

    def describe(self) -> str:
        if self.crash is not None:
            return self.crash.render()
        return self.message


class GuestStopped(TdxsimError):
    """td.call() did not return: the guest crashed, exited or ran away."""

    def __init__(self, result: RunResult):
        super().__init__(result.describe())
        self.result = result
