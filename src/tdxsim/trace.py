"""Trace rendering: one line per TD exit, in the sub-function's own terms."""
from __future__ import annotations

from functools import lru_cache

from . import abi
from .abi import SubFn, VmcallStatus
from .events import (ExceptionInjected, Halted, InterruptDelivered, InterruptPosted,
                     MemoryConverted, QuoteCompleted, Scheduled, SoftwareInterrupt, VeRaised,
                     VmcallRecord, Woke)

_STATUS_NAMES = {v: k for k, v in vars(VmcallStatus).items() if k.isupper()}


def status_name(value: int | None) -> str:
    if value is None:
        return "(R10 not selected)"
    return _STATUS_NAMES.get(value, f"{value:#x}")


def _io(g: tuple[int, ...]) -> str:
    direction = {abi.IO_READ: "in", abi.IO_WRITE: "out"}.get(g[abi.R13], f"dir={g[abi.R13]}")
    text = f"{direction} port={g[abi.R14]:#x} size={g[abi.R12]}"
    return text + (f" data={g[abi.R15]:#x}" if g[abi.R13] == abi.IO_WRITE else "")


def _mmio(g: tuple[int, ...]) -> str:
    direction = {abi.MMIO_READ: "read", abi.MMIO_WRITE: "write"}.get(g[abi.R13], f"dir={g[abi.R13]}")
    text = f"{direction} gpa={g[abi.R14]:#x} size={g[abi.R12]}"
    return text + (f" data={g[abi.R15]:#x}" if g[abi.R13] == abi.MMIO_WRITE else "")


_ARGS = {
    SubFn.CPUID: lambda g: f"leaf={g[abi.R12]:#x} subleaf={g[abi.R13]:#x}",
    SubFn.HLT: lambda g: f"irq_blocked={g[abi.R12]}",
    SubFn.IO: _io,
    SubFn.RDMSR: lambda g: f"msr={g[abi.R12]:#x}",
    SubFn.WRMSR: lambda g: f"msr={g[abi.R12]:#x} value={g[abi.R13]:#x}",
    SubFn.MMIO: _mmio,
    SubFn.GET_TD_VM_CALL_INFO: lambda g: f"leaf={g[abi.R12]}",
    SubFn.MAP_GPA: lambda g: f"gpa={g[abi.R12]:#x} size={g[abi.R13]:#x}",
    SubFn.GET_QUOTE: lambda g: f"buffer={g[abi.R12]:#x} size={g[abi.R13]:#x}",
    SubFn.REPORT_FATAL_ERROR: lambda g: f"code={g[abi.R12]:#x}",
    SubFn.SETUP_EVENT_NOTIFY_INTERRUPT: lambda g: f"vector={g[abi.R12]:#x}",
}

_RESULTS = {
    SubFn.CPUID: (abi.R12, abi.R13, abi.R14, abi.R15),
    SubFn.IO: (abi.R11,),
    SubFn.RDMSR: (abi.R11,),
    SubFn.MMIO: (abi.R11,),
    SubFn.GET_TD_VM_CALL_INFO: (abi.R11,),
}


_EXIT_NAMES = {abi.EXIT_REASON_CPUID: "CPUID", abi.EXIT_REASON_HLT: "HLT", abi.EXIT_REASON_IO: "IO",
               abi.EXIT_REASON_MSR_READ: "RDMSR", abi.EXIT_REASON_MSR_WRITE: "WRMSR",
               abi.EXIT_REASON_EPT_VIOLATION: "EPT violation"}
_EPT_ACCESS = ((abi.EPT_QUAL_READ, "read"), (abi.EPT_QUAL_WRITE, "write"), (abi.EPT_QUAL_FETCH, "fetch"))


def _ve_info(info) -> str:
    """VE info as VEINFO.GET returns it (spec 8.2), with the I/O decoded."""
    name = _EXIT_NAMES.get(info.exit_reason, "exit reason")
    what = f"{name} ({info.exit_reason})"
    q = info.qualification
    if info.exit_reason == abi.EXIT_REASON_IO:
        what += (f" {'in' if q & abi.IO_QUAL_IN else 'out'}{'s' if q & abi.IO_QUAL_STRING else ''}"
                 f" port={q >> abi.IO_QUAL_PORT_SHIFT:#x} size={(q & 7) + 1}")
    elif info.exit_reason == abi.EXIT_REASON_EPT_VIOLATION:
        what += "".join(f" {name}" for bit, name in _EPT_ACCESS if q & bit)
        what += "" if q & abi.EPT_QUAL_TRANSLATED else " (page walk)"
    return (f"{what}: qual={q:#x} gla={info.gla:#x} gpa={info.gpa:#x} "
            f"len={info.instr_len} info={info.instr_info:#x}")


def render_all(events) -> list[str]:
    """One line per event (see rendered)."""
    return [line for _, line in rendered(events)]


