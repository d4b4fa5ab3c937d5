"""The values a checker run starts from, and what each one means.

Before each run every register, XMM and memory cell the stub can read gets
a distinctive value: secrets the host must never see, inputs it may see,
and markers the host writes back (spec 10 B1, B3).  Each value carries its
kind and index in both 32-bit halves, so a 32-bit copy is recognised too.
Addresses are secrets by range: the stack, the args struct, the return
address and the loaded code (a leaked code address defeats KASLR).
"""
from __future__ import annotations

from dataclasses import dataclass
from struct import Struct, error as StructError

from .. import abi
from ..exits import VmResume
from ..image import Image
from ..layout import RETURN_TRAP
from .contracts import Contract, Stack, reg_name
from .scenario import Scenario

SECRET, HOST, INPUT = 0x5EC7, 0xB057, 0x1A9C  # value kinds
XMM_BASE, POISON_BASE, GUARD_BASE, FRAME_BASE = 0x100, 0x200, 0x300, 0x400
POISON = 0x400  # bytes of poisoned, uninitialised stack below the entry RSP
GUARD = 64  # canary bytes on both sides of the args struct
ARGS_BELOW_TOP = 0x10000  # the args struct lives this far below the stack top
CALLER_FRAME = 0x100  # bytes above the return address: stack-passed arguments, the caller's
CALLER_RBP = 0xA0  # frame record, this far above the return address (past 16 arguments)
RFLAGS_AT_ENTRY = 0x2  # IF = 0: the caller runs with interrupts off
U64 = Struct("<Q")
FIELD = {1: Struct("<B"), 2: Struct("<H"), 4: Struct("<I"), 8: U64}  # a struct field by size
GPRS_FLAGS_RIP = Struct("<18Q")
GPRS = Struct("<16Q")


def pattern(kind: int, index: int) -> int:
    """Kind and index in both halves: 4 GiB apart from each other, so a
    fault address tells which one was used as a pointer."""
    return (kind << 16 | index) * (1 << 32 | 1)


def low_half_key(value: int) -> int | None:
    """The low 32 bits, when distinctive enough to recognise a truncated copy."""
    low = value & 0xFFFF_FFFF
    return low if low >= 0x10000 else None


@dataclass(frozen=True)
class Layout:
    entry_rsp: int  # the return-address slot
    caller_rbp: int  # the caller's frame: [rbp] = 0 ends the chain
    stack_low: int  # start of the poisoned stack
    stack_top: int
    args: int  # the args struct


class lazy:
    """Like functools.cached_property, without the lock it takes on every
    first access before Python 3.12."""

    def __init__(self, compute):
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.compute(obj)
        return value


_new, _set = object.__new__, object.__setattr__


