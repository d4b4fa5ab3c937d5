"""ReportFatalError (R11 = 0x10003): R12 = error code, R13 = GPA when R12
bit 63 is set; the message is up to 64 bytes packed 8 per register in the
order R14, R15, RBX, RDI, RSI, R8, R9, RDX (spec 4.6).  Like QEMU, only the
registers the guest selected contribute.  The TD stops; the call never returns.
QEMU rejects an error code with bits 15:0 set and stops the VM all the same.
"""
from __future__ import annotations

from .. import abi
from ..exits import FatalError, VmExit, VmResume


def decode_message(exit: VmExit) -> str:
    raw = b"".join(exit.reg(r).to_bytes(8, "little")
                   for r in abi.FATAL_MESSAGE_REGS if exit.selected(r))
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def handle(host, exit: VmExit) -> VmResume:
    if exit.r12 & abi.FATAL_CODE_RESERVED:  # QEMU stops the VM without reading on
        return VmResume(action=FatalError(exit.r12, "", None, note=(
            "the host rejected the error code: bits 15:0 must be 0 (spec 4.6); "
            "the message and GPA were not read")))
    gpa = exit.r13 if exit.r12 & abi.FATAL_GPA_VALID else None
    return VmResume(action=FatalError(exit.r12, decode_message(exit), gpa))
