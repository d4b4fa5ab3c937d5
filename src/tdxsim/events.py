"""The events of a run, for traces and the checkers: TD exits, interrupts,
halts, #VE.  Every event carries the virtual time at which it happened."""
from __future__ import annotations

from dataclasses import dataclass

from . import abi
from .exits import subfn_name


@dataclass(frozen=True)
class VmcallRecord:
    """One TD exit as the checker and traces see it (spec 3.6 step 6)."""
    time_ns: int
    rip: int
    gpr_select: int
    xmm_select: int
    exposed: tuple[int, ...]  # the host's view of the GPRs (spec 3.3)
    returned: dict[int, int]  # GPRs the guest took back from the host
    action: object = None

    @property
    def name(self) -> str:
        return subfn_name(self.exposed[abi.R10], self.exposed[abi.R11])

    @property
    def status(self) -> int | None:
        return self.returned.get(abi.R10)


_new = object.__new__


def vmcall_record(time_ns: int, rip: int, gpr_select: int, xmm_select: int,
                  exposed: tuple[int, ...], returned: dict[int, int],
                  action: object = None) -> VmcallRecord:
    """VmcallRecord(...) without the frozen dataclass's object.__setattr__
    per field (a third of the time): the event log builds one per exit of
    the compiled path when the log is read, the checker one per run."""
    record = _new(VmcallRecord)
    record.__dict__.update(time_ns=time_ns, rip=rip, gpr_select=gpr_select,
                           xmm_select=xmm_select, exposed=exposed, returned=returned,
                           action=action)
    return record


@dataclass(frozen=True)
class InterruptPosted:
    """An interrupt became pending: source 'timer' or 'injected'."""
    time_ns: int
    vector: int
    rip: int  # where the vCPU stood (the next instruction to execute)
    source: str


@dataclass(frozen=True)
class InterruptDelivered:
    """An external interrupt, or an NMI (vector 2), entered the guest's handler."""
    time_ns: int
    vector: int
    rip: int  # the interrupted instruction boundary
    handler: int
    handler_name: str = ""  # the handler's symbol, for traces


@dataclass(frozen=True)
class SoftwareInterrupt:
    """The guest executed `int n` (delivered through IDT[n], RIP past it)."""
    time_ns: int
    vector: int
    rip: int  # the instruction after the `int`


@dataclass(frozen=True)
class Halted:
    time_ns: int
    rip: int  # the HLT TDCALL
    irq_blocked: bool


@dataclass(frozen=True)
class Woke:
    time_ns: int
    vector: int | None  # None: a kick (KVM_HC_KICK_CPU), no vector
    slept_ns: int


@dataclass(frozen=True)
class Scheduled:
    """From here on the events are vCPU `vcpu`'s (a TD with several vCPUs
    switches between them, smp.py); rip is where it resumes."""
    time_ns: int
    vcpu: int
    rip: int


@dataclass(frozen=True)
class VeRaised:
    """The module raised #VE (or #DF/#GP for a nested one) at rip."""
    time_ns: int
    rip: int
    exit_reason: int
    vector: int
    info: object = None  # the VeInfo recorded (module/ve.py)


@dataclass(frozen=True)
class ExceptionInjected:
    """The module injected an exception for an intercepted instruction
    (e.g. #GP(0) for an MSR its policy refuses)."""
    time_ns: int
    rip: int
    vector: int
    error_code: int


@dataclass(frozen=True)
class MemoryConverted:
    """The host changed the private/shared state of a GPA range (MapGPA,
    KVM_HC_MAP_GPA_RANGE, or implicitly after an access through the other
    alias); ok is False when user space refused."""
    time_ns: int
    gpa: int
    size: int
    shared: bool
    ok: bool
    implicit: bool = False


@dataclass(frozen=True)
class QuoteCompleted:
    """The quote service finished a GetQuote request and wrote the header."""
    time_ns: int
    gpa: int
    status: int
    out_len: int
