"""The interrupt-timing explorer: finds lost wakeups in a halt routine.

For a guest routine that halts (e.g. `tdx_safe_halt`), run it once per
instruction boundary with an interrupt becoming pending exactly there.  The
interrupt is the wakeup the routine must not miss: if it is delivered (and
consumed) before the HLT request reaches the host, the vCPU then sleeps with
nothing pending - a lost wakeup (spec 7.3).  Each run starts from a fresh TD
built from the same image, so runs are independent and deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .events import Halted, InterruptDelivered, InterruptPosted
from .host import Host
from .result import RunResult
from .td import TD
from .vcpu.crash import disassemble
from .vcpu.interrupts import install_idt_stub

DEFAULT_VECTOR = 0xEC


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


def _fresh(template: TD, vector: int) -> TD:
    """A new TD like the template: its host personality and seed, and the
    handlers the user put in place of the host's own."""
    model = template.host
    host = Host(model.personality, model.gpaw,
                model.adversary.seed if model.adversary is not None else None)
    host.handlers, host.kvm_handlers = dict(model.handlers), dict(model.kvm_handlers)
    td = TD(template.image, memory=template.memory, config=template.config, host=host,
            ns_per_insn=template.ns_per_insn)
    install_idt_stub(td.vcpu, vector)
    return td


def _classify(result: RunResult, vector: int) -> tuple[str, str]:
    if result.reason == "return":
        woke = any(isinstance(e, Halted) for e in result.events)
        return ("woke" if woke else "returned"), ""
    if result.reason == "halted":
        halts = [i for i, e in enumerate(result.events) if isinstance(e, Halted)]
        delivered = [i for i, e in enumerate(result.events)
                     if isinstance(e, InterruptDelivered) and e.vector == vector]
        if halts and halts[-1] > (delivered[0] if delivered else len(result.events)):
            return "lost-wakeup", ("delivered before the HLT TDCALL, which then "
                                   "sleeps with nothing pending")
        if halts and result.events[halts[-1]].irq_blocked:
            return "halted-blocked", "HLT with R12 != 0 ignores the pending interrupt"
    return result.reason, result.message.splitlines()[0] if result.message else ""


def explore_wakeups(template: TD, symbol: str, *args: int, vector: int = DEFAULT_VECTOR,
                    max_insns: int = 100_000) -> ExploreReport:
    """Inject `vector` at every instruction boundary of `symbol` up to and
    including the boundary where its HLT TDCALL completes."""
    reference = _fresh(template, vector)
    start = reference.vcpu.instructions
    base = reference.call_result(symbol, *args, max_insns=max_insns)
    boundaries = base.instructions - start
    report = ExploreReport(symbol, boundaries)
    for k in range(boundaries + 1):
        td = _fresh(template, vector)
        td.lapic.schedule(td.now_ns() + k * td.ns_per_insn, vector)
        result = td.call_result(symbol, *args, max_insns=max_insns)
        posted = [e for e in result.events if isinstance(e, InterruptPosted)]
        rip = posted[0].rip if posted else td.symbol(symbol)
        outcome, detail = _classify(result, vector)
        report.injections.append(Injection(k, rip, _insn_text(td, rip), outcome, detail))
    return report


def _insn_text(td: TD, rip: int) -> str:
    lines = disassemble(td.peek, td.image, rip, before=0, after=0)
    return lines[0].lstrip("=> ").strip() if lines else f"{rip:#x}"
