"""Calling contracts: what `tdxsim check` holds a hypercall stub to.

A contract says how the routine is called (struct pointer, flags word,
register-passed inputs), what it must hand to the TDX module (leaf, RCX
mask, which struct fields go into which registers) and what it must leave
behind (outputs copied back, return value, preserved registers).  Two are
built in (spec 9.1, 9.2); any other comes from a small TOML file whose
format is documented in README.md ("Contract files").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from pathlib import Path

from .. import abi
from ..errors import TdxsimError

SYSV_CALLEE_SAVED = (abi.RBX, abi.RBP, abi.R12, abi.R13, abi.R14, abi.R15)


@dataclass(frozen=True)
class When:
    """A condition on the flags argument: always, never, or a flag bit set."""
    always: bool = False
    bit: int = 0
    text: str = "never"

    def holds(self, flags: int) -> bool:
        return self.always or bool(flags & self.bit)


NEVER = When()
ALWAYS = When(always=True, text="always")


@dataclass(frozen=True)
class Contract:
    name: str
    mask: int  # the GPR_SELECT the stub must put in RCX
    fields: dict[int, int]  # register -> byte offset of its u64 in the args struct
    inputs: frozenset[int]  # registers loaded from their field before the TDCALL
    outputs: frozenset[int]  # registers written back to their field after it
    args: int | None = abi.RDI  # register holding the struct pointer at entry
    flags: int | None = None  # register holding the flags word at entry
    flag_bits: dict[str, int] = field(default_factory=dict)
    reg_args: dict[int, int] = field(default_factory=dict)  # register <- entry register
    copy_outputs: When = ALWAYS
    interrupts: When = NEVER  # STI right before the TDCALL (spec 7.3)
    returns: int | None = abi.R10  # RAX at return = this register after the TDCALL
    callee_saved: tuple[int, ...] = SYSV_CALLEE_SAVED
    preserved: tuple[int, ...] = ()  # further registers that must come back unchanged
    xmm_mask: int = 0
    no_rbp_mod: bool = True  # KVM always creates TDs with NO_RBP_MOD (spec 3.2)
    max_insns: int = 100_000

    @cached_property
    def struct_size(self) -> int:
        return max(self.fields.values()) + 8 if self.fields else 0

    @cached_property
    def output_fields(self) -> tuple[tuple[int, int], ...]:
        """(register, offset) of each field the outputs are copied into."""
        return tuple((r, offset) for r, offset in self.fields.items() if r in self.outputs)

    @cached_property
    def unchanged(self) -> tuple[int, ...]:
        """Registers that must hold the caller's value at return (RSP is
        judged by the `stack` property)."""
        return tuple(dict.fromkeys(r for r in self.callee_saved + self.preserved
                                   if r != abi.RSP))

    @cached_property
    def scrubbed(self) -> tuple[int, ...]:
        """Registers that must not hold a host-written value after return:
        all but the unchanged ones, RSP and the return value in RAX."""
        keep = set(self.unchanged) | {abi.RSP} | ({abi.RAX} if self.returns is not None else set())
        return tuple(r for r in range(16) if r not in keep)

    def flag_values(self) -> tuple[int, ...]:
        """Every combination of the defined flag bits, smallest first."""
        return self._flag_values

    @cached_property
    def _flag_values(self) -> tuple[int, ...]:  # the fuzzer asks once per execution
        bits = sorted(set(self.flag_bits.values()))
        values = {sum(c) for n in range(len(bits) + 1) for c in combinations(bits, n)}
        return tuple(sorted(values))

    def flag_names(self, flags: int) -> str:
        names = [n.upper() for n, b in self.flag_bits.items() if flags & b]
        return "|".join(names) if names else "0"


def reg_name(index: int) -> str:
    return abi.GPR_NAMES[index].upper()


_SEED_LAYOUT = {r: 8 * i for i, r in enumerate(range(abi.R10, abi.R15 + 1))}
_LINUX_67_ORDER = (abi.RCX, abi.RDX, abi.R8, abi.R9, abi.R10, abi.R11, abi.R12, abi.R13,
                   abi.R14, abi.R15, abi.RBX, abi.RDI, abi.RSI)
_LINUX_67_LAYOUT = {r: 8 * i for i, r in enumerate(_LINUX_67_ORDER)}

BUILTIN: dict[str, Contract] = {
    # u64 __tdx_hypercall(struct tdx_hypercall_args *args, u64 flags), v5.19 (spec 9.1)
    "seed": Contract(
        name="seed", mask=abi.MASK_R10_R15, fields=_SEED_LAYOUT,
        inputs=frozenset(_SEED_LAYOUT), outputs=frozenset(_SEED_LAYOUT),
        args=abi.RDI, flags=abi.RSI,
        flag_bits={"has_output": abi.TDX_HCALL_HAS_OUTPUT, "issue_sti": abi.TDX_HCALL_ISSUE_STI},
        copy_outputs=When(bit=abi.TDX_HCALL_HAS_OUTPUT, text="has_output"),
        interrupts=When(bit=abi.TDX_HCALL_ISSUE_STI, text="issue_sti"),
        returns=abi.R10,
        preserved=(abi.RDI, abi.RSI, abi.RDX, abi.R8, abi.R9)),
    # u64 __tdx_hypercall(struct tdx_module_args *args), v6.7+ (spec 9.2): RCX is
    # set to the mask by the stub, every field is written back, full scrub.
    "linux-6.7": Contract(
        name="linux-6.7", mask=abi.MASK_LINUX_63, fields=_LINUX_67_LAYOUT,
        inputs=frozenset(_LINUX_67_ORDER[1:]), outputs=frozenset(_LINUX_67_ORDER),
        args=abi.RDI, returns=abi.R10),
}

_KEYS = {"name", "mask", "xmm_mask", "args", "flags", "returns", "copy_outputs", "interrupts",
         "inputs", "outputs", "callee_saved", "preserved", "no_rbp_mod", "max_insns", "struct", "flag_bits", "register_args"}


def load(spec: str) -> Contract:
    """A built-in contract by name, or a contract file (TOML)."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    path = Path(spec)
    if path.suffix != ".toml" and not path.is_file():
        raise TdxsimError(f"unknown ABI '{spec}': use one of {', '.join(BUILTIN)} or the "
                          "path of a contract file (.toml)")
    if not path.is_file():
        raise TdxsimError(f"contract file {path} does not exist")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise TdxsimError("contract files need Python 3.11 or newer (tomllib)") from None
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TdxsimError(f"contract file {path} is not valid TOML: {exc}") from None
    try:
        return _from_table(data, path.stem)
    except _Bad as exc:
        raise TdxsimError(f"contract file {path}: {exc}") from None


