"""Contract files: a typed TOML schema.  Every key has one type and range;
unknown keys, wrong types (a table where a name belongs, "no" where a
boolean belongs) and values out of range are refused with one sentence
that names the key, never read loosely.  README.md "Contract files"
documents each key with an example.
"""
from __future__ import annotations

import re
from pathlib import Path

from .. import abi
from ..errors import TdxsimError
from .builtin import BUILTIN
from .contracts import (ALWAYS, CALLEE_SAVED, NEVER, ON_SUCCESS, Contract, Fixed, When,
                        argument)

MAX_INSNS = 10_000_000  # a run's budget: a stub that spins this long "never returns"
MAX_STRUCT = 0x4000  # bytes
MAX_ARGUMENT = 16
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


class Bad(Exception):
    """A contract-file error: one sentence, the file name is added by `load`."""


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
        return from_table(data, path.stem)
    except Bad as exc:
        raise TdxsimError(f"contract file {path}: {exc}") from None


# --- typed readers: each refuses anything but its one type and range ---
def _type(value, kind, what: str, expected: str):
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise Bad(f"{what} must be {expected}, not {_shown(value)}")
    return value


def _shown(value) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)


def integer(value, what: str, low: int, high: int) -> int:
    _type(value, int, what, f"an integer in {low:#x}..{high:#x}")
    if not low <= value <= high:
        raise Bad(f"{what} must be an integer in {low:#x}..{high:#x}, not {value:#x}")
    return value


def choice(value, what: str, options: tuple[str, ...]) -> str:
    _type(value, str, what, " or ".join(f'"{o}"' for o in options))
    if value not in options:
        raise Bad(f"{what} must be " + " or ".join(f'"{o}"' for o in options)
                  + f", not {value!r}")
    return value


def register(value, what: str, allow_none: bool = False) -> int | None:
    _type(value, str, what, "a register name (rax ... r15)")
    if allow_none and value == "none":
        return None
    name = value.lower()
    if name not in abi.GPR_NAMES or name == "rsp":
        alternative = ', or "none"' if allow_none else ""
        raise Bad(f"{what} must name a general-purpose register other than rsp "
                  f"(rax ... r15{alternative}), not {value!r}")
    return abi.GPR_NAMES.index(name)


def location(value, what: str, convention: str, allow_none: bool = False):
    """A register name, or "argN": the routine's N-th argument under its
    convention (a register, or a stack slot past the register arguments)."""
    if isinstance(value, str) and re.fullmatch(r"arg\d+", value):
        number = int(value[3:])
        if not 1 <= number <= MAX_ARGUMENT:
            raise Bad(f"{what}: arguments are numbered arg1 ... arg{MAX_ARGUMENT}, "
                      f"not {value!r}")
        return argument(convention, number)
    return register(value, what, allow_none)


def registers(values, what: str) -> tuple[int, ...]:
    _type(values, list, what, "a list of register names")
    return tuple(register(v, f"each entry of {what}") for v in values)


def table(value, what: str) -> dict:
    return _type(value, dict, f"[{what}]", "a table")


def when(value, bits: dict[str, int], what: str, on_success: bool = False) -> When:
    fixed = {"always": ALWAYS, "never": NEVER} | ({"on-success": ON_SUCCESS} if on_success
                                                   else {})
    _type(value, str, what, "a string")
    if value in fixed:
        return fixed[value]
    if value in bits:
        return When(bit=bits[value], text=value)
    names = ", ".join(f'"{n}"' for n in fixed)
    raise Bad(f"{what} must be {names} or a name from [flag_bits] "
              f"({', '.join(bits) or 'none defined'}), not {value!r}")


# --- the schema ---
KEYS = {
    "name": "a string", "mask": "an integer", "xmm_mask": "an integer",
    "convention": '"sysv" or "ms"', "args": "a location", "flags": "a location",
    "returns": "a register", "copy_outputs": "a condition", "interrupts": "a condition",
    "inputs": "registers", "outputs": "registers", "callee_saved": "registers",
    "preserved": "registers", "no_rbp_mod": "a boolean", "max_insns": "an integer",
    "frame_pointer": '"required" or "not-required"', "on_failure": '"trap" or "return-status"',
    "struct": "a table", "flag_bits": "a table", "register_args": "a table",
}


