"""What one checker run observed: every TDCALL on the way in and out, the
TD exits the host saw and answered, and the state the routine left."""
from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from .. import abi
from ..exits import VmExit, VmResume
from ..eventlog import EventLog
from ..events import VmcallRecord
from ..result import RunResult
from .contracts import reg_name
from .scenario import Scenario
from .values import Layout, Values, lazy


@dataclass(slots=True)  # not frozen: that makes each of these ~1 us slower to build
class TdcallSeen:
    rip: int
    before: tuple[int, ...]  # GPRs at the TDCALL
    after: tuple[int, ...]  # GPRs right after it
    rflags: int
    ret_slot: int  # the return address slot at the TDCALL
    rbp_chain: bool  # RBP leads through the stub's frames to the caller's
    time_ns: int  # virtual time at the TDCALL, its own instruction counted
    insns: int  # instructions of the routine up to and including the TDCALL


NO_XMMS = (0,) * 16
XMM_SELECT = attrgetter("xmm_select")
RAX, VP_VMCALL = abi.RAX, int(abi.Leaf.VP_VMCALL)
VMM_GPR = tuple(f"the VMM's {reg_name(r)}" for r in range(16))
VMM_XMM = tuple(f"the VMM's XMM{j}" for j in range(16))


@dataclass
class Observation:
    scenario: Scenario
    values: Values
    layout: Layout
    result: RunResult
    tdcalls: list[TdcallSeen]
    served: list[VmExit]  # the exits Python's path gave the host, in order
    answers: list[VmResume]  # what the host answered to those
    compiled: bool  # the compiled path may have answered other exits (with values.answer)
    after: tuple[int, ...]  # GPRs at the end of the run
    rflags: int
    xmm_after: bytes
    struct_after: bytes
    frame_after: bytes  # entry RSP .. stack top: return address and caller's frame
    last_pc: int  # the last instruction started: the RET when the stub returned
    writes: list[tuple[int, int]]  # (rip, address) of stores after a TDCALL that hit
    # neither the stack nor the args struct
    escape: tuple[int, int] | None = None  # (value, slot) a RET popped to leave the code

    def __post_init__(self):
        # What nearly every judge reads, worked out once: cheaper than a lazy attribute each.
        self.returned: bool = self.result.reason == "return"
        # Each exit's native record as words (eventlog.RECORD), when the compiled
        # path recorded them all: enough for the fast path (quick.py) without
        # building `records`; None: read `records`.
        events = self.result.events
        self.exit_words: list[tuple[int, ...]] | None = \
            events.native_exits() if type(events) is EventLog else None
        # The host saw a TD exit: `bool(exits)` without building them.
        self.exited: bool = bool(self.served) if not self.compiled else bool(
            self.exit_words if self.exit_words is not None else self.records)
        self.vmcalls: list[TdcallSeen] = [t for t in self.tdcalls if t.before[RAX] == VP_VMCALL]
        # The last TDG.VP.VMCALL that reached the host and succeeded; the first one failed.
        done = failed = None
        for t in self.vmcalls:
            if t.after[RAX]:
                failed = t if failed is None else failed
            else:
                done = t
        self.exchange: TdcallSeen | None = done if done is not None and self.exited else None
        self.failure: TdcallSeen | None = failed

    @property
    def records(self) -> list[VmcallRecord]:
        """The module's record of each exit (built when first read)."""
        return self.result.exits

    @property
    def exits(self) -> list[VmExit]:
        """What the host saw, per TD exit."""
        return self.exchanges[0]

    @property
    def resumes(self) -> list[VmResume]:
        """What the host answered, per TD exit."""
        return self.exchanges[1]

    @lazy
    def exchanges(self) -> tuple[list[VmExit], list[VmResume]]:
        """Per TD exit, the exit and answer Python served, else the compiled
        path's marker answer to an exit without XMMs.  Built only when read:
        judges need them for XMM exits and in some failure messages."""
        if not self.compiled:
            return self.served, self.answers
        by_python = {e.time_ns: (e, r) for e, r in zip(self.served, self.answers)}
        exits, resumes = [], []
        for record in self.records:
            exit, resume = by_python.get(record.time_ns) or (
                VmExit(record.gpr_select, record.xmm_select, record.exposed, NO_XMMS,
                       record.time_ns), self.values.answer)
            exits.append(exit)
            resumes.append(resume)
        return exits, resumes

    @lazy
    def host_written(self) -> list[tuple[int, str]]:
        """Every value the guest took back from the host: only what the
        module let through counts."""
        taken = []
        for i, record in enumerate(self.records):
            taken += [(v, VMM_GPR[r]) for r, v in record.returned.items()]
            if record.xmm_select:
                xmms = self.resumes[i].xmms
                taken += [(v >> s & abi.MASK64, VMM_XMM[j]) for j, v in xmms.items()
                          if record.xmm_select >> j & 1 for s in (0, 64)]
        return taken

    @lazy
    def host_values(self) -> dict[int, str]:
        """The distinctive host-written values (and their 32-bit halves):
        finding one of them in a register proves where it came from.  None
        is below 0x10000 or a value the guest holds (see `host_value`)."""
        found: dict[int, str] = {}
        holds = self.values.holds
        for value, what in self.host_written:
            if value > 0xFFFF_FFFF and distinctive(value) and not holds(value) \
                    and value not in found:
                found[value] = what
                low = value & 0xFFFF_FFFF
                if distinctive(low) and not holds(low):
                    found.setdefault(low, what + " (low 32 bits)")
        return found

    def host_value(self, value: int) -> str | None:
        """`host_values.get(value)`, without building them for a value that
        cannot be one: the common case of a scrubbed or restored register."""
        v = self.values
        if value < 0x10000 or value in v.guest_known or value in v.fuzzed:  # v.holds, inline
            return None
        return self.host_values.get(value)

    def host_held(self, registers, values) -> list[tuple[int, str]]:
        """(register, whose) for each of these registers whose value in
        `values` is a host-written one: host_value per register, in one loop."""
        v = self.values
        known, fuzzed, found = v.guest_known, v.fuzzed, []
        for r in registers:
            value = values[r]
            if value >= 0x10000 and value not in known and value not in fuzzed:
                what = self.host_values.get(value)
                if what:
                    found.append((r, what))
        return found

    @property  # (not lazy: an attribute added to some observations slows every judge's reads)
    def xmm_exchanged(self) -> bool:
        return any(map(XMM_SELECT, self.records))


def distinctive(value: int) -> bool:
    """Whether finding a value proves it came from the host: not a small
    number, a small negative one, all-ones or a power of two, which guest
    code makes itself (zeroing, `mov $-1`, masks)."""
    return (0x10000 <= value <= abi.MASK64 - 0x10000 and value & (value - 1) != 0
            and value != 0xFFFF_FFFF)
