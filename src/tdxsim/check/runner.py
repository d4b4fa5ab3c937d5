"""`check`: run a stub through a fixed, deterministic set of scenarios and
judge every property on every run.

The plan, for every combination of the contract's flags: one run with the
distinctive patterns (secrets, inputs, host markers), then the ABI's
ordinary values, so that a stub whose control flow depends on an input or
a host value is run on both sides of the branch: every input 0 (R10 = 0 is
a standard GHCI call), every input all-ones, the host writing 0 everywhere,
and the host answering R10 = 0 with markers elsewhere.  Then the module
fails the TDCALL (two statuses, one with bit 63 clear) with the patterns,
and once with every input 0 (a stub that tests its own R10 instead of RAX
returns then).  Last, for each flags value that enables interrupts, one run
per instruction boundary before the TDCALL with an interrupt pending
there.  The first failing run of a property, in plan order, is its
reproducer: plan order puts the simplest scenarios first.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from .. import abi
from ..image import Image
from ..limits import PLAN_INJECTIONS
from .contracts import Contract
from .harness import Harness
from .observation import Observation
from .scenario import Scenario
from .facts import ending
from .properties import PROPERTIES, Finding, Property

FAILURE_STATUSES = (abi.operand_invalid(abi.RCX), abi.Status.NON_RECOVERABLE_VCPU)


@dataclass
class Result:
    """One property's verdict over all runs."""
    prop: Property
    status: str  # 'pass', 'fail' or 'skip' (no run exercised it)
    message: str
    runs: int = 0  # runs that exercised it
    finding: Finding | None = None
    observation: Observation | None = None  # the failing run

    @property
    def id(self) -> str:
        return self.prop.id


@dataclass
class Report:
    stub: str
    symbol: str
    contract: Contract
    image: Image
    results: list[Result]
    runs: int
    replayed: Scenario | None = None

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "fail"]


def ordinary(c: Contract) -> tuple[Scenario, ...]:
    """The ordinary values every plan runs besides the patterns: inputs all
    0 and all 1, the host writing 0 everywhere, the host answering R10 = 0."""
    inputs = sorted(set(c.fields) | set(c.reg_args))
    host = [r for r in range(abi.RDX, 16) if r != abi.RSP]
    return (Scenario(inputs=tuple((r, 0) for r in inputs)),
            Scenario(inputs=tuple((r, abi.MASK64) for r in inputs)),
            Scenario(host=tuple((r, 0) for r in host)),
            Scenario(host=((abi.R10, 0),)))


def plan(c: Contract, harness: Harness) -> Iterator[Observation]:
    normal, zeros = [], ordinary(c)
    for flags in c.flag_values():
        normal.append(harness.run(Scenario(flags=flags)))
        yield normal[-1]
        for values in zeros:
            yield harness.run(replace(values, flags=flags))
    for flags in c.flag_values():
        for status in FAILURE_STATUSES:
            yield harness.run(Scenario(flags=flags, module_status=status))
        yield harness.run(replace(zeros[0], flags=flags, module_status=FAILURE_STATUSES[0]))
    injectable = [o for o in normal if c.interrupts.holds(o.scenario.flags) and o.tdcalls]
    share = PLAN_INJECTIONS // max(1, len(injectable))
    for o in injectable:
        for k in injection_points(o.tdcalls[0].insns, share):
            yield harness.run(replace(o.scenario, inject=k))


def injection_points(boundaries: int, share: int) -> list[int]:
    """Every boundary before the TDCALL, or when there are more than `share`:
    the last half of the share, and the rest evenly spaced before them."""
    if boundaries <= share:
        return list(range(boundaries))
    near = share - share // 2
    early = boundaries - near
    spread = share - near
    return sorted({i * early // spread for i in range(spread)}) + list(range(early, boundaries))


def evaluate(c: Contract, observations: list[Observation]) -> list[Result]:
    return [_verdict(prop, c, observations) for prop in PROPERTIES]


def _verdict(prop: Property, c: Contract, observations: list[Observation]) -> Result:
    """The first failing run decides; a property no run exercised is skipped."""
    runs = 0
    for o in observations:
        verdict = prop.judge(c, o)
        if verdict is False:
            continue
        runs += 1
        if isinstance(verdict, Finding):
            return Result(prop, "fail", verdict.message, runs, verdict, o)
    if not runs:
        return Result(prop, "skip", skip_reason(prop, c, observations))
    return Result(prop, "pass", f"{prop.holds} ({runs} run{'s' * (runs > 1)})", runs)


def skip_reason(prop: Property, c: Contract, observations: list[Observation]) -> str:
    """Why a property was judged on no run: the contract rules it out, or
    what the runs did instead of reaching what it needs."""
    reason = prop.applies(c)
    if reason:
        return reason
    counts = Counter(ending(o) for o in observations)
    runs = "; ".join(f"{n} {'run' if n == 1 else 'runs'} {what}"
                     for what, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"not exercised: no run reached {prop.needs} ({runs or 'no runs'})"


def check(image: Image, symbol: str, contract: Contract, stub: str = "",
          replay: Scenario | None = None, host=None,
          stop: Callable[[], bool] = lambda: False) -> Report:
    """Check `symbol` against `contract`; with `replay`, run only that scenario.
    When `stop()` turns true (a signal), the plan ends after the current run."""
    harness = Harness(image, symbol, contract, host)
    observations = []
    for o in [harness.run(replay)] if replay is not None else plan(contract, harness):
        observations.append(o)
        if stop():
            break
    return Report(stub or image.path, symbol, contract, image,
                  evaluate(contract, observations), harness.runs, replay)


def simpler(s: Scenario) -> Iterator[Scenario]:
    """Simplifications of a scenario.  Each removes something (an interrupt,
    a failure, a non-canonical status, a value, a flag bit) or moves the
    interrupt earlier, so minimising always ends."""
    yield replace(s, inject=None)
    yield replace(s, module_status=0)
    if s.module_status and s.module_status not in FAILURE_STATUSES:
        yield from (replace(s, module_status=status) for status in FAILURE_STATUSES)
    for key in ("inputs", "host"):
        items = getattr(s, key)
        yield from (replace(s, **{key: items[:i] + items[i + 1:]}) for i in range(len(items)))
    yield from (replace(s, flags=s.flags & ~(1 << b)) for b in range(64) if s.flags >> b & 1)
    yield from (replace(s, inject=k) for k in range(s.inject or 0))


def minimise(harness: Harness, scenario: Scenario, prop: Property) -> Scenario:
    """Take simplifications while `prop` still fails, until none is left."""
    def fails(s: Scenario) -> bool:
        return isinstance(prop.judge(harness.contract, harness.run(s)), Finding)

    while True:
        step = next((s for s in simpler(scenario) if s != scenario and fails(s)), None)
        if step is None:
            return scenario
        scenario = step