def from_table(data: dict, default_name: str) -> Contract:
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise Bad(f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(KEYS))}")
    if "mask" not in data:
        raise Bad("the key 'mask' (the GPR_SELECT the stub must use, e.g. 0xFC00) is required")
    name = _type(data.get("name", default_name), str, "name", "a string")
    conv = choice(data.get("convention", "sysv"), "convention", ("sysv", "ms"))
    fields, sizes, fixed = struct(table(data.get("struct", {}), "struct"))
    bits = {}
    for k, v in table(data.get("flag_bits", {}), "flag_bits").items():
        bits[k] = integer(v, f"flag bit {k}", 1, abi.MASK64)
    every = [abi.GPR_NAMES[r] for r in fields]
    inputs = frozenset(registers(data.get("inputs", every), "inputs"))
    outputs = frozenset(registers(data.get("outputs", every), "outputs"))
    if not (inputs | outputs) <= set(fields):
        stray = sorted((inputs | outputs) - set(fields))
        raise Bad(f"inputs/outputs name register(s) without a [struct] field: "
                  f"{', '.join(abi.GPR_NAMES[r] for r in stray)}")
    args = location(data.get("args", "arg1" if fields or fixed else "none"), "args", conv,
                    allow_none=True)
    if (fields or fixed) and args is None:
        raise Bad("a contract with a [struct] needs 'args', where its address is at entry")
    reg_args = {register(k, "each key of [register_args]"):
                location(v, f"register_args.{k}", conv)
                for k, v in table(data.get("register_args", {}), "register_args").items()}
    return Contract(
        name=name, convention=conv,
        mask=integer(data["mask"], "mask", 0, abi.GPR_SELECT_MASK),
        xmm_mask=integer(data.get("xmm_mask", 0), "xmm_mask", 0, abi.XMM_SELECT_MASK),
        fields=fields, sizes=sizes, fixed=fixed, inputs=inputs, outputs=outputs, args=args,
        flags=location(data.get("flags", "none"), "flags", conv, allow_none=True),
        flag_bits=bits, reg_args=reg_args,
        copy_outputs=when(data.get("copy_outputs", "always"), bits, "copy_outputs", True),
        interrupts=when(data.get("interrupts", "never"), bits, "interrupts"),
        returns=register(data.get("returns", "r10"), "returns", allow_none=True),
        callee_saved=registers(data.get("callee_saved", [abi.GPR_NAMES[r] for r in
                                                         CALLEE_SAVED[conv]]), "callee_saved"),
        preserved=registers(data.get("preserved", []), "preserved"),
        no_rbp_mod=_type(data.get("no_rbp_mod", True), bool, "no_rbp_mod", "true or false"),
        max_insns=integer(data.get("max_insns", 100_000), "max_insns", 1, MAX_INSNS),
        frame_pointer=choice(data.get("frame_pointer", "required"), "frame_pointer",
                             ("required", "not-required")),
        on_failure=choice(data.get("on_failure", "trap"), "on_failure",
                          ("trap", "return-status")))


def struct(layout: dict) -> tuple[dict[int, int], dict[int, int], tuple[Fixed, ...]]:
    """[struct]: `register = offset` (a u64 field), or `key = { offset = N,
    size = 1|2|4|8, value = V }`: a narrower field, and with `value` a field
    the caller fills with that fixed value (then the key is any name)."""
    fields, sizes, fixed, spans = {}, {}, [], []
    for key, spec in layout.items():
        what = f"struct.{key}"
        if isinstance(spec, dict):
            unknown = sorted(set(spec) - {"offset", "size", "value"})
            if unknown or "offset" not in spec:
                raise Bad(f"{what} must be an offset or a table with offset, size and value "
                          f"(unknown: {', '.join(unknown) or 'none'})")
            offset = integer(spec["offset"], f"{what}.offset", 0, MAX_STRUCT - 8)
            size = spec.get("size", 8)
            if size not in (1, 2, 4, 8) or isinstance(size, bool):
                raise Bad(f"{what}.size must be 1, 2, 4 or 8, not {_shown(size)}")
            value = spec.get("value")
            if value is not None:
                value = integer(value, f"{what}.value", 0, (1 << 8 * size) - 1)
        else:
            offset, size, value = integer(spec, what, 0, MAX_STRUCT - 8), 8, None
        if offset % size:
            raise Bad(f"{what}: offset {offset} is not a multiple of its size {size}")
        if value is not None:
            if not NAME.fullmatch(key):
                raise Bad(f"{what}: a fixed field needs a plain name")
            fixed.append(Fixed(key, offset, size, value))
        else:
            r = register(key, f"each key of [struct] without a value ({key!r})")
            fields[r] = offset
            if size != 8:
                sizes[r] = size
        spans.append((offset, offset + size, key))
    spans.sort()
    for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
        if start < end:
            raise Bad(f"[struct] fields {a} and {b} overlap")
    return fields, sizes, tuple(fixed)
