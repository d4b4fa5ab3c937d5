"""GetTdVmCallInfo (R11 = 0x10000): R12 = leaf (spec 4.7, 13.1).

Leaf 0: SUCCESS with R11..R14 = 0 (all base calls supported).  Leaf 1: R11 =
bitmap of the optional calls this host serves, R12..R14 = 0; other leaves:
INVALID_OPERAND.  Current KVM forwards leaf 1 to user space and QEMU sets bit
1 (SetupEventNotifyInterrupt) only: GetQuote became a base call when the GHCI
was finalised ([QEMU] b57999bb, 55be385b).  The `kvm-legacy` personality
keeps the older answer with bit 0 for GetQuote.
"""
from __future__ import annotations

from .. import abi
from ..abi import SubFn, VmcallStatus
from ..exits import VmExit, VmResume

# Personalities whose leaf-1 bitmap still announces GetQuote (spec 13.1).
QUOTE_BIT_PERSONALITIES = frozenset({"kvm-legacy"})


def leaf1_bitmap(host) -> int:
    """The optional calls this host serves (the compiled path answers with
    the value this gives when a run starts: host/fast.c)."""
    quote = host.personality in QUOTE_BIT_PERSONALITIES and SubFn.GET_QUOTE in host.handlers
    notify = SubFn.SETUP_EVENT_NOTIFY_INTERRUPT in host.handlers
    return abi.TDVMCALLINFO_GET_QUOTE * quote | abi.TDVMCALLINFO_SETUP_EVENT_NOTIFY * notify


def handle(host, exit: VmExit) -> VmResume:
    if exit.r12 == 0:
        return VmResume.status(VmcallStatus.SUCCESS, r11=0, r12=0, r13=0, r14=0)
    if exit.r12 == 1:
        return VmResume.status(VmcallStatus.SUCCESS, r11=leaf1_bitmap(host), r12=0, r13=0, r14=0)
    return VmResume.status(VmcallStatus.INVALID_OPERAND)
