"""The interrupt adversary's explorer mode (spec 13.1, 13.4 B14): run a guest
routine once per (instruction boundary, vector), with that vector made
pending exactly there, as a TDX host can do with any vector 32-255 and with
NMIs (never an exception 0-31).

A delivery is a finding when the handler it reaches is not one the guest
registered for external interrupts (`allowed`): the Heckler pattern, an
`int 0x80` gate reached from outside.  A vector whose IDT entry is missing
crashes the run, which is a finding too.  Each run starts from a fresh TD
built from the same image, so runs are independent and deterministic.

    report = explore_interrupts(td, "my_routine", vectors=[0x80], nmi=True)
    print(report.render())
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from . import abi
from .events import InterruptDelivered
from .host import Host
from .td import TD

# The guest library's gates that expect external interrupts (irq.S).
LIBRARY_GATES = frozenset({"tdx_spurious_entry", "tdx_nmi_entry", "tdx_int80_entry"})


@dataclass(frozen=True)
class Delivery:
    boundary: int  # instructions of the routine completed before the vector became pending
    vector: int  # 2 = NMI
    handler: str  # the handler's symbol ('' when the run crashed on the way)
    outcome: str  # the run's reason ('return', 'crash', ...)
    detail: str = ""


@dataclass
class InterruptReport:
    symbol: str
    boundaries: int
    allowed: frozenset[str]
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def findings(self) -> list[Delivery]:
        """Handlers reached from outside that were not registered for it,
        and runs the injection crashed."""
        return [d for d in self.deliveries
                if d.outcome == "crash" or (d.handler and d.handler not in self.allowed)]

    def render(self) -> str:
        lines = [f"explored {self.symbol}: {self.boundaries + 1} boundaries, "
                 f"{len(self.deliveries)} injections, {len(self.findings)} findings"]
        for d in self.findings:
            what = "an NMI" if d.vector == abi.NMI_VECTOR else f"vector {d.vector:#x}"
            if d.outcome == "crash":
                lines.append(f"  boundary {d.boundary}: {what} crashed the guest: {d.detail}")
            else:
                lines.append(f"  boundary {d.boundary}: {what} reached {d.handler} from outside")
        return "\n".join(lines)


def _fresh(template: TD) -> TD:
    """A TD like the template: its image, configuration and host's handlers
    (the adversary's own injections stay out: this explorer is the adversary)."""
    model = template.host
    host = Host("kvm-legacy" if model.personality == "kvm-legacy" else "kvm", model.gpaw)
    host.handlers, host.kvm_handlers = dict(model.handlers), dict(model.kvm_handlers)
    return TD(template.image, memory=template.memory, config=template.config, host=host,
              ns_per_insn=template.ns_per_insn)


def explore_interrupts(template: TD, symbol: str, *args: int, setup: str | None = None,
                       vectors: Iterable[int] = (abi.INT80_VECTOR,), nmi: bool = True,
                       allowed: Iterable[str] = LIBRARY_GATES,
                       max_insns: int = 100_000) -> InterruptReport:
    """Inject each of `vectors` (32-255) and, with nmi, an NMI at every
    instruction boundary of `symbol` (called with args after `setup`, a
    routine that installs the guest's IDT, has run)."""
    chosen = sorted(set(vectors))
    if any(v not in abi.EXTERNAL_VECTORS for v in chosen):
        raise ValueError("a TDX host can inject vectors 32-255 and NMIs only (spec 13.1)")
    chosen += [abi.NMI_VECTOR] if nmi else []

    def prepared() -> TD:
        td = _fresh(template)
        if setup is not None:
            td.call(setup, max_insns=max_insns)
        return td

    reference = prepared()
    start = reference.vcpu.instructions
    boundaries = reference.call_result(symbol, *args, max_insns=max_insns).instructions - start
    report = InterruptReport(symbol, boundaries, frozenset(allowed))
    for k in range(boundaries + 1):
        for vector in chosen:
            td = prepared()
            td.lapic.schedule(td.now_ns() + k * td.ns_per_insn, vector)
            result = td.call_result(symbol, *args, max_insns=max_insns)
            reached = [e.handler_name for e in result.events
                       if isinstance(e, InterruptDelivered) and e.vector == vector]
            detail = result.message.splitlines()[0] if result.message else ""
            report.deliveries.append(Delivery(k, vector, reached[0] if reached else "",
                                              result.reason, detail))
    return report