def rendered(events):
    """(event, line) for each event, lazily (see Lines)."""
    lines = Lines()
    for event in events:
        yield event, lines(event)


class Lines:
    """Event -> trace line, one event at a time: the first TDVMCALL after a
    #VE is marked as the one the #VE handler turned the instruction into."""

    def __init__(self):
        self._ve = None
        self._vcpu = ""  # with several vCPUs, each line names its vCPU

    def __call__(self, event) -> str:
        line = render(event)
        if isinstance(event, Scheduled):
            self._vcpu = f"vcpu{event.vcpu} "
        if isinstance(event, VeRaised):
            self._ve = event
        elif isinstance(event, VmcallRecord) and self._ve is not None:
            line, self._ve = f"{line}  <- #VE at {self._ve.rip:#x}", None
        return self._vcpu + line


def render(event) -> str:
    """One line for any event of a run."""
    if isinstance(event, VmcallRecord):
        return render_vmcall(event)
    stamp = f"[{event.time_ns:>12} ns]"
    if isinstance(event, InterruptPosted):
        return (f"{stamp} {event.source:<8} vector {event.vector:#x} pending "
                f"(vCPU at rip={event.rip:#x})")
    if isinstance(event, InterruptDelivered):
        kind = "nmi      NMI (vector 2)" if event.vector == 2 else f"irq      vector {event.vector:#x}"
        name = f" ({event.handler_name})" if event.handler_name else ""
        return (f"{stamp} {kind} delivered at rip={event.rip:#x}"
                f" -> handler {event.handler:#x}{name}")
    if isinstance(event, SoftwareInterrupt):
        return f"{stamp} int      vector {event.vector:#x} by the guest (int n), returns to rip={event.rip:#x}"
    if isinstance(event, Halted):
        return f"{stamp} halt     vCPU halted at rip={event.rip:#x} (irq_blocked={int(event.irq_blocked)})"
    if isinstance(event, Woke):
        why = "kicked (KVM_HC_KICK_CPU)" if event.vector is None else \
            f"vector {event.vector:#x} pending"
        return f"{stamp} wakeup   {why}, slept {event.slept_ns} ns"
    if isinstance(event, Scheduled):
        return f"{stamp} sched    vCPU {event.vcpu} runs from rip={event.rip:#x}"
    if isinstance(event, MemoryConverted):
        state = "shared" if event.shared else "private (pending)"
        refused = "" if event.ok else " refused: not guest RAM"
        why = " (implicit: a guest access through the other alias)" if event.implicit else ""
        return f"{stamp} convert  GPA {event.gpa:#x} +{event.size:#x} to {state}{refused}{why}"
    if isinstance(event, QuoteCompleted):
        return (f"{stamp} quote    GetQuote buffer {event.gpa:#x} done: status "
                f"{event.status:#x}, out_len {event.out_len}")
    if isinstance(event, VeRaised):
        kind = {20: "#VE", 8: "#DF (nested #VE)", 13: "#GP (nested #VE)"}[event.vector]
        detail = _ve_info(event.info) if event.info else f"exit reason {event.exit_reason}"
        return f"{stamp} {kind:<8} at rip={event.rip:#x} {detail}"
    if isinstance(event, ExceptionInjected):
        return f"{stamp} fault    vector {event.vector} ({event.error_code:#x}) injected at rip={event.rip:#x}"
    return f"{stamp} {event}"


@lru_cache(maxsize=None)
def _selected(gpr_select: int) -> tuple[tuple[str, int], ...]:
    """R11-R15 as a generic exit's line shows them: those the guest selected."""
    return tuple((abi.GPR_NAMES[r], r) for r in range(abi.R11, abi.R15 + 1)
                 if gpr_select >> r & 1)


def render_vmcall(record: VmcallRecord) -> str:
    g = record.exposed
    if g[abi.R10] == 0 and g[abi.R11] in _ARGS:
        args = _ARGS[g[abi.R11]](g)
        outs = _RESULTS.get(g[abi.R11], ())
    else:
        args = " ".join([f"{name}={g[r]:#x}" for name, r in _selected(record.gpr_select)])
        outs = ()
    result = status_name(record.status)
    shown = [f"{abi.GPR_NAMES[r]}={record.returned[r]:#x}" for r in outs if r in record.returned]
    if shown and record.status == VmcallStatus.SUCCESS:
        result += " " + " ".join(shown)
    elif g[abi.R10] == 0 and g[abi.R11] == SubFn.MAP_GPA and abi.R11 in record.returned:
        result += f" r11={record.returned[abi.R11]:#x}"  # the resume GPA
    if record.action is not None:
        result += f" [{type(record.action).__name__}]"
    return (f"[{record.time_ns:>12} ns] tdvmcall {record.name:<22} {args} -> {result}"
            f"  (rcx={record.gpr_select | record.xmm_select << 16:#x} rip={record.rip:#x})")
