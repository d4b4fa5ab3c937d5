"""Instruction.IO (R11 = 30): R12 = size, R13 = direction (0 = IN, 1 = OUT),
R14 = port, R15 = data for OUT; IN data comes back in R11 (spec 4.3, 6.2).

KVM rejects a size outside {1, 2, 4} or a direction outside {0, 1} with
INVALID_OPERAND (tdx_emulate_io).  A read from a port with no device returns
all ones, as an undriven ISA bus does on PCs.
"""
from __future__ import annotations

from .. import abi
from ..abi import VmcallStatus
from ..exits import GuestExit, VmExit, VmResume


def handle(host, exit: VmExit) -> VmResume:
    size, direction, port = exit.r12, exit.r13, exit.r14 & 0xFFFF
    if size not in abi.IO_SIZES or direction not in (abi.IO_READ, abi.IO_WRITE):
        return VmResume.status(VmcallStatus.INVALID_OPERAND)
    mask = (1 << 8 * size) - 1
    device = host.io_device(port)
    if direction == abi.IO_READ:
        value = device.read(port, size) if device else mask
        return VmResume.status(VmcallStatus.SUCCESS, r11=value & mask)
    effect = device.write(port, size, exit.r15 & mask) if device else None
    resume = VmResume.status(VmcallStatus.SUCCESS)
    if isinstance(effect, GuestExit):
        resume.action = effect
    return resume
