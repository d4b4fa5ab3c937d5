"""Interrupts between vCPUs, as KVM delivers them: x2APIC ICR writes (the
guest's WRMSR 0x830, which the TDX module turns into #VE and the guest into
a TDVMCALL), KVM_HC_SEND_IPI and KVM_HC_KICK_CPU (spec 5; SDM vol. 3
11.6.1, 11.12.9-10; KVM kvm_apic_send_ipi, kvm_pv_send_ipi,
kvm_pv_kick_cpu_op).

A TD has only posted interrupts (spec 13.1): a fixed IPI makes its vector
pending in the target's local APIC, an NMI IPI makes an NMI pending.  Both
arrive at the sender's virtual time (LocalApic.schedule), so a target whose
own clock is behind sees them when it gets there.  Whether they wake a
halted target is the wake rule of spec 7.4 (HostVcpu.wake_event).
"""
from __future__ import annotations

from .. import abi
from ..devices.lapic import NMI
from ..errors import TdxsimError


def targets(host, sender: int, icr: int) -> list[int]:
    """The vCPU indices an ICR value addresses."""
    shorthand = icr >> abi.ICR_SHORTHAND_SHIFT & 3
    everyone = range(len(host.vcpus))
    if shorthand == abi.ICR_SELF:
        return [sender]
    if shorthand == abi.ICR_ALL:
        return list(everyone)
    if shorthand == abi.ICR_OTHERS:
        return [i for i in everyone if i != sender]
    dest = icr >> abi.ICR_DEST_SHIFT
    ids = [(i, host.vcpus[i].apic_id) for i in everyone]
    if not icr & abi.ICR_DEST_LOGICAL:
        return list(everyone) if dest == 0xFFFF_FFFF else [i for i, a in ids if a == dest]
    cluster, members = dest >> abi.X2APIC_CLUSTER_SHIFT, dest & 0xFFFF
    return [i for i, a in ids if a >> 4 == cluster and members >> (a & 15) & 1]


def deliver(host, target: int, icr: int) -> None:
    """A fixed or NMI interrupt to one vCPU, at the sender's time.  Other
    delivery modes (SMI, INIT, SIPI, lowest priority) TDX does not offer a
    TD's vCPUs; tdxsim says so rather than guess."""
    mode = icr & abi.ICR_DELIVERY_MODE
    if mode not in (abi.ICR_MODE_FIXED, abi.ICR_MODE_NMI):
        raise TdxsimError(f"IPI delivery mode {mode >> 8} is not modelled by tdxsim "
                          "(fixed interrupts and NMIs are)")
    vector = NMI if mode == abi.ICR_MODE_NMI else icr & abi.ICR_VECTOR
    host.vcpus[target].lapic.schedule(host.clock.now(), vector)


def write_icr(host, sender: int, value: int) -> bool:
    """WRMSR 0x830 from vCPU `sender`: False (INVALID_OPERAND, as KVM
    answers a refused WRMSR) for reserved bits or an illegal vector."""
    if value & abi.ICR_RESERVED:
        return False
    if value & abi.ICR_DELIVERY_MODE == abi.ICR_MODE_FIXED and value & abi.ICR_VECTOR < 16:
        return True  # an illegal vector: the sender's APIC flags an error (SDM 11.5.3)
    for target in targets(host, sender, value):
        deliver(host, target, value)
    return True


def kick(host, apic_id: int) -> None:
    """KVM_HC_KICK_CPU: the target's PV-unhalt flag (KVM pv_unhalted) ends
    its halt, or its next one at once; nobody has an unknown APIC ID.  A
    vCPU that kicks itself is not running this (KVM would set its own flag;
    no guest does that, and host/kvm.c, which serves one-vCPU TDs, answers
    such a kick with 0 alone)."""
    target = host.vcpu_of(apic_id)
    if target is not None:
        host.vcpus[target].kicked = host.clock.now()
