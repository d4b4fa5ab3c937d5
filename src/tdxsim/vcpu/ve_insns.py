"""The instructions the TDX module intercepts inside a TD (spec 8.1): HLT, IN,
OUT, INS, OUTS, CPUID, RDMSR, WRMSR.  Finding them in guest code and decoding
them, with any legal combination of prefixes (tests/test_rel_decode.py holds
the decoder to Capstone's and Unicorn's).

They must never execute natively: an intercepted instruction is fault-like,
so it may have no side effect before the module decides (#VE, #GP or native
emulation).  tdxsim therefore stops the vCPU *before* each one, with a code
hook on it (spec 12; vcpu/traps.c), placed when the translation block that
holds it is decoded, before that block first runs (code_traps.block_traps).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

# Legacy prefixes that may precede these instructions (Intel SDM vol. 2,
# 2.1.1): operand/address size, REP/REPNE, segment overrides.  LOCK is left
# out: LOCK with any of them is #UD, which Unicorn raises itself.
_LEGACY = frozenset(b"\x66\x67\xf2\xf3\x2e\x36\x3e\x26\x64\x65")
_PREFIXES = _LEGACY | frozenset(range(0x40, 0x50))  # REX: 64-bit code only
_ONE_BYTE = {0xE4, 0xE5, 0xE6, 0xE7, 0xEC, 0xED, 0xEE, 0xEF, 0x6C, 0x6D, 0x6E, 0x6F}
_TWO_BYTE = {b"\x0f\xa2": "cpuid", b"\x0f\x32": "rdmsr", b"\x0f\x30": "wrmsr",
             b"\x0f\x31": "rdtsc"}
# Not intercepted by the module, but emulated by the vCPU, so they stop it
# the same way: Unicorn hides the STI shadow and its RDTSC reads the host's
# clock (spec 12).
VCPU_EMULATED = frozenset({"sti", "rdtsc"})
_STI, _HLT = 0xFB, 0xF4
_MAX_PREFIXES = 14
_MAX_LENGTH = 15  # longer is #UD (SDM vol. 2, 2.3.11)
# Segment register numbers of the VM-exit instruction information (SDM vol. 3, Table 28-8)
_SEGMENTS = {0x26: 0, 0x2E: 1, 0x36: 2, 0x3E: 3, 0x64: 4, 0x65: 5}


@dataclass(frozen=True)
class Insn:
    """A decoded intercepted instruction.  For I/O: `size` in bytes, `port`
    (None: in DX), `string` (INS/OUTS), `rep`, `address_size` (64 or 32) and
    `segment` (the memory operand's segment register number)."""
    kind: str  # 'hlt', 'in', 'out', 'cpuid', 'rdmsr', 'wrmsr'; 'sti', 'rdtsc' (VCPU_EMULATED)
    length: int
    size: int = 0
    port: int | None = None
    string: bool = False
    rep: bool = False
    address_size: int = 64  # 64, 32 or 16
    segment: int = 3


# Besides STI, only POPF and IRET can set IF at CPL 0 in 64-bit mode
# (SDM vol. 3, 6.8.1): an interrupt waiting for IF = 1 needs a stop there.
_IF_SETTERS = frozenset({0x9D, 0xCF})  # POPF, IRET


def is_if_setter(code: bytes, code64: bool = True) -> bool:
    """Whether the instruction at the start of `code` is a POPF or an IRET."""
    i = _prefix_end(code, code64)
    return i < len(code) and code[i] in _IF_SETTERS


def _prefix_end(code: bytes, code64: bool) -> int:
    """Where the opcode starts, after the prefixes (REX only in 64-bit code:
    0x40-0x4F are INC/DEC in 32-bit code)."""
    prefixes = _PREFIXES if code64 else _LEGACY
    i = 0
    while i < len(code) and code[i] in prefixes and i < _MAX_PREFIXES:
        i += 1
    return i


def decode(code: bytes, code64: bool | Callable[[], bool] = True) -> Insn | None:
    """Decode the instruction at the start of `code` (64-bit or 32-bit code);
    None if it is not one of the intercepted instructions (or longer than an
    instruction can be).  code64 may be a function, asked only when the
    mode changes the decoding (finding the mode reads the GDT)."""
    if callable(code64):
        code64 = code64() if _mode_matters(code) else True
    insn = _decode(code, code64)
    return insn if insn is None or insn.length <= _MAX_LENGTH else None


def _mode_matters(code: bytes) -> bool:
    """Bytes 0x40-0x4F in the prefixes (REX, or INC/DEC in 32-bit code) and
    the address size of INS/OUTS depend on the mode; nothing else here does."""
    for byte in code[:_MAX_PREFIXES + 1]:
        if byte not in _LEGACY:
            return 0x40 <= byte <= 0x4F or 0x6C <= byte <= 0x6F
    return True


@functools.lru_cache(maxsize=4096)  # a hot loop's #VE decodes the same bytes each time
def _decode(code: bytes, code64: bool) -> Insn | None:
    i = _prefix_end(code, code64)
    prefixes = code[:i]
    opsize16, addr32 = 0x66 in prefixes, 0x67 in prefixes
    rep = 0xF2 in prefixes or 0xF3 in prefixes
    segment = None
    for prefix in prefixes:  # the last segment override counts
        segment = _SEGMENTS.get(prefix, segment)
    if code[i:i + 2] in _TWO_BYTE:
        return Insn(_TWO_BYTE[code[i:i + 2]], i + 2)
    if code[i:i + 1] == bytes([_STI]):
        return Insn("sti", i + 1)
    if code[i:i + 1] == bytes([_HLT]):
        return Insn("hlt", i + 1)
    if i >= len(code) or code[i] not in _ONE_BYTE:
        return None
    op = code[i]
    wide = op & 1  # odd opcodes move 16/32 bits, even ones 8
    size = (2 if opsize16 else 4) if wide else 1
    kind = "in" if op in (0xE4, 0xE5, 0xEC, 0xED, 0x6C, 0x6D) else "out"
    if op in (0xE4, 0xE5, 0xE6, 0xE7):  # port in an imm8
        if i + 1 >= len(code):
            return None
        return Insn(kind, i + 2, size, code[i + 1])
    if op >= 0xEC:  # port in DX
        return Insn(kind, i + 1, size)
    segment = 0 if kind == "in" else (3 if segment is None else segment)  # INS always uses ES
    address_size = (32 if addr32 else 64) if code64 else (16 if addr32 else 32)
    return Insn(kind, i + 1, size, None, True, rep, address_size, segment)