class Values:
    """What one run starts from, and what each distinctive value means.

    entry: GPRs at entry, spec order; inputs: register -> the input value it
    must carry; xmm: XMM0..15, 16 bytes each; registers: the register file at
    entry (GPRs, RFLAGS, XMMs in RegisterBank order); struct: guard + args
    struct + guard; stack: stack_low .. stack_top; host_gprs, host_xmms and
    answer: the marker host's answer (host_image, host_mask and host: the
    same for the compiled path); secrets: value -> where it came from (secret_lows: by
    their low 32 bits); guest_known: values the guest itself holds (never
    host markers), and fuzzed: the fuzzed inputs it holds too; pointers:
    ranges that are guest addresses; frame_tail: the stack above the return
    address (the caller's frame), as the stack image holds it."""

    def __init__(self, entry: list[int], inputs: dict[int, int], xmm: bytes, registers: bytes,
                 struct: bytes, stack: bytes, host_gprs: dict[int, int],
                 host_xmms: dict[int, int], answer: VmResume, secrets: dict[int, str],
                 secret_lows: dict[int, str], guest_known: set[int],
                 pointers: tuple[tuple[int, int, str], ...], fuzzed: frozenset[int] = frozenset()):
        self.entry, self.inputs, self.xmm, self.registers = entry, inputs, xmm, registers
        self.struct, self.stack, self.host_gprs, self.host_xmms = struct, stack, host_gprs, host_xmms
        self.answer, self.secrets, self.secret_lows = answer, secrets, secret_lows
        self.guest_known, self.pointers, self.fuzzed = guest_known, pointers, fuzzed
        # No value below this is a secret or guest address (facts.origin): secret_lows
        # holds only keys of 0x10000 and more, so a smaller value's low half is none.
        self.origin_floor = min([0x10000, *secrets, *(low for low, _, _ in pointers)])
        # The answer as the compiled path takes it: 16 words and the mask of
        # those written, then the fuzzed ones (`host`) written over them.
        self.host_image = GPRS.pack(*(host_gprs.get(r, 0) for r in range(16)))
        self.host_mask = sum(1 << r for r in host_gprs)
        self.host: tuple[tuple[int, int], ...] = ()

    def fuzzed_copy(self, struct: bytes, fuzz: list, host: tuple) -> "Values":
        """These values with fuzzed struct inputs (`fuzz`, already packed
        into `struct`) and host answers: a copy of the references, with the
        pieces that change; what only some judges read is built when read
        (this runs once per fuzz execution)."""
        v, d = _new(Values), self.__dict__.copy()  # (a dict copy is a copy of its table)
        _set(v, "__dict__", d)
        d["_base"] = self
        if fuzz:
            d["inputs"] = inputs = self.inputs.copy()
            inputs.update(fuzz)
            d["struct"], d["_fuzz"] = struct, fuzz
            del d["fuzzed"]
        if host:
            d["host"] = host
            del d["host_gprs"], d["answer"]
        return v

    @lazy
    def fuzzed(self) -> frozenset[int]:
        return frozenset([value for _, value in self._fuzz])  # (copying guest_known costs more)

    @lazy
    def host_gprs(self) -> dict[int, int]:
        return {**self._base.host_gprs, **dict(self.host)}

    @lazy
    def answer(self) -> VmResume:
        return VmResume(gprs=self.host_gprs, xmms=self.host_xmms)

    def holds(self, value: int) -> bool:
        """Whether the guest itself holds this value (so it proves nothing)."""
        return value in self.guest_known or value in self.fuzzed

    def none_held(self, values: tuple[int, ...]) -> bool:
        """Whether none of these values can be a host-written one: each is
        below 0x10000 or one the guest holds (`holds`), in a few set
        operations instead of a loop."""
        rest = set(values).difference(self.guest_known)
        if rest and max(rest) >= 0x10000:
            rest.difference_update(self.fuzzed)
            return not rest or max(rest) < 0x10000
        return True


def register_image(gprs: list[int], rflags: int, xmm: bytes) -> bytes:
    """The register file at entry as the harness loads it: GPRs, RFLAGS,
    (RIP, unused) and the XMMs."""
    return GPRS_FLAGS_RIP.pack(*gprs, rflags, 0) + xmm


def code_extent(image: Image) -> tuple[int, int]:
    """The loaded image's code: any address in it is a code address."""
    segments = [s for s in image.segments if s.executable] or image.segments
    return (min(s.vaddr for s in segments),
            max(s.vaddr + max(s.memsz, len(s.data)) for s in segments))


