"""Three-valued verdicts: `proven`, `counterexample` or `unknown`.

For each property every path's claims go to the solver with the path
condition.  Unsatisfiable everywhere, on a complete exploration: `proven`.
A satisfiable claim is solved again with every secret at the concrete
checker's pattern (and one host answer and module status for every
TDCALL, as a scenario has), turned into a scenario, run concretely and
judged by the concrete property; only a concrete failure makes it a
`counterexample`, minimised as the concrete checker minimises.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import abi
from ..check.contracts import Contract
from ..check.harness import Harness
from ..check.properties import PROPERTIES, Finding, Property
from ..check.runner import Result, minimise
from ..check.scenario import Scenario
from ..image import Image
from .engine import LOOP_BOUND, Path
from .explore import conj, explore, model_values
from .queries import JUDGES, Claim
from .world import FLAGS, HOSTV, INPUT, SECRET, STATUS, World

TRIES = 4  # candidates replayed per property before it is left `unknown`


@dataclass
class Verdict:
    prop: Property
    status: str  # 'proven', 'counterexample' or 'unknown'
    message: str
    result: Result | None = None  # the concrete failing replay of a counterexample

    @property
    def id(self) -> str:
        return self.prop.id


@dataclass
class Proof:
    stub: str
    symbol: str
    contract: Contract
    image: Image
    verdicts: list[Verdict]
    paths: int
    incomplete: list[str] = field(default_factory=list)

    @property
    def counterexamples(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status == "counterexample"]

    @property
    def unknown(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status == "unknown"]


def prove(image: Image, symbol: str, contract: Contract, stub: str = "",
          timeout_ms: int = 5000, loop_bound: int = LOOP_BOUND) -> Proof:
    """Decide every property; `loop_bound`: how often one branch site may
    be decided on symbols on one path before the proof gives up on it."""
    harness = Harness(image, symbol, contract)
    world = World(harness)
    paths, problems = explore(world, timeout_ms, loop_bound)
    incomplete = problems + [p.reason for p in paths if p.end == "unknown"]
    verdicts = [_decide(prop, world, paths, incomplete, timeout_ms) for prop in PROPERTIES]
    return Proof(stub or image.path, symbol, contract, image, verdicts, len(paths),
                 list(dict.fromkeys(incomplete)))


def _decide(prop: Property, world: World, paths: list[Path], incomplete: list[str],
            timeout_ms: int) -> Verdict:
    exercised, doubts, unreplayed = False, [], []
    why_not = prop.applies(world.contract)
    if why_not:  # the contract does not ask for it (check/properties.py says why)
        return Verdict(prop, "proven", f"not applicable: {why_not}")
    for path in paths:
        reached, claims = JUDGES[prop.id](world, path)
        exercised |= reached
        if not claims:
            continue
        if all(claim.cond is not None for claim in claims):  # most paths: one query
            state, _ = _solve(path, _any(path, claims), [], timeout_ms)
            if state == "unsat":
                continue
        for claim in claims:
            state, _ = _solve(path, claim, [], timeout_ms)
            if state == "timeout":
                doubts.append(f"solver timeout deciding whether {claim.what}")
            if state != "sat" or len(unreplayed) >= TRIES:
                continue
            result = _replay(prop, world, path, claim, timeout_ms)
            if result is not None:
                return Verdict(prop, "counterexample", result.message, result)
            unreplayed.append(claim)
    if unreplayed:
        claim = unreplayed[0]
        return Verdict(prop, "unknown", f"{claim.what} (at {claim.rip:#x}) on some inputs, but no "
                       "concrete replay of it fails the property")
    if doubts or incomplete:
        return Verdict(prop, "unknown", "; ".join(dict.fromkeys(doubts + incomplete)))
    if not exercised:
        return Verdict(prop, "unknown", f"not reached: no path reaches {prop.needs}")
    return Verdict(prop, "proven", f"{prop.holds}, on all {len(paths)} paths")


def _any(path: Path, claims: list[Claim]) -> Claim:
    ast = path.ctx.getAstContext()
    conds = [claim.cond for claim in claims]
    return Claim(conds[0] if len(conds) == 1 else ast.lor(conds), claims[0].rip, "any")


def _solve(path: Path, claim: Claim, extra: list, timeout_ms: int):
    ast = path.ctx.getAstContext()
    nodes = path.constraint() + extra + ([] if claim.cond is None else [claim.cond])
    return model_values(path.ctx, conj(ast, nodes), timeout_ms)


def _pins(world: World, path: Path, defaults: bool) -> list:
    """Constraints that make a model replayable: secrets at their patterns,
    one host answer and one status for every TDCALL; with `defaults`, the
    inputs and host answers at the checker's values too (a shorter
    reproducer)."""
    ctx = path.ctx
    ast = ctx.getAstContext()
    pins, first = [], {}
    for var in ctx.getSymbolicVariables().values():
        sym = world.symbols[var.getAlias()]
        node = ast.variable(var)
        size = var.getBitSize()
        fixed = sym.kind == SECRET or (sym.kind == HOSTV and sym.register is None)
        if fixed or defaults and sym.kind in (INPUT, HOSTV):
            pins.append(ast.equal(node, ast.bv(sym.default, size)))
        if sym.kind in (HOSTV, STATUS):
            key = (sym.kind, sym.register)
            if key in first:
                pins.append(ast.equal(node, first[key]))
            else:
                first[key] = node
    return pins


def _replay(prop: Property, world: World, path: Path, claim: Claim,
            timeout_ms: int) -> Result | None:
    for defaults in (True, False):
        state, values = _solve(path, claim, _pins(world, path, defaults), timeout_ms)
        if state == "sat":
            break
    else:
        return None
    harness, c = world.harness, world.contract
    scenario = _scenario(world, path, values, claim)
    if not isinstance(prop.judge(c, harness.run(scenario)), Finding):
        return None
    scenario = minimise(harness, scenario, prop)
    o = harness.run(scenario)
    finding = prop.judge(c, o)
    return Result(prop, "fail", finding.message, 1, finding, o)


def _scenario(world: World, path: Path, values: dict[str, int], claim: Claim) -> Scenario:
    def value(alias: str) -> int:
        return values.get(alias, world.symbols[alias].default)

    symbols = world.symbols.values()
    flags = next((value(s.alias) for s in symbols if s.kind == FLAGS), 0)
    failed = next((t for t in path.calls if t.valid), None)
    status = value(f"status{failed.index}") if failed and failed.failed else 0
    inputs = {s.register: value(s.alias) for s in symbols if s.kind == INPUT}
    host = {s.register: value(s.alias) for s in symbols
            if s.kind == HOSTV and s.register is not None and s.call == 0}
    return Scenario(
        flags=flags & abi.MASK64, module_status=status, inject=claim.inject,
        inputs=tuple(sorted((r, v) for r, v in inputs.items()
                            if v != world.base.inputs.get(r))),
        host=tuple(sorted((r, v) for r, v in host.items()
                          if v != world.base.host_gprs.get(r))))
