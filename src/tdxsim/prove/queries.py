"""Each property of check/properties.py as a question about one path.

A judge returns whether the path exercises the property (as the concrete
judge's True/False) and its claims: conditions under which the path would
violate it.  A claim the solver satisfies together with the path condition
is a candidate counterexample; it only becomes one when its concrete replay
fails the concrete judge of the same property (verdict.py).  Data movement
(`no-leak`, `scrub`, `host-pointer`) is a taint question: does the value
depend on a secret or host symbol at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .. import abi
from triton import MemoryAccess

from ..check.contracts import When, reg_name
from ..check.properties import callee_owned, mask_problem, padding_bytes
from ..layout import RETURN_TRAP
from .engine import Path, variables
from .world import FLAGS, HOSTV, INPUT, POINTER, SECRET, World


@dataclass(frozen=True)
class Claim:
    cond: object | None  # boolean AST; None: the path itself violates
    rip: int
    what: str  # for an `unknown` verdict: what the engine found
    inject: int | None = None  # sti-shadow: the interrupt's boundary


Judge = Callable[[World, Path], "tuple[bool, list[Claim]]"]


def _ne(ast, a, b):
    return ast.lnot(ast.equal(a, b))


def _holds(world: World, path: Path, when: When, status=None):
    """The AST of `when.holds(flags, status)`."""
    ast, c = path.ctx.getAstContext(), world.contract
    if when.on_success:
        return ast.equal(status, ast.bv(0, 64))
    if when.always or not when.bit or c.flags is None:
        return ast.equal(ast.bvtrue(), ast.bvtrue() if when.always else ast.bvfalse())
    flags = (path.entry[c.flags] if isinstance(c.flags, int) else
             initial(world, path, world.layout.entry_rsp + c.flags.offset, 8))
    return _ne(ast, ast.bvand(flags, ast.bv(when.bit, 64)), ast.bv(0, 64))


def initial(world: World, path: Path, address: int, size: int):
    """Memory at entry, from the u64 cells the path keeps."""
    ast = path.ctx.getAstContext()
    parts = []
    for a in range(address + size - 1, address - 1, -1):  # most significant byte first
        cell = path.memory0[a & ~7]
        bit = 8 * (a & 7)
        parts.append(ast.extract(bit + 7, bit, cell))
    return parts[0] if size == 1 else ast.concat(parts)


def final(path: Path, address: int, size: int):
    return path.ctx.getMemoryAst(MemoryAccess(address, size))


def _named(world: World, node, path: Path, kinds: set[str]) -> list[str]:
    return [world.symbols[n].what for n in sorted(variables(path.ctx, node))
            if world.symbols[n].kind in kinds]


def leaf(world: World, p: Path):
    ast = p.ctx.getAstContext()
    if not p.calls:  # an unfinished path may still reach one
        return True, [] if p.end == "unknown" else [Claim(None, p.rip, "a path without a TDCALL")]
    return True, [Claim(_ne(ast, t.rax, ast.bv(abi.Leaf.VP_VMCALL, 64)), t.rip,
                        "RAX may be nonzero at the TDCALL") for t in p.calls]


def mask_valid(world: World, p: Path):
    c, ast = world.contract, p.ctx.getAstContext()
    want = c.mask | c.xmm_mask << abi.XMM_SELECT_SHIFT
    calls = [t for t in p.calls if t.vmcall]
    if mask_problem(c, want):  # the contract's own mask is refused by the module
        return bool(calls), [Claim(None, t.rip, "the contract's mask") for t in calls]
    return bool(calls), [Claim(_ne(ast, t.rcx, ast.bv(want, 64)), t.rip,
                               f"RCX may differ from {want:#x}") for t in calls]


def no_leak(world: World, p: Path):
    """A secret or pointer symbol in a value the host sees; or a value made
    of constants and pointers only (`lea` of a code address, say) that may
    lie in a range of guest addresses."""
    calls = [t for t in p.calls if t.exited]
    claims = []
    for t in calls:
        shown = [(reg_name(r), e) for r, e in t.exposed.items()]
        shown += [(f"XMM{j}", e) for j, e in t.exposed_xmm.items()]
        for name, node in shown:
            secret = _named(world, node, p, {SECRET, POINTER})
            if secret:
                claims.append(Claim(None, t.rip, f"the host may see {secret[0]} in {name}"))
            elif not _named(world, node, p, {INPUT, FLAGS, HOSTV}) and \
                    node.getBitvectorSize() == 64:
                claims.append(Claim(_in_ranges(world, p, node), t.rip,
                                    f"the host may see a guest address in {name}"))
    return bool(calls), claims


def _in_ranges(world: World, p: Path, node):
    ast, lay = p.ctx.getAstContext(), world.layout
    low, high = world.text_extent
    ranges = [(lay.stack_low - 0x1000, lay.stack_top), world.struct_range,
              (RETURN_TRAP, RETURN_TRAP + 1), (low, high)]
    return ast.lor([ast.land([ast.bvuge(node, ast.bv(a, 64)), ast.bvult(node, ast.bv(b, 64))])
                    for a, b in ranges if a < b])


def scrub(world: World, p: Path):
    if not (p.returned and p.exchange):
        return False, []
    c, claims = world.contract, []
    live = [(reg_name(r), p.final[r]) for r in c.scrubbed]
    if any(t.exposed_xmm for t in p.calls):
        live += [(f"XMM{j}", x) for j, x in enumerate(p.xmm_final)]
    for name, node in live:
        host = _named(world, node, p, {HOSTV})
        if host:
            claims.append(Claim(None, p.rip, f"{name} may hold {host[0]} after return"))
    return True, claims


def callee_saved(world: World, p: Path):
    if not (p.returned and p.exchange):
        return False, []
    ast = p.ctx.getAstContext()
    return True, [Claim(_ne(ast, p.final[r], p.entry[r]), p.rip,
                        f"{reg_name(r)} may differ from the caller's after return")
                  for r in world.contract.unchanged] + [
        Claim(_ne(ast, p.xmm_final[j], p.xmm_entry[j]), p.rip,
              f"XMM{j} may differ from the caller's after return")
        for j in world.contract.xmm_saved]


def stack(world: World, p: Path):
    if not p.calls:
        return False, []
    ast, lay = p.ctx.getAstContext(), world.layout
    ret = p.memory0[lay.entry_rsp]
    claims = [Claim(_ne(ast, t.ret_slot, ret), t.rip, "the return address may be overwritten "
                    "at the TDCALL") for t in p.calls]
    if p.escaped:
        return True, claims + [Claim(None, p.rip, "RET pops something other than the return "
                                     "address")]
    if not p.returned:
        claims.append(Claim(_ne(ast, p.memory[lay.entry_rsp], ret), p.rip,
                            "the return address may be lost"))
        return True, claims
    balanced = ast.bvadd(p.entry[abi.RSP], ast.bv(8, 64))
    claims.append(Claim(_ne(ast, p.final[abi.RSP], balanced), p.rip, "RSP may be unbalanced"))
    owned = callee_owned(world.contract)  # the shadow space and stack arguments
    claims += [Claim(_ne(ast, p.memory[a], p.memory0[a]), p.rip,
                     f"the caller's frame at {a:#x} may change")
               for a in p.memory0 if lay.entry_rsp < a < lay.stack_top
               and a - lay.entry_rsp not in owned]
    return True, claims


def frame_pointer(world: World, p: Path):
    ast, claims = p.ctx.getAstContext(), []
    for t in p.calls:
        pinned = [ast.equal(node, ast.bv(value, 64)) for node, value in t.rbp_links]
        if t.rbp_links[-1][1] == world.layout.caller_rbp:  # valid for these values: others?
            claims.append(Claim(ast.lnot(ast.land(pinned + pinned[:1])), t.rip,
                                "RBP may not link to the caller's frame"))
        else:
            claims.append(Claim(ast.land(pinned + pinned[:1]), t.rip,
                                "RBP does not link to the caller's frame"))
        if t.rbp_after is not None:
            claims.append(Claim(_ne(ast, t.rbp_after, t.before[abi.RBP]), t.rip,
                                "RBP may change across the TDCALL"))
    return bool(p.calls), claims


def sti_shadow(world: World, p: Path):
    if not p.calls:
        return False, []
    ast, c = p.ctx.getAstContext(), world.contract
    want = _holds(world, p, c.interrupts)
    claims = [Claim(on, p.calls[0].rip, f"an interrupt may be taken after {k} instructions",
                    inject=k) for k, on in p.boundaries]
    for t in p.calls:
        on = ast.equal(t.if_flag, ast.bvtrue())
        claims.append(Claim(ast.lnot(ast.iff(on, want)), t.rip, "IF at the TDCALL may differ "
                            "from what the contract asks"))
    if p.returned:
        on = ast.equal(p.if_final, ast.bvtrue())
        claims.append(Claim(ast.lnot(ast.iff(on, want)), p.rip, "IF after return may differ "
                            "from what the contract asks"))
    return True, claims


def failure_traps(world: World, p: Path):
    t = p.failure
    if t is None:
        return False, []
    if not p.returned:
        return True, []
    if world.contract.on_failure == "return-status":  # EDK2: the module's RAX comes back
        ast = p.ctx.getAstContext()
        return True, [Claim(_ne(ast, p.final[0], t.after[0]), t.rip,
                            "a failed TDCALL may return something else than its status")]
    return True, [Claim(None, t.rip, "a failed TDCALL may return")]


def output_copy(world: World, p: Path):
    """Each field holds the TDCALL's output when the contract copies it,
    else its input; fixed fields, padding and the guards stay as they were."""
    c, t = world.contract, p.exchange
    if t is None or not p.returned or not c.struct_size:
        return False, []
    ast, args = p.ctx.getAstContext(), world.layout.args
    copy = _holds(world, p, c.copy_outputs, t.after[abi.R10])
    claims = []
    for r, offset in c.fields.items():
        size = c.size(r)
        now, was = final(p, args + offset, size), initial(world, p, args + offset, size)
        changed = _ne(ast, now, was)
        if r in c.outputs:
            out = t.after[r] if size == 8 else ast.extract(8 * size - 1, 0, t.after[r])
            wrong = ast.lor([ast.land([copy, _ne(ast, now, out)]),
                             ast.land([ast.lnot(copy), changed])])
        else:
            wrong = changed
        claims.append(Claim(wrong, p.rip, f"args->{abi.GPR_NAMES[r]} may be wrong"))
    kept = [(f.offset + i, 1) for f in c.fixed for i in range(f.size)]
    kept += [(i, 1) for i in padding_bytes(c)]
    kept += [(o, 8) for o in [*range(-64, 0, 8), *range(c.struct_size, c.struct_size + 64, 8)]]
    claims += [Claim(_ne(ast, final(p, args + o, n), initial(world, p, args + o, n)), p.rip,
                     f"memory at offset {o} of the args struct may change") for o, n in kept]
    return True, claims


def return_value(world: World, p: Path):
    c, t = world.contract, p.exchange
    if t is None:
        return False, []
    if not p.returned:  # judged when the last TDCALL succeeded (a scenario fails all or none)
        lost = p.host_addresses or p.end == "unknown" or "RET to" in p.reason
        last_failed = [t for t in p.calls if t.vmcall][-1].failed
        return True, [] if lost or last_failed else [Claim(None, p.rip,
                                                           "the routine may not return")]
    if c.returns is None:
        return True, []
    ast = p.ctx.getAstContext()
    return True, [Claim(_ne(ast, p.final[abi.RAX], t.after[c.returns]), p.rip,
                        f"RAX may differ from {reg_name(c.returns)} after the TDCALL")]


def host_pointer(world: World, p: Path):
    if p.exchange is None:
        return False, []
    return True, [Claim(None, rip, "a host-written value is used as an address")
                  for rip, _ in p.host_addresses]


JUDGES: dict[str, Judge] = {
    "leaf": leaf, "mask-valid": mask_valid, "no-leak": no_leak, "scrub": scrub,
    "callee-saved": callee_saved, "stack": stack, "frame-pointer": frame_pointer,
    "sti-shadow": sti_shadow, "failure-traps": failure_traps, "output-copy": output_copy,
    "return-value": return_value, "host-pointer": host_pointer,
}
