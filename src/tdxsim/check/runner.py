"""`check`: run a stub through a fixed, deterministic set of scenarios and
judge every property on every run.

The plan: one run per combination of the contract's flags with the marker
host; the same runs with the module failing the TDCALL (two statuses, one
with bit 63 clear); and, for each flags value that enables interrupts, one
run per instruction boundary before the TDCALL with an interrupt pending
there.  The first failing run of a property, in plan order, is its
reproducer: plan order puts the simplest scenarios first.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Iterator

from .. import abi
from ..image import Image
from .contracts import Contract
from .harness import Harness, Observation, Scenario
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
    seconds: float
    replayed: Scenario | None = None
    extra: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "fail"]


def plan(c: Contract, harness: Harness) -> Iterator[Observation]:
    normal = []
    for flags in c.flag_values():
        normal.append(harness.run(Scenario(flags=flags)))
        yield normal[-1]
    for flags in c.flag_values():
        for status in FAILURE_STATUSES:
            yield harness.run(Scenario(flags=flags, module_status=status))
    for o in normal:
        if c.interrupts.holds(o.scenario.flags) and o.tdcalls:
            for k in range(o.tdcalls[0].insns):
                yield harness.run(replace(o.scenario, inject=k))


def evaluate(c: Contract, observations: list[Observation]) -> list[Result]:
    results = []
    for prop in PROPERTIES:
        runs, failed = 0, None
        for o in observations:
            verdict = prop.judge(c, o)
            if verdict is False:
                continue
            runs += 1
            if isinstance(verdict, Finding):
                failed = Result(prop, "fail", verdict.message, runs, verdict, o)
                break
        if failed is None:
            failed = (Result(prop, "pass", f"{prop.holds} ({runs} run{'s' * (runs > 1)})",
                             runs) if runs else
                      Result(prop, "skip", f"not exercised: no run reached {prop.needs}"))
        results.append(failed)
    return results


def check(image: Image, symbol: str, contract: Contract, stub: str = "",
          replay: Scenario | None = None, host=None) -> Report:
    """Check `symbol` against `contract`; with `replay`, run only that scenario."""
    start = time.perf_counter()
    harness = Harness(image, symbol, contract, host)
    observations = [harness.run(replay)] if replay is not None else list(plan(contract, harness))
    results = evaluate(contract, observations)
    return Report(stub or image.path, symbol, contract, image, results, harness.runs,
                  time.perf_counter() - start, replay)


def minimise(harness: Harness, scenario: Scenario, prop: Property) -> Scenario:
    """Greedily simplify a failing scenario while `prop` still fails on it:
    drop the interrupt, the module failure and each fuzzed value, then
    clear flag bits."""
    def fails(s: Scenario) -> bool:
        return isinstance(prop.judge(harness.contract, harness.run(s)), Finding)

    candidates = [lambda s: replace(s, inject=None), lambda s: replace(s, module_status=0)]
    candidates += [lambda s, st=st: replace(s, module_status=st) if s.module_status else s
                   for st in FAILURE_STATUSES]
    for key in ("inputs", "host"):
        for item in getattr(scenario, key):
            candidates.append(lambda s, key=key, item=item: replace(
                s, **{key: tuple(i for i in getattr(s, key) if i != item)}))
    candidates += [lambda s, bit=bit: replace(s, flags=s.flags & ~(1 << bit))
                   for bit in range(64) if scenario.flags >> bit & 1]
    candidates += [lambda s, k=k: replace(s, inject=k) if s.inject and k < s.inject else s
                   for k in range(scenario.inject or 0)]
    for simplify in candidates:
        simpler = simplify(scenario)
        if simpler != scenario and fails(simpler):
            scenario = simpler
    return scenario
