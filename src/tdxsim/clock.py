"""The TD's one virtual clock.

Virtual time is the vCPU's retired instructions times `ns_per_insn`, plus
the time added without instructions: halted time (KVM blocks the vCPU until
the next timer, spec 7.4) and the cost charged for each TD exit to the host
(`exit_ns`; 0 unless the platform models the exit's latency, as the
firmware platform does).  The TSC runs at 1 GHz of virtual time, so one TSC
tick is one virtual nanosecond.

The state lives in one native struct (native.h `struct tdxsim_clock`) that
the compiled hooks read through `tdxsim_now_ns()`; Python reads the same
fields, so both paths see the same time at every instruction boundary.
Everything that tells time, the TD, the TDX module, the host and its
devices, the TSC MSR and RDTSC, asks this object.  Work due at a virtual
time (the host's delayed work, interrupts that arrive at a local APIC at a
given time) waits in its one queue, `events`.
"""
from __future__ import annotations

import ctypes
import heapq
import itertools
from typing import Callable

from . import native

MASK64 = (1 << 64) - 1  # the C clock's u64 arithmetic: a vCPU switch may wrap added_ns


class TimedEvents:
    """Actions due at virtual times, run in time order (ties in the order
    they were queued).  `owner` lets a party cancel its own entries.
    state: the clock's native struct, where the head's time is kept for the
    compiled path's deadlines (its next_event_ns)."""

    def __init__(self, state: native.Clock | None = None):
        self._heap: list[tuple[int, int, object, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._state = state
        self._head()

    def _head(self) -> None:
        if self._state is not None:
            heap = self._heap
            self._state.next_event_ns = min(max(heap[0][0], 0), native.NO_DEADLINE) \
                if heap else native.NO_DEADLINE

    def at(self, time_ns: int, action: Callable[[], None], owner: object = None) -> None:
        heapq.heappush(self._heap, (time_ns, next(self._seq), owner, action))
        self._head()

    def next_time(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def run_due(self, now: int) -> None:
        """Run every action due by `now` (also those queued meanwhile)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            heapq.heappop(heap)[3]()
            self._head()

    def cancel(self, owner: object) -> None:
        if not self._heap:  # (the checker cancels before every run, mostly nothing)
            return
        self._heap = [e for e in self._heap if e[2] is not owner]
        heapq.heapify(self._heap)
        self._head()


class Clock:
    def __init__(self, ns_per_insn: int = 1, exit_ns: int = 0):
        self.state = native.Clock()
        self.events = TimedEvents(self.state)
        self.ns_per_insn, self.exit_ns = ns_per_insn, exit_ns
        self._counter: native.Counter | None = None

    def set_rates(self, ns_per_insn: int, exit_ns: int) -> None:
        """How long an instruction and a TD exit take (the TD's options)."""
        self.ns_per_insn, self.exit_ns = ns_per_insn, exit_ns

    def count(self, counter: native.Counter) -> None:
        """Tick with this instruction counter (the vCPU's, vcpu/counter.py)."""
        self._counter = counter  # kept alive while C points to it
        self.state.counter = ctypes.pointer(counter)

    # --- reading ---
    def now(self) -> int:
        """Virtual nanoseconds since the TD was built (tdxsim_now_ns in C)."""
        state = self.state
        count = self._counter.count if self._counter is not None else 0
        return (count * state.ns_per_insn + state.added_ns) & MASK64  # u64, as in C

    @property
    def ns_per_insn(self) -> int:
        return self.state.ns_per_insn

    @ns_per_insn.setter
    def ns_per_insn(self, ns: int) -> None:
        if ns < 1:
            raise ValueError(f"ns_per_insn must be at least 1, not {ns}")
        self.state.ns_per_insn = ns

    @property
    def exit_ns(self) -> int:
        return self.state.exit_ns

    @exit_ns.setter
    def exit_ns(self, ns: int) -> None:
        self.state.exit_ns = ns

    def insns_until(self, deadline_ns: int) -> int:
        """Instructions to run before virtual time reaches deadline_ns (at least 1)."""
        return max(1, -(-(deadline_ns - self.now()) // self.state.ns_per_insn))

    # --- time that passes without instructions ---
    def advance(self, ns: int) -> None:
        """The vCPU spends ns without retiring instructions (halted)."""
        self.state.added_ns += ns

    def advance_to(self, deadline_ns: int) -> None:
        """Halted until deadline_ns (no change if it has passed)."""
        self.advance(max(0, deadline_ns - self.now()))

    def exit_to_host(self) -> None:
        """A TD exit to the host costs exit_ns (vmcall.c charges the same)."""
        self.state.added_ns += self.state.exit_ns
