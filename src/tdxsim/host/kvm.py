"""KVM hypercalls over TDG.VP.VMCALL: R10 = nr, R11..R14 = a0..a3, result in
R10 (spec 5; KVM's kvm_emulate_hypercall).  Unknown numbers, including
KVM_HC_FEATURES which x86 does not handle, give -KVM_ENOSYS."""
from __future__ import annotations

from .. import abi
from ..abi import KvmHc
from ..exits import VmExit, VmResume


def vapic_poll_irq(host, exit: VmExit) -> VmResume:
    return VmResume.status(0)


def handle_unknown(host, exit: VmExit) -> VmResume:
    return VmResume.status(abi.kvm_error(abi.KVM_ENOSYS))


HANDLERS = {
    KvmHc.VAPIC_POLL_IRQ: vapic_poll_irq,
}
