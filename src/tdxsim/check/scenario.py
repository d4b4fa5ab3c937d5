"""A scenario: what one checker run varies (flags, a module failure, an
interrupt, values replacing the default patterns), its JSON form, and the
reproducer file that `--save`, `fuzz` and `--replay` exchange."""
from __future__ import annotations

from dataclasses import dataclass

from .. import abi
from ..errors import TdxsimError
from .contracts import Contract


@dataclass(frozen=True)
class Scenario:
    """One run: the flags word, an optional module failure, an optional
    interrupt, and values that replace the default patterns."""
    flags: int = 0
    module_status: int = 0  # nonzero: the module fails the TDCALL with this RAX
    inject: int | None = None  # interrupt pending after this many instructions
    inputs: tuple[tuple[int, int], ...] = ()  # (register, input value)
    host: tuple[tuple[int, int], ...] = ()  # (register, value the host writes)

    def to_json(self) -> dict:
        return {"flags": self.flags, "module_status": f"{self.module_status:#x}",
                "inject": self.inject,
                "inputs": {abi.GPR_NAMES[r]: f"{v:#x}" for r, v in self.inputs},
                "host": {abi.GPR_NAMES[r]: f"{v:#x}" for r, v in self.host}}

    @classmethod
    def from_json(cls, data: dict) -> "Scenario":
        if not isinstance(data, dict) or not set(data) <= {"flags", "module_status", "inject",
                                                            "inputs", "host"}:
            raise TdxsimError("a reproducer scenario is an object with the keys flags, "
                              "module_status, inject, inputs and host")
        inject = data.get("inject")
        return cls(flags=_number(data.get("flags", 0), "flags"),
                   module_status=_number(data.get("module_status", 0), "module_status"),
                   inject=None if inject is None else _number(inject, "inject"),
                   inputs=_registers(data.get("inputs", {}), "inputs"),
                   host=_registers(data.get("host", {}), "host"))


def _number(value, what: str) -> int:
    try:
        number = int(value, 0) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= abi.MASK64:
        raise TdxsimError(f"reproducer: {what} must be a 64-bit number, not {value!r}")
    return number


def _registers(table, what: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(table, dict) or not all(k in abi.GPR_NAMES for k in table):
        raise TdxsimError(f"reproducer: {what} must map register names (rax ... r15) to values")
    return tuple(sorted((abi.GPR_NAMES.index(k), _number(v, f"{what}.{k}"))
                        for k, v in table.items()))


def reproducer(prop: str, message: str, c: Contract, symbol: str, sc: Scenario,
               seed: int | None = None, index: int | None = None) -> dict:
    data = {"tool": "tdxsim", "property": prop, "message": message, "contract": c.name,
            "symbol": symbol, "scenario": sc.to_json()}
    if seed is not None:
        data.update(seed=seed, index=index)
    return data
