"""The symbolic world a proof starts from: one symbol per thing the stub
can read, each with its kind and the value the concrete checker gives it.

The kinds decide what a symbol may be in a proof and in a replay:

- secret: the caller's registers, XMMs, flags bits, stack and the memory
  around the args struct.  Free in a proof ("for every value"); fixed to the
  checker's distinctive pattern in a replay, so a concrete run recognises it.
- pointer: the stack pointer, the caller's frame pointer, the args pointer
  and the return address.  Fixed in both: a proof is about the checker's
  memory layout (README, "What a proof covers").  Still symbols, so that a
  pointer reaching the host is seen as a leak.
- input, flags: the contract's inputs and flags word.  Free in both: a
  replay's scenario carries their values.
- host, status: created at each TDCALL (spec 3.4): the VMM's answer in every
  selected register and the module's status.
"""
from __future__ import annotations

from dataclasses import dataclass

from triton import ARCH, MODE, SOLVER, MemoryAccess, TritonContext

from .. import abi
from ..check.harness import Harness
from ..check.scenario import Scenario
from ..check.values import GUARD, HOST, XMM_BASE, pattern
from ..layout import RETURN_TRAP

SECRET, POINTER, INPUT, FLAGS, HOSTV, STATUS = "secret", "pointer", "input", "flags", "host", \
    "status"
STATUS_FLAGS = ("cf", "pf", "af", "zf", "sf", "of")  # the caller's arithmetic flags: secrets


@dataclass(frozen=True)
class Symbol:
    alias: str  # unique name; models are keyed by it
    kind: str
    default: int  # the value the concrete checker gives it
    what: str  # for messages: "the caller's R15"
    register: int | None = None  # input/host: the register it stands for
    call: int = 0  # host/status: which TDCALL of the path


