"""The interrupt-timing explorer: finds lost wakeups in a halt routine.

For a guest routine that halts (e.g. `tdx_safe_halt`), run it once per
instruction boundary with an interrupt becoming pending exactly there.  The
interrupt is the wakeup the routine must not miss: if it is delivered (and
consumed) before the HLT request reaches the host, the vCPU then sleeps with
nothing pending - a lost wakeup (spec 7.3).  Each run starts from a fresh TD
built from the same image, so runs are independent and deterministic.

With `waker=` ('ipi', 'send-ipi', 'kick') the wake-up comes from another
vCPU, as it does in an SMP guest: the TD has two vCPUs, vCPU 1 runs the
routine and vCPU 0 a stub that sends the wake-up through a TDVMCALL
(waker.py).  The scheduler gives vCPU 1 exactly k instructions, then
vCPU 0 its turn (it sends, then parks), then vCPU 1 the rest; the
interrupt is due at vCPU 1's boundary k, because vCPU 0's clock runs
WAKER_LEAD_NS behind.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import waker as waker_stub
from .events import Halted, InterruptDelivered, InterruptPosted, Scheduled
from .host import Host
from .result import RunResult
from .td import TD
from .vcpu.crash import disassemble
from .vcpu.interrupts import install_idt_stub

DEFAULT_VECTOR = 0xEC
WAKER_LEAD_NS = 10_000  # the halting vCPU's clock is ahead of the waker's by this


@dataclass(frozen=True)
class Injection:
    boundary: int  # instructions of the routine completed before the interrupt
    rip: int  # the next instruction at that boundary
    instruction: str
    outcome: str  # 'woke', 'lost-wakeup', 'halted-blocked', 'returned', or a run reason
    detail: str = ""


@dataclass
class ExploreReport:
    symbol: str
    boundaries: int
    injections: list[Injection] = field(default_factory=list)

    @property
    def lost_wakeups(self) -> list[Injection]:
        return [i for i in self.injections if i.outcome == "lost-wakeup"]

    def render(self) -> str:
        lines = [f"explored {self.symbol}: {len(self.injections)} injection points, "
                 f"{len(self.lost_wakeups)} lose the wakeup"]
        for inj in self.lost_wakeups:
            lines.append(f"  boundary {inj.boundary}: interrupt pending before "
                         f"{inj.instruction} -> {inj.detail}")
        return "\n".join(lines)


def _fresh(template: TD, vector: int, waker: str | None = None) -> TD:
    """A new TD like the template: its host personality and seed, and the
    handlers the user put in place of the host's own.  waker: two vCPUs,
    vCPU 0 at the waker stub, vCPU 1 on the engine for the routine."""
    model = template.host
    vcpus = 1 if waker is None else 2
    host = Host(model.personality, model.gpaw,
                model.adversary.seed if model.adversary is not None else None, vcpus=vcpus)
    host.handlers, host.kvm_handlers = dict(model.handlers), dict(model.kvm_handlers)
    td = TD(template.image, memory=template.memory, config=replace(template.config, vcpus=vcpus),
            host=host, ns_per_insn=template.ns_per_insn)
    if waker is not None:
        waker_stub.install(td, waker, vector)
        td.smp.enter(waker_stub.TARGET)
        td.smp.set_time(waker_stub.TARGET, td.now_ns() + WAKER_LEAD_NS)
    install_idt_stub(td.vcpu, vector)
    return td


def events_of(events, vcpu: int) -> list:
    """The events of one vCPU (the Scheduled markers say whose they are);
    all of them for a TD with one vCPU."""
    mine, current = [], 0
    for event in events:
        if isinstance(event, Scheduled):
            current = event.vcpu
        elif current == vcpu:
            mine.append(event)
    return mine


def _classify(result: RunResult, vector: int, vcpu: int = 0) -> tuple[str, str]:
    events = events_of(result.events, vcpu)
    if result.reason == "return":
        woke = any(isinstance(e, Halted) for e in events)
        return ("woke" if woke else "returned"), ""
    if result.reason == "halted":
        halts = [i for i, e in enumerate(events) if isinstance(e, Halted)]
        delivered = [i for i, e in enumerate(events)
                     if isinstance(e, InterruptDelivered) and e.vector == vector]
        if halts and halts[-1] > (delivered[0] if delivered else len(events)):
            return "lost-wakeup", ("delivered before the HLT TDCALL, which then "
                                   "sleeps with nothing pending")
        if halts and events[halts[-1]].irq_blocked:
            return "halted-blocked", "HLT with R12 != 0 ignores the pending interrupt"
    return result.reason, result.message.splitlines()[0] if result.message else ""


def explore_wakeups(template: TD, symbol: str, *args: int, vector: int = DEFAULT_VECTOR,
                    max_insns: int = 100_000, waker: str | None = None) -> ExploreReport:
    """Inject `vector` at every instruction boundary of `symbol` up to and
    including the boundary where its HLT TDCALL completes.  waker: another
    vCPU sends it, this way ('ipi', 'send-ipi', 'kick'; module doc)."""
    reference = _fresh(template, vector)
    start = reference.vcpu.instructions
    base = reference.call_result(symbol, *args, max_insns=max_insns)
    boundaries = base.instructions - start
    report = ExploreReport(symbol, boundaries)
    halter = 0 if waker is None else waker_stub.TARGET
    for k in range(boundaries + 1):
        td = _fresh(template, vector, waker)
        if waker is None:
            td.lapic.schedule(td.now_ns() + k * td.ns_per_insn, vector)
        else:
            td.smp.sched.plan([(halter, k * td.ns_per_insn), (1 - halter, None)])
        result = td.call_result(symbol, *args, max_insns=max_insns)
        posted = [e for e in events_of(result.events, halter) if isinstance(e, InterruptPosted)]
        rip = posted[0].rip if posted else td.symbol(symbol)
        if waker == "kick":  # no vector: where vCPU 1 was when vCPU 0 took over
            turns = [e for e in result.events if isinstance(e, Scheduled)]
            rip = turns[2].rip if len(turns) > 2 else rip
        outcome, detail = _classify(result, vector, halter)
        report.injections.append(Injection(k, rip, _insn_text(td, rip), outcome, detail))
    return report


def _insn_text(td: TD, rip: int) -> str:
    lines = disassemble(td.peek, td.image, rip, before=0, after=0)
    return lines[0].lstrip("=> ").strip() if lines else f"{rip:#x}"
