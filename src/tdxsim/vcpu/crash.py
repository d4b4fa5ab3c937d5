"""Guest crash reports: reason, registers, disassembly around RIP, backtrace."""
from __future__ import annotations

from dataclasses import dataclass, field

from capstone import CS_ARCH_X86, CS_MODE_64, Cs

from .. import abi
from ..image import Image

_cs = Cs(CS_ARCH_X86, CS_MODE_64)


@dataclass
class CrashReport:
    reason: str
    rip: int
    where: str
    gprs: list[int]
    rflags: int
    disassembly: list[str] = field(default_factory=list)
    backtrace: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"guest crashed: {self.reason}", f"  at {self.where}", "", "  code:"]
        lines += [f"    {line}" for line in self.disassembly] or ["    (not readable)"]
        lines += ["", "  registers:"]
        for row in range(0, 16, 4):
            lines.append("    " + "  ".join(f"{abi.GPR_NAMES[i]:>3}={self.gprs[i]:#018x}"
                                              for i in range(row, row + 4)))
        lines.append(f"    rip={self.rip:#018x}  rflags={self.rflags:#x}")
        if self.backtrace:
            lines += ["", "  backtrace (frame pointers):"]
            lines += [f"    #{i} {frame}" for i, frame in enumerate(self.backtrace)]
        return "\n".join(lines)


def disassemble(read, image: Image | None, rip: int, before: int = 5, after: int = 3,
                mark: int | None = None) -> list[str]:
    """Instructions around rip, decoded from the start of the enclosing symbol
    (x86 cannot be decoded backwards reliably)."""
    mark = rip if mark is None else mark
    start = rip
    hit = image.symbol_at(rip) if image else None
    if hit is not None and hit[1] < 4096:
        start = rip - hit[1]
    code = read(start, rip - start + 16 * (after + 1))
    if not code:
        return []
    insns = list(_cs.disasm(code, start))
    at = next((i for i, insn in enumerate(insns) if insn.address >= rip), len(insns))
    if at == len(insns) or insns[at].address != rip:  # resync on rip itself
        insns = insns[:at] + list(_cs.disasm(read(rip, 16 * (after + 1)), rip))
    shown = insns[max(0, at - before): at + after + 1]
    out = []
    for insn in shown:
        where = image.describe(insn.address) if image else f"{insn.address:#x}"
        arrow = "=>" if insn.address == mark else "  "
        out.append(f"{arrow} {where}: {insn.bytes.hex(' '):<24} {insn.mnemonic} {insn.op_str}".rstrip())
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
        frames.append(image.describe(ret) if image else f"{ret:#x}")
        if next_rbp <= rbp:
            break
        rbp = next_rbp
    return frames
