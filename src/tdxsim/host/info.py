"""GetTdVmCallInfo (R11 = 0x10000): R12 = leaf (spec 4.7).

Leaf 0: SUCCESS with R11..R14 = 0 (all base calls supported).  Leaf 1: R11 =
bitmap of the optional calls this host serves (GetQuote bit 0,
SetupEventNotifyInterrupt bit 1), R12..R14 = 0.  Other leaves: INVALID_OPERAND.
"""
from __future__ import annotations

from .. import abi
from ..abi import SubFn, VmcallStatus
from ..exits import VmExit, VmResume


def handle(host, exit: VmExit) -> VmResume:
    if exit.r12 == 0:
        return VmResume.status(VmcallStatus.SUCCESS, r11=0, r12=0, r13=0, r14=0)
    if exit.r12 == 1:
        bitmap = (abi.TDVMCALLINFO_GET_QUOTE if SubFn.GET_QUOTE in host.handlers else 0) \
            | (abi.TDVMCALLINFO_SETUP_EVENT_NOTIFY
               if SubFn.SETUP_EVENT_NOTIFY_INTERRUPT in host.handlers else 0)
        return VmResume.status(VmcallStatus.SUCCESS, r11=bitmap, r12=0, r13=0, r14=0)
    return VmResume.status(VmcallStatus.INVALID_OPERAND)