class ValueFactory:
    """Builds each run's Values for one contract and layout: the base
    patterns once, then per scenario only the pieces that change."""

    def __init__(self, image: Image, contract: Contract, layout: Layout):
        self.image, self.contract, self.layout = image, contract, layout
        # Per input register: the mask of its width, and its place in the struct image.
        self._masks = {r: self._field_mask(r) for r in list(contract.fields) + list(contract.reg_args)}
        self._slots = {r: (GUARD + offset, FIELD[contract.size(r)])
                       for r, offset in contract.fields.items()}
        self._reg_args = frozenset(contract.reg_args)
        # Per struct field: its mask, its packer and where it goes in the struct image.
        self._fields = {r: (self._masks[r], self._slots[r][1].pack_into, self._slots[r][0])
                        for r in contract.fields}
        self._wide = {r: offset for r, (offset, field) in self._slots.items() if field is U64}
        self._base = self._make_base()
        self._by_flags: dict[int, Values] = {}

    def values(self, sc: Scenario) -> Values:
        """The base values with this scenario's flags and fuzzed values; only
        these few pieces change between runs."""
        flagged = self._by_flags.get(sc.flags)
        if flagged is None:
            flagged = self._by_flags[sc.flags] = self._with(sc.flags, (), ())
        inputs = sc.inputs
        if not (inputs or sc.host):
            return flagged
        if self._reg_args and any(r in self._reg_args for r, _ in inputs):  # entry registers
            masks = self._masks
            return self._with(sc.flags, [(r, v & masks.get(r, abi.MASK64)) for r, v in inputs],
                              sc.host)
        # Fuzzed struct fields and host answers only: the flags' entry state stays.
        struct, fuzzed = flagged.struct, inputs
        if inputs:
            struct = bytearray(struct)
            try:  # 8-byte fields: each value as it is, when it fits
                for r, value in inputs:
                    U64.pack_into(struct, self._wide[r], value)
            except (KeyError, StructError):  # a narrow field, another register, a wider value
                fuzzed = self._masked(struct, inputs)
            struct = bytes(struct)
        return flagged.fuzzed_copy(struct, fuzzed, sc.host)

    def _masked(self, struct: bytearray, inputs) -> list[tuple[int, int]]:
        """Each input zero-extended from its field's width (all 64 bits for
        a register outside the struct) and packed into the struct image."""
        fuzzed, fields = [], self._fields
        for r, value in inputs:
            field = fields.get(r)
            if field is None:
                fuzzed.append((r, value & abi.MASK64))
            else:
                value &= field[0]
                field[1](struct, field[2], value)
                fuzzed.append((r, value))
        return fuzzed

    def _with(self, flags: int, fuzzed: list, host: tuple) -> Values:
        c, base, lay = self.contract, self._base, self.layout
        inputs = {**base.inputs, **dict(fuzzed)} if fuzzed else base.inputs
        entry, stack = list(base.entry), base.stack
        placed = [(c.flags, flags)] if c.flags is not None else []
        placed += [(src, inputs[dst]) for dst, src in c.reg_args.items()]
        for loc, value in placed:
            if isinstance(loc, Stack):
                stack = stack if isinstance(stack, bytearray) else bytearray(stack)
                U64.pack_into(stack, lay.entry_rsp + loc.offset - lay.stack_low, value)
            else:
                entry[loc] = value
        stack = bytes(stack)
        struct = base.struct
        slots = [(self._slots[r], value) for r, value in fuzzed if r in self._slots]
        if slots:
            struct = bytearray(struct)
            for (offset, field), value in slots:
                field.pack_into(struct, offset, value)
            struct = bytes(struct)
        host_gprs = {**base.host_gprs, **dict(host)} if host else base.host_gprs
        values = Values(entry, inputs, base.xmm,
                        register_image(entry, RFLAGS_AT_ENTRY, base.xmm), struct,
                        stack, host_gprs, base.host_xmms,
                        VmResume(gprs=host_gprs, xmms=base.host_xmms) if host else base.answer,
                        base.secrets, base.secret_lows,
                        base.guest_known.union(inputs.values(), (flags,)), base.pointers)
        values.frame_tail = stack[lay.entry_rsp + 8 - lay.stack_low:]  # the caller's frame
        return values

    def _field_mask(self, register: int) -> int:
        """An input loaded from a narrow struct field arrives zero-extended."""
        c = self.contract
        return (1 << 8 * c.size(register)) - 1 if register in c.fields else abi.MASK64

    def _make_base(self) -> Values:
        c, lay = self.contract, self.layout
        inputs = {r: pattern(INPUT, r) & self._field_mask(r)
                  for r in list(c.fields) + list(c.reg_args)}
        entry = {r: pattern(SECRET, r) for r in range(16) if r != abi.RSP}
        secrets = {v: f"the caller's {reg_name(r)}" for r, v in entry.items()}
        carried = {abi.RBP: lay.caller_rbp}  # entry registers that carry no secret
        if c.args is not None:
            carried[c.args] = lay.args
        if c.flags is not None:
            carried[c.flags] = 0
        carried.update({src: inputs[dst] for dst, src in c.reg_args.items()})
        on_stack = {lay.entry_rsp + loc.offset: carried.pop(loc) for loc in list(carried)
                    if isinstance(loc, Stack)}
        for r, value in carried.items():
            secrets.pop(entry[r], None)
            entry[r] = value
        secrets[lay.args] = "the args pointer"
        secrets[RETURN_TRAP] = "the routine's return address"
        xmm = b""
        for j in range(16):
            value = pattern(SECRET, XMM_BASE + j)
            secrets[value] = f"the caller's XMM{j}"
            xmm += value.to_bytes(8, "little") * 2
        stack = self._stack_image(secrets, on_stack)
        struct = self._struct_image(inputs, secrets)
        host_gprs = {r: pattern(HOST, r) for r in range(abi.RDX, 16) if r != abi.RSP}
        host_xmms = {j: pattern(HOST, XMM_BASE + j) * (1 << 64 | 1) for j in range(16)}
        lows = {low_half_key(v): what for v, what in secrets.items() if low_half_key(v)}
        pointers = ((lay.stack_low - 0x1000, lay.stack_top, "a stack address"),
                    (lay.args - GUARD, lay.args + c.struct_size + GUARD,
                     "a pointer into the args struct"),
                    (RETURN_TRAP, RETURN_TRAP + 1, "the routine's return address"),
                    (*code_extent(self.image), "an address in the loaded code (defeats KASLR)"))
        known = set(entry.values()) | set(inputs.values()) | {lay.args} | set(on_stack.values())
        entry[abi.RSP] = lay.entry_rsp
        gprs = [entry[r] for r in range(16)]
        return Values(gprs, inputs, xmm, register_image(gprs, RFLAGS_AT_ENTRY, xmm),
                      struct, stack, host_gprs, host_xmms,
                      VmResume(gprs=host_gprs, xmms=host_xmms), secrets, lows, known, pointers)

    def _stack_image(self, secrets: dict[int, str], on_stack: dict[int, int]) -> bytes:
        lay = self.layout
        out = bytearray()
        for address in range(lay.stack_low, lay.stack_top, 8):
            slot = (address - lay.stack_low) // 8
            if address in on_stack:
                value = on_stack[address]  # a stack-passed argument
            elif lay.entry_rsp < address <= lay.entry_rsp + self.contract.shadow_space:
                value = pattern(SECRET, FRAME_BASE + slot)
                secrets[value] = "the shadow space (uninitialised)"
            elif address < lay.entry_rsp:
                value = pattern(SECRET, POISON_BASE + slot)
                secrets[value] = f"uninitialised stack (entry RSP-{lay.entry_rsp - address:#x})"
            elif address == lay.entry_rsp:
                value = RETURN_TRAP
            elif address in (lay.caller_rbp, lay.caller_rbp + 8):
                value = 0  # the caller's frame record: end of the RBP chain
            else:
                value = pattern(SECRET, FRAME_BASE + slot)
                secrets[value] = "the caller's stack frame"
            out += value.to_bytes(8, "little")
        return bytes(out)

    def _struct_image(self, inputs: dict[int, int], secrets: dict[int, str]) -> bytes:
        c = self.contract
        if not c.fields:
            return b""
        out = bytearray()
        for i, offset in enumerate(range(-GUARD, c.struct_size + GUARD, 8)):
            value = pattern(SECRET, GUARD_BASE + i)
            secrets[value] = ("memory next to the args struct" if not
                              0 <= offset < c.struct_size else "padding in the args struct")
            out += value.to_bytes(8, "little")
        fields = [(o, c.size(r), inputs[r]) for r, o in c.fields.items()]
        for offset, size, value in fields + [(f.offset, f.size, f.value) for f in c.fixed]:
            out[GUARD + offset:GUARD + offset + size] = value.to_bytes(size, "little")
        return bytes(out)
