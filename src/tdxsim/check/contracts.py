"""Calling contracts: what `tdxsim check` holds a hypercall stub to.

A contract says how the routine is called (calling convention, struct
pointer, flags word, arguments in registers or on the stack), what it must
hand to the TDX module (leaf, RCX mask, which struct fields go into which
registers) and what it must leave behind (outputs copied back, return
value, the registers its convention preserves).  The bundled contracts are
in builtin.py (spec 9.1, 9.2 and the public ABIs); any other comes from a
TOML file (schema.py, documented in README.md "Contract files").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
import random
from itertools import combinations
from operator import itemgetter

from .. import abi
from ..limits import FLAG_VALUES
from ..module.vmcall import control_error

# The registers each convention promises to preserve (RSP is judged by `stack`).
# SysV AMD64 ABI 3.2.1; Microsoft x64 calling convention ("Register volatility").
CALLEE_SAVED = {
    "sysv": (abi.RBX, abi.RBP, abi.R12, abi.R13, abi.R14, abi.R15),
    "ms": (abi.RBX, abi.RBP, abi.RDI, abi.RSI, abi.R12, abi.R13, abi.R14, abi.R15),
}
XMM_SAVED = {"sysv": (), "ms": tuple(range(6, 16))}  # MS x64: XMM6-XMM15 are nonvolatile
ARG_REGISTERS = {
    "sysv": (abi.RDI, abi.RSI, abi.RDX, abi.RCX, abi.R8, abi.R9),
    "ms": (abi.RCX, abi.RDX, abi.R8, abi.R9),
}
# Where the first stack-passed argument sits, from the entry RSP: SysV puts
# the 7th at [RSP+8]; MS x64 the 5th at [RSP+0x28], above the return address
# and the 32-byte shadow space the caller reserves for the four register args.
FIRST_STACK_ARG = {"sysv": 8, "ms": 0x28}
SHADOW_SPACE = {"sysv": 0, "ms": 32}
SYSV_CALLEE_SAVED = CALLEE_SAVED["sysv"]
PACK_CODE = {1: "B", 2: "H", 4: "I", 8: "Q"}  # a field's struct code by size


@dataclass(frozen=True)
class Stack:
    """An argument passed on the stack: the slot at entry RSP + offset."""
    offset: int
    number: int  # the argument's position, 1-based

    def __str__(self) -> str:
        return f"argument {self.number} ([RSP+{self.offset:#x}] at entry)"


Location = "int | Stack"  # a register index or a stack slot


@dataclass(frozen=True)
class When:
    """A condition on a run: always, never, a flag bit set, or (for copying
    outputs) the status the TDCALL returned being zero."""
    always: bool = False
    bit: int = 0
    text: str = "never"
    on_success: bool = False

    def holds(self, flags: int, status: int = 0) -> bool:
        if self.on_success:
            return status == 0
        return self.always or bool(flags & self.bit)


NEVER = When()
ALWAYS = When(always=True, text="always")
ON_SUCCESS = When(text="on-success", on_success=True)


@dataclass(frozen=True)
class Fixed:
    """A struct field that is not a register: the caller fills in a fixed
    value (e.g. the u8 `version` of newer Linux tdx_module_args)."""
    name: str
    offset: int
    size: int
    value: int


@dataclass(frozen=True)
class Contract:
    name: str
    mask: int  # the GPR_SELECT the stub must put in RCX
    fields: dict[int, int]  # register -> byte offset of its field in the args struct
    inputs: frozenset[int]  # registers loaded from their field before the TDCALL
    outputs: frozenset[int]  # registers written back to their field after it
    args: "int | Stack | None" = abi.RDI  # where the struct pointer is at entry
    flags: "int | Stack | None" = None  # where the flags word is at entry
    flag_bits: dict[str, int] = field(default_factory=dict)
    reg_args: dict = field(default_factory=dict)  # VMM register <- entry register or Stack
    copy_outputs: When = ALWAYS
    interrupts: When = NEVER  # STI right before the TDCALL (spec 7.3)
    returns: int | None = abi.R10  # RAX at return = this register after the TDCALL
    callee_saved: tuple[int, ...] | None = None  # None: the convention's set
    preserved: tuple[int, ...] = ()  # further registers that must come back unchanged
    xmm_mask: int = 0
    no_rbp_mod: bool = True  # KVM always creates TDs with NO_RBP_MOD (spec 3.2)
    max_insns: int = 100_000
    convention: str = "sysv"
    sizes: dict[int, int] = field(default_factory=dict)  # register -> field size, if not 8
    fixed: tuple[Fixed, ...] = ()
    frame_pointer: str = "required"  # or "not-required" (spec 10 B2 is then not judged)
    on_failure: str = "trap"  # or "return-status": return the module's RAX (EDK2)

    def __post_init__(self):
        if self.callee_saved is None:
            object.__setattr__(self, "callee_saved", CALLEE_SAVED[self.convention])

    @cached_property
    def struct_size(self) -> int:
        ends = [o + self.size(r) for r, o in self.fields.items()]
        ends += [f.offset + f.size for f in self.fixed]
        return -(-max(ends) // 8) * 8 if ends else 0

    def size(self, register: int) -> int:
        return self.sizes.get(register, 8)

    @cached_property
    def output_fields(self) -> tuple[tuple[int, int, int], ...]:
        """(register, offset, size) of each field the outputs are copied into."""
        return tuple((r, o, self.size(r)) for r, o in self.fields.items() if r in self.outputs)

    @cached_property
    def rcx(self) -> int | None:
        """The one RCX that passes mask-valid: the contract's GPR and XMM
        masks, bits 63:32 clear; None if the module refuses even that."""
        rcx = self.mask | self.xmm_mask << abi.XMM_SELECT_SHIFT
        fits = rcx & abi.GPR_SELECT_MASK == self.mask and \
            rcx >> abi.XMM_SELECT_SHIFT & abi.XMM_SELECT_MASK == self.xmm_mask
        return rcx if fits and control_error(rcx, self.no_rbp_mod) is None else None

    @cached_property
    def output_image(self) -> tuple[str, itemgetter, tuple[tuple[int, int], ...],
                                    tuple[int, ...] | None] | None:
        """For comparing a struct image's output fields in one go: the
        struct format that unpacks them from the struct (in offset order;
        a string, since the contract is pickled for fuzz workers), what
        picks their registers' values out of the GPRs, the byte ranges of
        the struct no output field covers, and the fields' masks when one
        is narrower than 8 bytes.  None when output fields overlap or one
        is not 1, 2, 4 or 8 bytes."""
        fields = sorted((o, size, r) for r, o, size in self.output_fields)
        code, at, kept = "<", 0, []
        for offset, size, _ in fields:
            if offset < at or size not in PACK_CODE:
                return None
            if offset > at:
                code += f"{offset - at}x"
                kept.append((at, offset))
            code += PACK_CODE[size]
            at = offset + size
        if at < self.struct_size:
            kept.append((at, self.struct_size))
        narrow = tuple((1 << 8 * size) - 1 for _, size, _ in fields)
        return (code, registers_of(tuple(r for _, _, r in fields)), tuple(kept),
                narrow if any(size != 8 for _, size, _ in fields) else None)

    @cached_property
    def scrubbed_of(self) -> itemgetter:
        return registers_of(self.scrubbed)

    @cached_property
    def unchanged_of(self) -> itemgetter:
        return registers_of(self.unchanged)

    @cached_property
    def unchanged(self) -> tuple[int, ...]:
        """Registers that must hold the caller's value at return (RSP is
        judged by the `stack` property)."""
        return tuple(dict.fromkeys(r for r in self.callee_saved + self.preserved
                                   if r != abi.RSP))

    @cached_property
    def xmm_saved(self) -> tuple[int, ...]:
        return XMM_SAVED[self.convention]

    @cached_property
    def scrubbed(self) -> tuple[int, ...]:
        """Registers that must not hold a host-written value after return:
        all but the unchanged ones, RSP and the return value in RAX."""
        keep = set(self.unchanged) | {abi.RSP} | ({abi.RAX} if self.returns is not None else set())
        return tuple(r for r in range(16) if r not in keep)

    @cached_property
    def stack_args(self) -> tuple[tuple[Stack, str], ...]:
        """Every stack slot the contract passes something in, with what."""
        slots = [(self.args, "the args pointer"), (self.flags, "the flags word")]
        slots += [(src, f"the input {reg_name(dst)}") for dst, src in self.reg_args.items()]
        return tuple((s, what) for s, what in slots if isinstance(s, Stack))

    @cached_property
    def shadow_space(self) -> int:
        return SHADOW_SPACE[self.convention]

    def flag_values(self) -> tuple[int, ...]:
        """Every combination of the defined flag bits, smallest first."""
        return self._flag_values

    @cached_property
    def _flag_values(self) -> tuple[int, ...]:  # the fuzzer asks once per execution
        bits = sorted(set(self.flag_bits.values()))
        if 1 << len(bits) <= FLAG_VALUES:
            values = {sum(c) for n in range(len(bits) + 1) for c in combinations(bits, n)}
            return tuple(sorted(values))
        return sampled_flags(bits)

    def flag_names(self, flags: int) -> str:
        names = [n.upper() for n, b in self.flag_bits.items() if flags & b]
        return "|".join(names) if names else "0"


def registers_of(registers: tuple[int, ...]) -> itemgetter:
    """Picks these registers' values out of a GPR tuple, always as a tuple
    (a slice for one register or none); picklable, as contracts are."""
    if len(registers) == 1:
        return itemgetter(slice(registers[0], registers[0] + 1))
    return itemgetter(*registers) if registers else itemgetter(slice(0, 0))


def reg_name(index: int) -> str:
    return abi.GPR_NAMES[index].upper()


def where(location) -> str:
    """An entry location for messages: a register name or a stack slot."""
    return str(location) if isinstance(location, Stack) else reg_name(location)


def argument(convention: str, number: int) -> "int | Stack":
    """Where argument `number` (1-based) of a routine is at entry."""
    registers = ARG_REGISTERS[convention]
    if number <= len(registers):
        return registers[number - 1]
    return Stack(FIRST_STACK_ARG[convention] + 8 * (number - len(registers) - 1), number)


def sampled_flags(bits: list[int]) -> tuple[int, ...]:
    """FLAG_VALUES combinations of more flag bits than can all be run:
    none, all, each alone, all but each, then a sample seeded by the bits."""
    every = 0
    for b in bits:
        every |= b
    rng = random.Random(every)
    picked: dict[int, None] = dict.fromkeys([0, every, *bits, *(every & ~b for b in bits)])
    while len(picked) < FLAG_VALUES:
        value = 0
        for b in bits:
            value |= b if rng.random() < 0.5 else 0
        picked.setdefault(value)
    return tuple(sorted(list(picked)[:FLAG_VALUES]))
