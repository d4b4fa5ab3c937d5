"""Which vCPU of a TD runs next, and until when: a deterministic scheduler
in virtual time, pure logic (no Unicorn, no TD).

Each vCPU has its own virtual time.  The runnable vCPU whose time is the
earliest runs next (the lowest index on a tie), for a quantum of virtual
time, so no vCPU gets more than a quantum ahead of another and their
interleaving follows virtual time, as vCPUs running in parallel would.
Quantum lengths are drawn from random.Random(seed) within +-jitter of the
base length: the same seed gives the same interleaving, another seed
another one (to expose races).  A halted vCPU consumes no quanta: it is a
candidate only at the time its wake-up may come (a timer), or once woken.
"""
from __future__ import annotations

import random

QUANTUM_NS = 100_000  # 100 us of virtual time: 100,000 instructions at 1 ns each
JITTER = 0.5


class Scheduler:
    def __init__(self, vcpus: int, seed: int = 0, quantum_ns: int = QUANTUM_NS,
                 jitter: float = JITTER):
        if quantum_ns < 1 or not 0 <= jitter < 1:
            raise ValueError(f"a quantum of {quantum_ns} ns with jitter {jitter} is not one")
        self.rng = random.Random(seed)
        self.quantum_ns, self.jitter = quantum_ns, jitter
        self.time = [0] * vcpus  # each vCPU's virtual time (ns)
        self.halted = [False] * vcpus
        self.wake_at: list[int | None] = [None] * vcpus  # a halted vCPU's next chance to wake
        self._yield_to: int | None = None
        self._plan: list[tuple[int, int | None]] = []  # turns given before the usual order

    def plan(self, turns: list[tuple[int, int | None]]) -> None:
        """Give these turns first, in order: (vCPU, length in ns; None: until
        it halts).  A tool places one vCPU's actions at an exact point of
        another's run this way (explore.py).  A turn of a vCPU halted with
        nothing to wake it is skipped."""
        self._plan = list(turns)

    def pick(self) -> int | None:
        """The vCPU to run (or to wake, if halted) next; None when every
        vCPU is halted with nothing that could wake it."""
        while self._plan and self.halted[self._plan[0][0]] and self.wake_at[self._plan[0][0]] is None:
            self._plan.pop(0)
        if self._plan:
            return self._plan[0][0]
        target, self._yield_to = self._yield_to, None
        if target is not None and not self.halted[target]:
            return target
        candidates = [(self.time[i], i) for i in range(len(self.time)) if not self.halted[i]]
        candidates += [(max(self.time[i], at), i) for i, at in enumerate(self.wake_at)
                       if self.halted[i] and at is not None]
        return min(candidates)[1] if candidates else None

    def planned(self, vcpu: int) -> bool:
        """Is vCPU `vcpu`'s next turn a planned one?"""
        return bool(self._plan) and self._plan[0][0] == vcpu

    def quantum_end(self, vcpu: int) -> int:
        """The virtual time at which vCPU `vcpu`'s next quantum ends."""
        if self._plan and self._plan[0][0] == vcpu:
            length = self._plan.pop(0)[1]
            return self.time[vcpu] + length if length is not None else 1 << 62
        spread = int(self.quantum_ns * self.jitter)
        length = self.quantum_ns + (self.rng.randint(-spread, spread) if spread else 0)
        return self.time[vcpu] + length

    def ran(self, vcpu: int, now_ns: int) -> None:
        """vCPU `vcpu` ran (or slept) until now_ns of its virtual time."""
        self.time[vcpu] = max(self.time[vcpu], now_ns)

    def halt(self, vcpu: int, wake_at: int | None) -> None:
        """vCPU `vcpu` halts; wake_at: when a timer may wake it (None: only
        another vCPU or the host can)."""
        self.halted[vcpu], self.wake_at[vcpu] = True, wake_at

    def wake(self, vcpu: int, now_ns: int) -> None:
        """vCPU `vcpu` is woken at now_ns (an IPI's send time, its timer):
        its halted time passes until then."""
        self.halted[vcpu], self.wake_at[vcpu] = False, None
        self.ran(vcpu, now_ns)

    def yield_to(self, vcpu: int) -> None:
        """The running vCPU gives the rest of its quantum to `vcpu`, which
        runs next if it is runnable (KVM's directed yield)."""
        self._yield_to = vcpu
