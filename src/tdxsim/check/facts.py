"""Facts about one observed run that several judges (and the skip reasons)
share: where a value came from, host pointers, stack faults, how a run
ended."""
from __future__ import annotations

from functools import lru_cache
from operator import itemgetter
from struct import unpack_from
from typing import Callable, Sequence

from .. import abi
from ..td import PAGE, RETURN_TRAP
from .contracts import Contract, reg_name, registers_of
from .observation import Observation
from .values import GUARD


def u64(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset:offset + 8], "little")


@lru_cache(maxsize=None)
def bits(mask: int) -> tuple[int, ...]:
    return tuple(i for i in range(16) if mask >> i & 1)


@lru_cache(maxsize=None)
def picker(registers: tuple[int, ...]) -> Callable[[Sequence[int]], object]:
    """Picks these registers' values out of a GPR list in one call, to
    compare two lists on just these registers."""
    return itemgetter(*registers) if registers else lambda gprs: ()


@lru_cache(maxsize=None)
def selected(mask: int) -> tuple[tuple[int, ...], Callable[[tuple[int, ...]], tuple[int, ...]]]:
    """The registers of a GPR mask, and what picks their values out of a
    GPR tuple as a tuple."""
    registers = bits(mask)
    return registers, registers_of(registers)


def names(mask: int) -> str:
    return ", ".join(reg_name(i) for i in bits(mask))


def listed(items: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def origin(o: Observation, value: int) -> str | None:
    """Which guest secret or address a value is, if any."""
    v = o.values
    what = v.secrets.get(value) or v.secret_lows.get(value & 0xFFFF_FFFF)
    if what is None:
        what = next((d for lo, hi, d in v.pointers if lo <= value < hi), None)
    return what


def near_host_value(o: Observation, address: int) -> tuple[int, int, str] | None:
    """The host-written value an address lies within a page of, as (full
    address, value, whose).  Unicorn reports fault addresses cut to 52
    bits, so distances are taken modulo 2**52."""
    wrap = 1 << 52
    hits = [((address - value + PAGE) % wrap - PAGE, value, what)
            for value, what in o.host_written]
    hits = [hit for hit in hits if abs(hit[0]) < PAGE]
    if not hits:
        return None
    offset, value, what = min(hits, key=lambda hit: abs(hit[0]))
    return (value + offset) & abi.MASK64, value, what


def host_pointer_use(o: Observation) -> tuple[int, int, int, str] | None:
    """A crash, or a store outside the stack and args struct, at an address
    derived from a host-written value: (rip, address, value, whose)."""
    if stack_fault(o):
        return None  # a RET popped the wrong slot: judged by `stack`
    crash = o.result.crash
    uses = [(crash.rip, a) for a in (crash.address, crash.rip) if a is not None] if crash else []
    for rip, address in uses + o.writes:
        hit = near_host_value(o, address)
        if hit:
            return (rip, *hit)
    return None


def stack_fault(o: Observation) -> tuple[int, int] | None:
    """(value, slot) when the routine left its code through a RET that
    popped something other than the return address, or lost the slot."""
    if o.escape is not None:
        return o.escape
    if not o.returned and u64(o.frame_after, 0) != RETURN_TRAP:
        return u64(o.frame_after, 0), o.layout.entry_rsp
    return None


def how_it_ended(o: Observation) -> str:
    first = o.result.describe().splitlines()
    return first[0] if first else o.result.reason


def ending(o: Observation) -> str:
    """How far a run got, in the words a skip reason uses."""
    if not o.tdcalls:
        return "executed no TDCALL"
    if not o.vmcalls:
        return "executed no TDG.VP.VMCALL (see leaf)"
    if o.scenario.module_status:
        return "had the TDCALL failed by the module (by design of the run)"
    if not o.exited:
        return "had every TDCALL refused by the module (see mask-valid)"
    if o.exchange is None:
        return "had its last TDG.VP.VMCALL fail"
    if stack_fault(o):
        return "never returned to its caller: a RET popped the wrong slot (see stack)"
    if not o.returned:
        return f"did not return ({how_it_ended(o)})"
    return "returned"


def copies(c: Contract, o: Observation, t) -> bool:
    """Whether this run's outputs are copied back: by the flags word, or
    (copy_outputs = "on-success") when R10 came back 0."""
    return c.copy_outputs.holds(o.scenario.flags, t.after[abi.R10])


def callee_owned(c: Contract) -> set[int]:
    """Entry-RSP offsets the callee may write: the MS x64 shadow space and
    its stack-passed arguments."""
    return set(range(8, 8 + c.shadow_space, 8)) | {s.offset for s, _ in c.stack_args}


def padding_bytes(c: Contract) -> list[int]:
    """Offsets inside the struct that belong to no field."""
    used = {o + i for r, o in c.fields.items() for i in range(c.size(r))}
    used |= {f.offset + i for f in c.fixed for i in range(f.size)}
    return [i for i in range(c.struct_size) if i not in used]


def struct_as_expected(c: Contract, o: Observation, t, copy: bool) -> bool:
    """`o.struct_after == expected_struct(...)`, without building it: the
    output fields unpacked at once and compared with the TDCALL's outputs,
    every other byte (guards, inputs, fixed fields, padding) with the
    struct the run started from."""
    after, before = o.struct_after, o.values.struct
    layout = c.output_image if copy else None
    if layout is None:
        return after == expected_struct(c, o, t, copy)
    fields, outputs, kept, narrow = layout
    end = GUARD + c.struct_size
    if after[:GUARD] != before[:GUARD] or after[end:] != before[end:]:
        return False
    for low, high in kept:
        if after[GUARD + low:GUARD + high] != before[GUARD + low:GUARD + high]:
            return False
    want = outputs(t.after)
    if narrow:  # a narrow field takes the low bytes
        want = tuple(v & mask for v, mask in zip(want, narrow))
    return unpack_from(fields, after, GUARD) == want  # (struct caches the format)


def expected_struct(c: Contract, o: Observation, t, copy: bool) -> bytes:
    """The guarded struct as a correct stub leaves it: the inputs, with the
    outputs the TDCALL returned copied in when the contract copies."""
    if not copy:
        return o.values.struct
    struct = bytearray(o.values.struct)
    for r, offset, size in c.output_fields:
        at = GUARD + offset
        struct[at:at + size] = (t.after[r] & ((1 << 8 * size) - 1)).to_bytes(size, "little")
    return struct