class _Bad(Exception):
    pass


def _reg(value, what: str, allow_none: bool = False) -> int | None:
    if allow_none and value in ("none", ""):
        return None
    if not isinstance(value, str) or value.lower() not in abi.GPR_NAMES:
        raise _Bad(f"{what} must name a general-purpose register (rax ... r15), not {value!r}")
    return abi.GPR_NAMES.index(value.lower())


def _regs(values, what: str) -> tuple[int, ...]:
    if not isinstance(values, list):
        raise _Bad(f"{what} must be a list of register names")
    return tuple(_reg(v, f"each entry of {what}") for v in values)


def _int(value, what: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise _Bad(f"{what} must be an integer in 0..{limit:#x}, not {value!r}")
    return value


def _when(value, bits: dict[str, int], what: str) -> When:
    if value == "always":
        return ALWAYS
    if value == "never":
        return NEVER
    if value in bits:
        return When(bit=bits[value], text=value)
    raise _Bad(f"{what} must be \"always\", \"never\" or a name from [flag_bits] "
               f"({', '.join(bits) or 'none defined'}), not {value!r}")


def _from_table(data: dict, default_name: str) -> Contract:
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _Bad(f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(_KEYS))}")
    if "mask" not in data:
        raise _Bad("the key 'mask' (the GPR_SELECT the stub must use, e.g. 0xFC00) is required")
    layout = data.get("struct", {})
    if not isinstance(layout, dict):
        raise _Bad("[struct] must be a table: register = byte offset")
    fields = {_reg(k, "each key of [struct]"): _int(v, f"the offset of {k}", 1 << 16)
              for k, v in layout.items()}
    offsets = sorted(fields.values())
    if any(b - a < 8 for a, b in zip(offsets, offsets[1:])) or any(o % 8 for o in offsets):
        raise _Bad("[struct] offsets must be multiples of 8 and must not overlap")
    bits = {k: _int(v, f"flag bit {k}", abi.MASK64) for k, v in data.get("flag_bits", {}).items()}
    inputs = frozenset(_regs(data.get("inputs", [abi.GPR_NAMES[r] for r in fields]), "inputs"))
    outputs = frozenset(_regs(data.get("outputs", [abi.GPR_NAMES[r] for r in fields]), "outputs"))
    if not (inputs | outputs) <= set(fields):
        stray = sorted((inputs | outputs) - set(fields))
        raise _Bad(f"inputs/outputs name register(s) without a [struct] field: "
                   f"{', '.join(abi.GPR_NAMES[r] for r in stray)}")
    args = _reg(data.get("args", "rdi" if fields else "none"), "args", allow_none=True)
    if fields and args is None:
        raise _Bad("a contract with a [struct] needs 'args', the register holding its address")
    reg_args = {_reg(k, "each key of [register_args]"): _reg(v, f"register_args.{k}")
                for k, v in data.get("register_args", {}).items()}
    return Contract(
        name=str(data.get("name", default_name)),
        mask=_int(data["mask"], "mask", abi.GPR_SELECT_MASK),
        xmm_mask=_int(data.get("xmm_mask", 0), "xmm_mask", abi.XMM_SELECT_MASK),
        fields=fields, inputs=inputs, outputs=outputs, args=args,
        flags=_reg(data.get("flags", "none"), "flags", allow_none=True),
        flag_bits=bits, reg_args=reg_args,
        copy_outputs=_when(data.get("copy_outputs", "always"), bits, "copy_outputs"),
        interrupts=_when(data.get("interrupts", "never"), bits, "interrupts"),
        returns=_reg(data.get("returns", "r10"), "returns", allow_none=True),
        callee_saved=_regs(data.get("callee_saved", [abi.GPR_NAMES[r] for r in
                                                     SYSV_CALLEE_SAVED]), "callee_saved"),
        preserved=_regs(data.get("preserved", []), "preserved"),
        no_rbp_mod=bool(data.get("no_rbp_mod", True)),
        max_insns=_int(data.get("max_insns", 100_000), "max_insns", 10**9))