class World:
    """Builds a Triton context holding the entry state for one assignment of
    values to symbols, and knows every symbol's kind."""

    def __init__(self, harness: Harness):
        self.harness, self.contract = harness, harness.contract
        self.layout = harness.layout
        self.base = base = harness.values(Scenario())  # the checker's values
        c = self.contract
        self.symbols: dict[str, Symbol] = {}
        self.cells: list[tuple[int, int, str]] = []  # (address, size, alias) in memory
        carried = {abi.RSP: "the stack pointer", abi.RBP: "the caller's frame pointer"}
        if c.args is not None:
            carried[c.args] = "the args pointer"
        self.entry: dict[int, str] = {}
        for r in range(16):
            self.entry[r] = self._add(self._located(r, carried) or Symbol(
                f"entry_{abi.GPR_NAMES[r]}", SECRET, base.entry[r],
                f"the caller's {abi.GPR_NAMES[r].upper()}", r)).alias
        for j in range(16):
            self._add(Symbol(f"entry_xmm{j}", SECRET, int.from_bytes(base.xmm[16 * j:16 * j + 16],
                                                                     "little"),
                             f"the caller's XMM{j}"))
        for flag in STATUS_FLAGS:
            self._add(Symbol(f"entry_{flag}", SECRET, 0, f"the caller's {flag.upper()} flag"))
        self._stack_cells(carried)
        self._struct_cells()

    def _located(self, loc, carried: dict) -> Symbol | None:
        """The symbol of an entry register or stack slot the contract passes
        something in: the flags word, an input, a pointer."""
        c, base = self.contract, self.base
        value = (base.entry[loc] if isinstance(loc, int) else
                 int.from_bytes(base.stack[self.layout.entry_rsp + loc.offset -
                                           self.layout.stack_low:][:8], "little"))
        name = abi.GPR_NAMES[loc] if isinstance(loc, int) else f"stack{loc.offset:x}"
        if loc == c.flags:
            return Symbol("flags", FLAGS, 0, "the flags word")
        dst = next((d for d, src in c.reg_args.items() if src == loc), None)
        if dst is not None:
            return Symbol(f"in_{abi.GPR_NAMES[dst]}", INPUT, base.inputs[dst],
                          f"input {abi.GPR_NAMES[dst].upper()}", dst)
        if loc in carried:
            return Symbol(f"ptr_{name}", POINTER, value, carried[loc])
        return None

    def _add(self, sym: Symbol) -> Symbol:
        self.symbols.setdefault(sym.alias, sym)
        return self.symbols[sym.alias]

    def _stack_cells(self, carried: dict) -> None:
        lay, stack = self.layout, self.base.stack
        slots = {lay.entry_rsp + s.offset: s for s, _ in self.contract.stack_args}
        for address in range(lay.stack_low, lay.stack_top, 8):
            value = int.from_bytes(stack[address - lay.stack_low:][:8], "little")
            off = address - lay.entry_rsp
            if address == lay.entry_rsp:
                sym = Symbol("ptr_return", POINTER, RETURN_TRAP, "the return address")
            elif address in slots:
                sym = self._located(slots[address], carried)
            else:
                where = (f"uninitialised stack (entry RSP-{-off:#x})" if off < 0
                         else f"the caller's stack frame (entry RSP+{off:#x})")
                sym = Symbol(f"stack_{address:x}", SECRET, value, where)
            self.cells.append((address, 8, self._add(sym).alias))

    def _struct_cells(self) -> None:
        """Each field is an input symbol of its size, fixed fields keep the
        value the caller fills in, every other byte (guards, padding) is a
        secret."""
        c, lay, struct = self.contract, self.layout, self.base.struct
        if not c.struct_size:
            return
        owner: dict[int, object] = {}
        for r, offset in c.fields.items():
            owner.update({offset + i: r for i in range(c.size(r))})
        for f in c.fixed:
            owner.update({f.offset + i: f for i in range(f.size)})
        offset = -GUARD
        while offset < c.struct_size + GUARD:
            at, r = lay.args + offset, owner.get(offset)
            value = lambda size: int.from_bytes(struct[GUARD + offset:][:size], "little")  # noqa
            if isinstance(r, int) and c.fields[r] == offset:
                size = c.size(r)
                sym = Symbol(f"in_{abi.GPR_NAMES[r]}", INPUT, value(size),
                             f"input {abi.GPR_NAMES[r].upper()}", r)
            elif r is not None:  # a fixed field: a constant, not a symbol
                offset += 1
                continue
            else:
                size = 8 if offset % 8 == 0 and all(offset + i not in owner
                                                    for i in range(8)) else 1
                inside = 0 <= offset < c.struct_size
                sym = Symbol(f"guard_{offset + GUARD}", SECRET, value(size),
                             "padding in the args struct" if inside else
                             "memory next to the args struct")
            self.cells.append((at, size, self._add(sym).alias))
            offset += size

    @property
    def text_extent(self) -> tuple[int, int]:
        """The loaded code: its addresses are secrets (they defeat KASLR)."""
        image = self.harness.image
        segments = [s for s in image.segments if s.executable] or image.segments
        return (min(s.vaddr for s in segments),
                max(s.vaddr + max(s.memsz, len(s.data)) for s in segments))

    @property
    def struct_range(self) -> tuple[int, int]:
        lay, size = self.layout, self.contract.struct_size
        return (lay.args - GUARD, lay.args + size + GUARD) if size else (lay.args, lay.args)

    # --- symbols made at a TDCALL ---
    def host_symbol(self, call: int, r: int) -> Symbol:
        name = abi.GPR_NAMES[r]
        return self._add(Symbol(f"host{call}_{name}", HOSTV, self.base.host_gprs.get(r, 0),
                                f"the VMM's {name.upper()}", r, call))

    def host_xmm_symbol(self, call: int, j: int) -> Symbol:
        return self._add(Symbol(f"host{call}_xmm{j}", HOSTV,
                                pattern(HOST, XMM_BASE + j) * (1 << 64 | 1),
                                f"the VMM's XMM{j}", None, call))

    def status_symbol(self, call: int) -> Symbol:
        return self._add(Symbol(f"status{call}", STATUS, 0, "the module's status", None, call))

    # --- a context for one path ---
    def context(self, values: dict[str, int]) -> TritonContext:
        """A fresh context at the routine's entry, every symbol holding
        `values[alias]` (its default when absent)."""
        ctx = TritonContext(ARCH.X86_64)
        ctx.setSolver(SOLVER.BITWUZLA)  # ~15x faster than Z3 on these queries
        ctx.setMode(MODE.AST_OPTIMIZATIONS, True)
        ctx.setMode(MODE.CONSTANT_FOLDING, True)
        ctx.setMode(MODE.ALIGNED_MEMORY, True)
        regs = ctx.registers
        value = lambda alias: values.get(alias, self.symbols[alias].default)  # noqa: E731
        for r, alias in self.entry.items():
            reg = getattr(regs, abi.GPR_NAMES[r])
            ctx.setConcreteRegisterValue(reg, value(alias))
            ctx.symbolizeRegister(reg, alias)
        for j in range(16):
            reg = getattr(regs, f"xmm{j}")
            ctx.setConcreteRegisterValue(reg, value(f"entry_xmm{j}"))
            ctx.symbolizeRegister(reg, f"entry_xmm{j}")
        for flag in STATUS_FLAGS:
            reg = getattr(regs, flag)
            ctx.setConcreteRegisterValue(reg, value(f"entry_{flag}") & 1)
            ctx.symbolizeRegister(reg, f"entry_{flag}")
        ctx.setConcreteRegisterValue(getattr(regs, "if"), 0)  # the caller runs with IF = 0
        ctx.setConcreteRegisterValue(regs.df, 0)  # SysV: DF clear at every call
        for seg in self.harness.image.segments:
            ctx.setConcreteMemoryAreaValue(seg.vaddr, bytes(seg.data))
        if self.contract.struct_size:
            low, _ = self.struct_range
            ctx.setConcreteMemoryAreaValue(low, self.base.struct)  # fixed fields included
        for address, size, alias in self.cells:
            cell = MemoryAccess(address, size)
            ctx.setConcreteMemoryValue(cell, value(alias))
            ctx.symbolizeMemory(cell, alias)
        return ctx

