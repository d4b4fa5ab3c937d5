"""Every feasible path, by re-execution: for each decision a path took the
solver is asked for values that take another way there, and those values
start a new path that keeps the decisions before it.  For loop-free code
this visits every feasible path once; a loop is unrolled as far as its
values lead, up to the bound in engine.py.
"""
from __future__ import annotations

from triton import SOLVER_STATE, TritonContext

from .engine import LOOP_BOUND, MAX_PATHS, Path, Runner
from .world import World


def conj(ast, nodes: list):
    """The conjunction of boolean ASTs (true for none)."""
    if not nodes:
        return ast.equal(ast.bvtrue(), ast.bvtrue())
    return nodes[0] if len(nodes) == 1 else ast.land(nodes)


def model_values(ctx: TritonContext, node, timeout_ms: int) -> tuple[str, dict[str, int]]:
    """('sat', values by alias), ('unsat', {}) or ('timeout', {})."""
    model, status, _ = ctx.getModel(node, True, timeout_ms)
    if status == SOLVER_STATE.SAT:
        return "sat", {ctx.getSymbolicVariable(k).getAlias(): v.getValue()
                       for k, v in model.items()}
    return ("unsat", {}) if status == SOLVER_STATE.UNSAT else ("timeout", {})


def explore(world: World, timeout_ms: int = 5000,
            loop_bound: int = LOOP_BOUND) -> tuple[list[Path], list[str]]:
    """Every feasible path from the entry, and the reasons exploration was
    incomplete (a solver timeout, the path limit)."""
    paths: list[Path] = []
    problems: list[str] = []
    work = [({}, 0)]  # (values, decisions already fixed by the parent)
    while work:
        if len(paths) >= MAX_PATHS:
            problems.append(f"more than {MAX_PATHS} paths")
            break
        values, fixed = work.pop()
        path = Runner(world, values, loop_bound).run()
        paths.append(path)
        ast = path.ctx.getAstContext()
        for i in range(len(path.decisions) - 1, fixed - 1, -1):
            prefix = path.assumptions + [t for t, _, _ in path.decisions[:i]]
            for alt in path.decisions[i][1]:
                state, found = model_values(path.ctx, conj(ast, prefix + [alt]), timeout_ms)
                if state == "timeout":
                    problems.append(f"solver timeout at the branch at {path.decisions[i][2]:#x}")
                elif state == "sat":
                    work.append(({**values, **found}, i + 1))
    return paths, problems
