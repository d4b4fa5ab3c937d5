"""Instruction.HLT (R11 = 12): R12 = interrupt-blocked flag (spec 4.3, 7).

The host answers SUCCESS and asks the TD loop to block the vCPU; whether a
pending interrupt wakes it depends on R12 (spec 7.4), decided there."""
from __future__ import annotations

from ..abi import VmcallStatus
from ..exits import Halt, VmExit, VmResume


def handle(host, exit: VmExit) -> VmResume:
    resume = VmResume.status(VmcallStatus.SUCCESS)
    resume.action = Halt(irq_blocked=exit.r12 != 0)
    return resume
