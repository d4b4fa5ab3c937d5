"""Guest crash reports: reason, registers, disassembly around RIP, backtrace."""
from __future__ import annotations

from dataclasses import dataclass, field

from capstone import CS_ARCH_X86, CS_MODE_32, CS_MODE_64, Cs

from .. import abi
from ..image import Image

_cs = {True: Cs(CS_ARCH_X86, CS_MODE_64), False: Cs(CS_ARCH_X86, CS_MODE_32)}


# The 16 GPRs (u64), four to a line: one %-format (the fuzzer renders
# thousands; str.format's #018x took about twice as long).
_REGISTERS = "\n".join("    " + "  ".join(f"{abi.GPR_NAMES[i]:>3}=0x%016x"
                                          for i in range(row, row + 4))
                       for row in range(0, 16, 4))


@dataclass
class CrashReport:
    reason: str
    rip: int
    where: str
    gprs: list[int]
    rflags: int
    disassembly: list[str] = field(default_factory=list)
    backtrace: list[str] = field(default_factory=list)
    address: int | None = None  # the faulting data address, when known

    def render(self) -> str:
        lines = [f"guest crashed: {self.reason}", f"  at {self.where}", "", "  code:"]
        lines += [f"    {line}" for line in self.disassembly] or ["    (not readable)"]
        lines += ["", "  registers:", _REGISTERS % tuple(self.gprs),
                  f"    rip={self.rip:#018x}  rflags={self.rflags:#x}"]
        if self.backtrace:
            lines += ["", "  backtrace (frame pointers):"]
            lines += [f"    #{i} {frame}" for i, frame in enumerate(self.backtrace)]
        return "\n".join(lines)


def decode(code: bytes, address: int, code64: bool = True):
    """(address, bytes, text) per instruction, as 64-bit or 32-bit code.
    Capstone does not know TDCALL, so it is decoded here; undecodable bytes
    show as '(bad)'."""
    cs = _cs[code64]
    offset = 0
    while offset < len(code):
        if code[offset:offset + 4] == abi.TDCALL_BYTES:
            yield address + offset, abi.TDCALL_BYTES, "tdcall"
            offset += 4
            continue
        insn = next(cs.disasm(code[offset:offset + 15], address + offset, 1), None)
        if insn is None:
            yield address + offset, code[offset:offset + 1], "(bad)"
            offset += 1
            continue
        yield insn.address, bytes(insn.bytes), f"{insn.mnemonic} {insn.op_str}".rstrip()
        offset += insn.size


def disassemble(read, image: Image | None, rip: int, before: int = 5, after: int = 3,
                mark: int | None = None, code64: bool = True) -> list[str]:
    """Instructions around rip, decoded from the start of the enclosing symbol
    (x86 cannot be decoded backwards reliably)."""
    mark = rip if mark is None else mark
    start = rip
    hit = image.symbol_at(rip) if image else None
    if hit is not None and hit[1] < 4096:
        start = rip - hit[1]
    insns = [i for i in decode(read(start, rip - start), start, code64)]
    if insns and insns[-1][0] + len(insns[-1][1]) != rip:
        insns = []  # decoding from the symbol did not land on rip
    shown = insns[-before:] if before else []
    shown += list(decode(read(rip, 16 * (after + 1)), rip, code64))[:after + 1]
    out = []
    for address, raw, text in shown:
        where = image.describe(address) if image else f"{address:#x}"
        arrow = "=>" if address == mark else "  "
        out.append(f"{arrow} {where}: {raw.hex(' '):<24} {text}")
    return out


def backtrace(read, image: Image | None, rbp: int, limit: int = 16) -> list[str]:
    """Walk the RBP chain: [rbp] = caller's rbp, [rbp+8] = return address."""
    frames = []
    for _ in range(limit):
        raw = read(rbp, 16) if rbp else b""
        if len(raw) != 16:
            break
        next_rbp = int.from_bytes(raw[:8], "little")
        ret = int.from_bytes(raw[8:], "little")
        if ret == 0:
            break
        frames.append(_return_site(image, ret))
        if next_rbp <= rbp:
            break
        rbp = next_rbp
    return frames


def _return_site(image: Image | None, ret: int) -> str:
    """Name the caller by ret - 1: a call that ends a function returns to
    the first byte of the next one."""
    hit = image.symbol_at(ret - 1) if image else None
    if hit is None:
        return f"{ret:#x}"
    return f"{ret:#x} <{hit[0]}+{hit[1] + 1:#x}>"
