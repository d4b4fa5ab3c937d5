"""The conversion explorer: bug classes B16-B18 (spec 13.4) for a guest
routine that converts a GPA range with MapGPA (and accepts it, when the
target is private).

The routine runs once per scenario, each from a fresh TD.  At each MapGPA
step (the k-th call) the host answers, in turn:
  - RETRY with progress: the first 2 MiB chunk converted, R11 = the next GPA
    (spec 6.3; KVM does so while an interrupt is pending);
  - RETRY without progress: nothing converted, R11 = R12 (spec 13.1: user
    space refused with EAGAIN);
  - a failure mid-range: the first chunk converted, INVALID_OPERAND with
    R11 = the next GPA (spec 6.3 step 5);
  - RETRY with R11 outside the range (the end, or below the start: B11);
and once a host answers RETRY with progress at every step, as KVM does
under a stream of interrupts.  Every other call is served honestly.

Findings:
  - the routine reports success but a page of the range is not in the
    requested state: shared, or private and accepted (B17);
  - after a failed call, the routine touches a page of the range through
    either alias, or asks MapGPA for a GPA outside it (B16, B11);
  - the routine gives up although every RETRY made progress (B18), or
    never returns (a livelock: B17's restart from the original GPA).

    report = explore_conversion(td, "to_shared", start, end, shared=True)
    print(report.render())
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

from . import abi
from .abi import SubFn, VmcallStatus
from .events import MemoryConverted, VeRaised, VmcallRecord
from .exits import VmResume
from .host import Host, mapgpa
from .memory import Page
from .td import TD

SCENARIOS = ("retry-progress", "retry-no-progress", "fail-mid-range", "r11-at-end",
             "r11-below-start")


@dataclass(frozen=True)
class Finding:
    scenario: str  # e.g. "retry-progress at step 0", "retry at every step"
    problem: str


@dataclass
class ConversionReport:
    symbol: str
    steps: int  # MapGPA calls of the honest run
    runs: int = 0
    findings: list[Finding] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"explored {self.symbol}: {self.steps} MapGPA step(s), {self.runs} runs, "
                 f"{len(self.findings)} findings"]
        lines += [f"  {f.scenario}: {f.problem}" for f in self.findings]
        return "\n".join(lines)


class _LyingHost:
    """MapGPA answers for one scenario; every other call as KVM would."""

    def __init__(self, scenario: str, step: int | None):
        self.scenario, self.step = scenario, step
        self.calls = itertools.count()
        self.failed_at: int | None = None  # index of the failing call, for the judge

    def handle(self, host, exit) -> VmResume:
        index = next(self.calls)
        if self.scenario != "every" and index != self.step:
            return mapgpa.handle(host, exit)
        start, end = exit.r12, exit.r12 + exit.r13
        shared_bit = abi.shared_bit(host.gpaw)
        chunk = min(abi.MAP_GPA_CHUNK, end - start)
        if self.scenario in ("every", "retry-progress", "fail-mid-range"):
            mapgpa.convert(host, start & ~shared_bit, chunk, bool(start & shared_bit))
            if start + chunk >= end:
                return VmResume.status(VmcallStatus.SUCCESS)
            status = VmcallStatus.INVALID_OPERAND if self.scenario == "fail-mid-range" \
                else VmcallStatus.RETRY
            if status != VmcallStatus.RETRY:
                self.failed_at = index
            return VmResume.status(status, r11=start + chunk)
        self.failed_at = index if self.scenario != "retry-no-progress" else None
        r11 = {"retry-no-progress": start, "r11-at-end": end,
               "r11-below-start": start - abi.PAGE_SIZE}[self.scenario]
        return VmResume.status(VmcallStatus.RETRY, r11=r11 & abi.MASK64)


def explore_conversion(template: TD, symbol: str, start: int, end: int, *args: int,
                       shared: bool, setup: Callable[[TD], None] | None = None,
                       max_insns: int = 2_000_000) -> ConversionReport:
    """Explore `symbol(start, end, *args)`, a routine that converts the
    private GPAs [start, end) to shared (shared=True) or to private and
    accepted (shared=False).  `setup(td)` prepares each fresh TD (e.g. makes
    the range shared first)."""
    def fresh(lying: _LyingHost | None) -> TD:
        model = template.host
        host = Host(model.personality if model.adversary is None else "kvm", model.gpaw)
        host.handlers, host.kvm_handlers = dict(model.handlers), dict(model.kvm_handlers)
        if lying is not None:
            host.handlers[SubFn.MAP_GPA] = lying.handle
        td = TD(template.image, memory=template.memory, config=template.config, host=host,
                ns_per_insn=template.ns_per_insn)
        if setup is not None:
            setup(td)
        return td

    reference = fresh(None).call_result(symbol, start, end, *args, max_insns=max_insns)
    steps = sum(1 for e in reference.exits if _is_map_gpa(e))
    report = ConversionReport(symbol, steps)
    plan = [(s, k) for k in range(steps) for s in SCENARIOS] + [("every", None)]
    for scenario, step in plan:
        lying = _LyingHost(scenario, step)
        td = fresh(lying)
        result = td.call_result(symbol, start, end, *args, max_insns=max_insns)
        name = "retry at every step" if step is None else f"{scenario} at step {step}"
        report.runs += 1
        for problem in _judge(td, result, lying, start, end, shared):
            report.findings.append(Finding(name, problem))
    return report


def _is_map_gpa(event) -> bool:
    return isinstance(event, VmcallRecord) and event.exposed[abi.R10] == 0 \
        and event.exposed[abi.R11] == SubFn.MAP_GPA


def _judge(td: TD, result, lying: _LyingHost, start: int, end: int, shared: bool) -> list[str]:
    if result.reason != "return":
        return [f"the routine did not return ({result.reason}): "
                f"{result.message.splitlines()[0] if result.message else ''}"]
    plain = ~td.ram.shared_bit
    in_range = lambda gpa: start <= gpa & plain < end  # noqa: E731
    problems = []
    calls = [e for e in result.events if _is_map_gpa(e)]
    if any(not in_range(e.exposed[abi.R12]) for e in calls):
        problems.append("asked MapGPA for a GPA outside the range (trusted R11)")
    if result.return_value == 0:
        want = Page.SHARED if shared else Page.PRIVATE
        wrong = [gpa for gpa in range(start, end, abi.PAGE_SIZE) if td.ram.state(gpa) != want]
        if wrong:
            problems.append(f"reported success but {len(wrong)} page(s) are not "
                            f"{want.name.lower()}, the first at GPA {wrong[0]:#x}")
    elif lying.scenario in ("every", "retry-progress"):
        problems.append(f"gave up ({result.return_value:#x}) although every RETRY made "
                        "progress (B18)")
    elif lying.failed_at is not None and lying.failed_at < len(calls):
        events = list(result.events)
        failed = events.index(calls[lying.failed_at])
        touched = [e.gpa if isinstance(e, MemoryConverted) else e.info.gpa
                   for e in events[failed + 1:]
                   if (isinstance(e, MemoryConverted) and e.implicit and in_range(e.gpa))
                   or (isinstance(e, VeRaised) and e.info is not None
                       and e.exit_reason == abi.EXIT_REASON_EPT_VIOLATION and in_range(e.info.gpa))]
        if touched:
            problems.append(f"used a page after the failed conversion (GPA {touched[0]:#x})")
    return problems
