"""Symbolic execution of one path of a stub, on Triton.

Triton executes one path at a time, concretely and symbolically side by
side.  A path records each decision it took (a conditional branch on a
symbolic value, a TDCALL's module status, a symbolic RCX or RAX at the
TDCALL); explore.py asks the solver for values that take another way at each
one, and those values start a new path.

The TDCALL is not executed by Triton but modelled here, as the module does
it (spec 3.2-3.4): RCX validation, the host seeing the selected registers,
fresh host symbols for them on return, the module status RAX a symbol over
0 and the failure statuses, everything else kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from triton import AST_NODE, EXCEPTION, OPCODE, Instruction, MemoryAccess, TritonContext

from .. import abi
from ..check.runner import FAILURE_STATUSES
from ..module.vmcall import invalid_control
from ..layout import RETURN_TRAP
from .world import FLAGS, HOSTV, POINTER, World

LOOP_BOUND = 8  # decisions per branch site on one path: a loop unrolled further is `unknown`
MAX_INSNS = 10_000  # instructions per path
MAX_PATHS = 512
UD = {OPCODE.X86.UD2, getattr(OPCODE.X86, "UD1", -1), getattr(OPCODE.X86, "UD0", -1)}
# What a TD does with these is not the CPU's semantics Triton knows: #VE (spec 8.1), virtual
# time, interrupts.  A path reaching one is `unknown`.
NOT_MODELLED = {getattr(OPCODE.X86, n) for n in (
    "CPUID", "HLT", "IN", "OUT", "INSB", "INSW", "INSD", "OUTSB", "OUTSW", "OUTSD", "RDMSR",
    "WRMSR", "VMCALL", "MWAIT", "MONITOR", "WBINVD", "INVD", "RDPMC", "XSETBV", "RDTSC",
    "RDTSCP", "INT", "INT3", "IRETQ", "SYSCALL")}
DIRECT = {OPCODE.X86.JMP, OPCODE.X86.CALL, OPCODE.X86.NOP, OPCODE.X86.PAUSE}


@dataclass
class Call:
    """One TDCALL on a path: the state the module saw and left."""
    index: int
    rip: int
    insns: int  # instructions before it on the path
    rax: object  # ASTs
    rcx: object
    rcx_value: int
    if_flag: object
    before: list  # GPR ASTs at the TDCALL
    rbp_links: list  # (AST, concrete value) along the RBP chain, see rbp_chain
    ret_slot: object  # the return-address slot at the TDCALL
    vmcall: bool = False  # leaf 0
    valid: bool = False  # RCX passed the module's checks (spec 3.2)
    exited: bool = False  # reached the host (status decision 0)
    failed: bool = False  # the module failed it (status decision nonzero)
    exposed: dict = field(default_factory=dict)  # register -> AST the host saw
    exposed_xmm: dict = field(default_factory=dict)
    after: list = field(default_factory=list)  # GPR ASTs right after it
    rbp_after: object = None


@dataclass
class Path:
    """One complete path: how it ended, what it decided and saw."""
    ctx: TritonContext
    end: str  # 'return', 'trap', 'spin', 'crash', 'other-leaf' or 'unknown'
    reason: str  # for 'unknown' and 'crash': why
    rip: int  # the last instruction
    decisions: list  # (taken AST, [alternative ASTs], site)
    assumptions: list  # ASTs every model must satisfy (pointers, status domain)
    calls: list[Call]
    boundaries: list  # (instructions before, AST: an interrupt is deliverable here)
    host_addresses: list  # (rip, address AST) of accesses through host values
    entry: list = field(default_factory=list)  # GPR ASTs at entry
    memory0: dict = field(default_factory=dict)  # address -> AST of each modelled u64 at entry
    memory: dict = field(default_factory=dict)  # ... and at the end of the path
    xmm_entry: list = field(default_factory=list)
    escaped: bool = False  # left the code through a RET that popped no return address
    final: list | None = None  # GPR ASTs at return
    if_final: object = None
    xmm_final: list | None = None
    insns: int = 0

    @property
    def returned(self) -> bool:
        return self.end == "return"

    @property
    def exchange(self) -> Call | None:
        """The last TDCALL that reached the host (as the concrete checker's)."""
        done = [c for c in self.calls if c.exited]
        return done[-1] if done else None

    @property
    def failure(self) -> Call | None:
        failed = [c for c in self.calls if c.vmcall and c.failed]
        return failed[0] if failed else None

    def constraint(self) -> list:
        """The path condition, as a list of conjuncts."""
        return self.assumptions + [taken for taken, _, _ in self.decisions]


def variables(ctx: TritonContext, node) -> set[str]:
    return {v.getSymbolicVariable().getAlias()
            for v in ctx.getAstContext().search(node, AST_NODE.VARIABLE)}


class Runner:
    """Executes one path for one assignment of values to symbols."""

    def __init__(self, world: World, values: dict[str, int], loop_bound: int = LOOP_BOUND):
        self.world, self.values, self.loop_bound = world, values, loop_bound
        self.ctx = ctx = world.context(values)
        self.ast = ctx.getAstContext()
        self.regs = [getattr(ctx.registers, n) for n in abi.GPR_NAMES]
        self.decisions, self.assumptions, self.calls = [], [], []
        self.boundaries, self.host_addresses = [], []
        self.seen_constraints = 0
        self.sites: dict[int, int] = {}
        self._pin_pointers()
        self.entry = [self.reg(r) for r in range(16)]
        self.xmm_entry = [ctx.getRegisterAst(getattr(ctx.registers, f"xmm{j}"))
                          for j in range(16)]
        self.memory0 = self._cells()

    def _cells(self) -> dict:
        """Every u64 of the stack and of the guarded args struct."""
        lay, (low, high) = self.world.layout, self.world.struct_range
        return {a: self.ctx.getMemoryAst(MemoryAccess(a, 8))
                for a in [*range(lay.stack_low, lay.stack_top, 8), *range(low, high, 8)]}

    def _pin_pointers(self) -> None:
        ast, by_alias = self.ast, {}
        for var in self.ctx.getSymbolicVariables().values():
            by_alias.setdefault(var.getAlias(), []).append(var)
        for alias, vars_ in by_alias.items():
            nodes = [ast.variable(v) for v in vars_]
            sym = self.world.symbols[alias]
            if sym.kind == POINTER:
                self.assumptions += [ast.equal(n, ast.bv(sym.default, n.getBitvectorSize()))
                                     for n in nodes]
            if sym.kind == FLAGS:  # a caller passes only the contract's flag bits
                other = abi.MASK64 & ~sum(set(self.world.contract.flag_bits.values()))
                self.assumptions += [ast.equal(ast.bvand(n, ast.bv(other, 64)), ast.bv(0, 64))
                                     for n in nodes]
            self.assumptions += [ast.equal(nodes[0], n) for n in nodes[1:]]

    # --- helpers ---
    def reg(self, r: int):
        return self.ctx.getRegisterAst(self.regs[r])

    def concrete(self, r) -> int:
        return self.ctx.getConcreteRegisterValue(r)

    def decide(self, cond, site: int) -> bool:
        """Record a decision on a symbolic condition; returns the way taken."""
        ast = self.ast
        taken = bool(cond.evaluate())
        self.decisions.append((cond if taken else ast.lnot(cond),
                               [ast.lnot(cond) if taken else cond], site))
        return taken

    def fresh(self, reg, sym) -> None:
        ctx = self.ctx
        ctx.concretizeRegister(reg)
        ctx.setConcreteRegisterValue(reg, self.values.get(sym.alias, sym.default))
        ctx.symbolizeRegister(reg, sym.alias)

    def symbolic(self, node) -> bool:
        return bool(variables(self.ctx, node) - self._pointers())

    def _pointers(self) -> set[str]:
        return {a for a, s in self.world.symbols.items() if s.kind == POINTER}

    # --- the run ---
    def run(self) -> Path:
        ctx, world = self.ctx, self.world
        rip, insns, prev_sti, prev_if = world.harness.entry, 0, False, None
        loop_seen: set[int] = set()
        code = world.harness.image
        while True:
            if rip == RETURN_TRAP:
                return self._end("return", "", rip, insns)
            raw = _fetch(code, rip)
            if raw is None:
                return self._end("crash", f"jumped to {rip:#x}, outside the image", rip, insns)
            if insns >= MAX_INSNS:
                return self._end("unknown", f"more than {MAX_INSNS} instructions on one path",
                                 rip, insns)
            if_now = ctx.getRegisterAst(getattr(ctx.registers, "if"))
            if not self.calls:
                self._boundary(insns, if_now, prev_sti, prev_if)
            if raw.startswith(abi.TDCALL_BYTES):
                ended = self._tdcall(rip, insns)
                if ended:
                    return ended
                rip += abi.TDCALL_LEN
                ctx.setConcreteRegisterValue(ctx.registers.rip, rip)
                insns += 1
                prev_sti, loop_seen = False, set()
                continue
            inst = Instruction(rip, raw)
            ctx.disassembly(inst)
            if inst.getType() in NOT_MODELLED:
                return self._end("unknown", f"{inst.getDisassembly()} at {rip:#x} behaves "
                                 "differently in a TD (#VE, virtual time): not modelled",
                                 rip, insns)
            fault = ctx.processing(inst)
            insns += 1
            kind = inst.getType()
            if fault != EXCEPTION.NO_FAULT:
                if kind in UD:
                    return self._end("trap", "ud2", rip, insns)
                if not inst.getSymbolicExpressions():
                    return self._end("unknown", f"the engine does not model {inst.getDisassembly()}"
                                     f" at {rip:#x}", rip, insns)
                return self._end("crash", f"{inst.getDisassembly()} faults", rip, insns)
            ended = self._memory(inst, rip, insns) or self._branches(rip, insns)
            if ended:
                return ended
            prev_sti, prev_if = kind == OPCODE.X86.STI, if_now
            next_rip = self.concrete(ctx.registers.rip)
            if kind in DIRECT or not inst.isControlFlow() and kind != OPCODE.X86.STI:
                if rip in loop_seen and kind in DIRECT:
                    return self._end("spin", "an endless loop: never returns", rip, insns)
                loop_seen.add(rip)
            else:
                loop_seen = set()
            if kind == OPCODE.X86.RET and next_rip != RETURN_TRAP:
                path = self._end("crash", f"RET to {next_rip:#x}, not the caller", rip, insns)
                path.escaped = True
                return path
            rip = next_rip

    def _boundary(self, insns: int, if_now, prev_sti: bool, prev_if) -> None:
        """Whether an interrupt could be taken before the next instruction:
        IF = 1 outside the STI shadow (spec 7.3)."""
        ast = self.ast
        on = ast.equal(if_now, ast.bvtrue())
        if prev_sti:  # the shadow covers this boundary when STI set IF
            on = ast.land([on, ast.equal(prev_if, ast.bvtrue())])
        self.boundaries.append((insns, on))

    def _branches(self, rip: int, insns: int):
        constraints = self.ctx.getPathConstraints()
        for pc in constraints[self.seen_constraints:]:
            branches = pc.getBranchConstraints()
            taken = [b["constraint"] for b in branches if b["isTaken"]]
            others = [b["constraint"] for b in branches if not b["isTaken"]]
            if not others:  # a symbolic indirect target: any other value is another way
                others = [self.ast.lnot(taken[0])]
            self.decisions.append((taken[0], others, rip))
            self.sites[rip] = self.sites.get(rip, 0) + 1
            if self.sites[rip] > self.loop_bound:
                self.seen_constraints = len(constraints)
                return self._end("unknown", f"a loop at {rip:#x} runs more than {self.loop_bound} "
                                 "times on some inputs (the unroll bound)", rip, insns)
        self.seen_constraints = len(constraints)
        return None

    def _memory(self, inst, rip: int, insns: int):
        """Where the instruction read or wrote: only the stack, the args
        struct and the image are modelled; a host value used as an address
        ends the path (spec 10 B6)."""
        world, lay = self.world, self.world.layout
        accesses = list(inst.getLoadAccess()) + list(inst.getStoreAccess())
        for mem, _ in accesses:
            lea = mem.getLeaAst()
            names = variables(self.ctx, lea) if lea is not None else set()
            if any(world.symbols[n].kind == HOSTV for n in names):
                self.host_addresses.append((rip, lea))
                return self._end("crash", "a host-written value used as an address", rip, insns)
            if names - self._pointers():
                free = ", ".join(world.symbols[n].what for n in sorted(names - self._pointers()))
                return self._end("unknown", f"the address at {rip:#x} depends on {free}",
                                 rip, insns)
            address, size = mem.getAddress(), mem.getSize()
            c = world.contract
            regions = [(lay.stack_low, lay.stack_top)]
            if c.fields:
                regions.append((lay.args - 64, lay.args + c.struct_size + 64))
            regions += [(s.vaddr, s.vaddr + len(s.data)) for s in world.harness.image.segments]
            if not any(lo <= address and address + size <= hi for lo, hi in regions):
                return self._end("unknown", f"an access at {rip:#x} to {address:#x}, outside "
                                 "the stack, the args struct and the image", rip, insns)
        return None

    # --- the module (spec 3.2-3.4) ---
    def _tdcall(self, rip: int, insns: int):
        ctx, ast, world = self.ctx, self.ast, self.world
        index = len(self.calls)
        rax, rcx = self.reg(abi.RAX), self.reg(abi.RCX)
        call = Call(index, rip, insns, rax, rcx, 0,
                    ctx.getRegisterAst(getattr(ctx.registers, "if")),
                    [self.reg(r) for r in range(16)], self._rbp_links(),
                    ctx.getMemoryAst(MemoryAccess(world.layout.entry_rsp, 8)))
        self.calls.append(call)
        if self.symbolic(rax):
            self.decide(ast.equal(rax, ast.bv(0, 64)), rip)
        if rax.evaluate() != abi.Leaf.VP_VMCALL:
            return self._end("other-leaf", f"RAX = {rax.evaluate():#x}: not TDG.VP.VMCALL",
                             rip, insns)
        call.vmcall = True
        value = rcx.evaluate()
        if self.symbolic(rcx):  # one path per value the control word can take
            self.decide(ast.equal(rcx, ast.bv(value, 64)), rip)
        call.rcx_value = value
        if invalid_control(value, world.contract.no_rbp_mod):
            self._set(abi.RAX, abi.operand_invalid(abi.RCX))
            call.failed = True
            call.after = [self.reg(r) for r in range(16)]
            call.rbp_after = self.reg(abi.RBP)
            return None
        call.valid = True
        status = world.status_symbol(index)
        self.fresh(self.regs[abi.RAX], status)
        s = self.reg(abi.RAX)
        self.assumptions.append(ast.lor([ast.equal(s, ast.bv(v, 64))
                                         for v in (0, *FAILURE_STATUSES)]))
        if not self.decide(ast.equal(s, ast.bv(0, 64)), rip):
            call.failed = True  # only RAX is written (spec 3.2)
        else:
            call.exited = True
            select = value & abi.GPR_SELECT_MASK
            xmm = value >> abi.XMM_SELECT_SHIFT & abi.XMM_SELECT_MASK
            for r in range(16):
                if select >> r & 1:
                    call.exposed[r] = call.before[r]
                    self.fresh(self.regs[r], world.host_symbol(index, r))
            for j in range(16):
                if xmm >> j & 1:
                    reg = getattr(ctx.registers, f"xmm{j}")
                    call.exposed_xmm[j] = ctx.getRegisterAst(reg)
                    self.fresh(reg, world.host_xmm_symbol(index, j))
        call.after = [self.reg(r) for r in range(16)]
        call.rbp_after = self.reg(abi.RBP)
        return None

    def _set(self, r: int, value: int) -> None:
        self.ctx.concretizeRegister(self.regs[r])
        self.ctx.setConcreteRegisterValue(self.regs[r], value)

    def _rbp_links(self) -> list:
        """RBP and the saved-RBP links from it, as far as the concrete values
        lead towards the caller's frame (the harness's rule, spec 10 B2)."""
        ctx, lay = self.ctx, self.world.layout
        node = self.reg(abi.RBP)
        links, rsp = [], self.concrete(ctx.registers.rsp)
        for _ in range(16):
            value = node.evaluate()
            links.append((node, value))
            if value == lay.caller_rbp or not (max(rsp, lay.stack_low) <= value < lay.entry_rsp
                                               and value % 8 == 0):
                break
            node = ctx.getMemoryAst(MemoryAccess(value, 8))
            if node.evaluate() <= value:
                links.append((node, node.evaluate()))
                break
        return links

    def _end(self, end: str, reason: str, rip: int, insns: int) -> Path:
        ctx = self.ctx
        path = Path(ctx, end, reason, rip, self.decisions, self.assumptions, self.calls,
                    self.boundaries, self.host_addresses, insns=insns, entry=self.entry,
                    memory0=self.memory0, memory=self._cells(), xmm_entry=self.xmm_entry)
        if end == "return":
            path.final = [self.reg(r) for r in range(16)]
            path.if_final = ctx.getRegisterAst(getattr(ctx.registers, "if"))
            path.xmm_final = [ctx.getRegisterAst(getattr(ctx.registers, f"xmm{j}"))
                              for j in range(16)]
        return path


def _fetch(image, rip: int) -> bytes | None:
    for seg in image.segments:
        if seg.executable and seg.vaddr <= rip < seg.vaddr + len(seg.data):
            return bytes(seg.data[rip - seg.vaddr:rip - seg.vaddr + 16])
    return None
