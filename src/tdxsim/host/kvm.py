"""KVM hypercalls over TDG.VP.VMCALL: R10 = nr, R11..R14 = a0..a3, result in
R10 (spec 5; KVM's __kvm_emulate_hypercall in arch/x86/kvm/x86.c).

KVM sees a TD at CPL 0 in 64-bit mode, so the CPL check (-KVM_EPERM) never
fires.  Unknown numbers, including KVM_HC_FEATURES which x86 does not handle,
give -KVM_ENOSYS; so do the PV calls whose feature the guest was not given,
when user space enforces PV CPUID.
"""
from __future__ import annotations

from .. import abi
from ..abi import KvmHc
from ..exits import VmExit, VmResume, Yield
from . import ipi, mapgpa

ENOSYS = abi.kvm_error(abi.KVM_ENOSYS)
EINVAL = abi.kvm_error(abi.KVM_EINVAL)


def pv_has(host, feature: int) -> bool:
    """guest_pv_has(): every feature counts unless PV CPUID is enforced."""
    if not host.enforce_pv_cpuid:
        return True
    return bool(host.cpuid.lookup(abi.KVM_CPUID_FEATURES, 0)[0] >> feature & 1)


def vapic_poll_irq(host, exit: VmExit) -> VmResume:
    return VmResume.status(0)


def kick_cpu(host, exit: VmExit) -> VmResume:
    """a0 = flags, a1 = APIC ID to wake from a PV halt: its PV-unhalt flag
    ends its halt, or makes its next HLT return at once (ipi.kick; KVM
    kvm_pv_kick_cpu_op).  Then KVM yields to it (sched_yield).  Returns 0
    whether or not a vCPU has that APIC ID."""
    if not pv_has(host, abi.KVM_FEATURE_PV_UNHALT):
        return VmResume.status(ENOSYS)
    if host.vcpu_of(exit.r12 & 0xFFFF_FFFF) != exit.vcpu:  # a kick of oneself: see ipi.kick
        ipi.kick(host, exit.r12 & 0xFFFF_FFFF)
    return _yield_to(host, exit.vcpu, exit.r12 & 0xFFFF_FFFF, VmResume.status(0))


def send_ipi(host, exit: VmExit) -> VmResume:
    """a0/a1 = bitmap of APIC IDs from a2 (64 per word), a3 = ICR (fixed or
    NMI, physical, no shorthand).  Returns how many vCPUs received it (KVM
    kvm_pv_send_ipi: bits naming no vCPU count nothing)."""
    if not pv_has(host, abi.KVM_FEATURE_PV_SEND_IPI):
        return VmResume.status(ENOSYS)
    low, high, first, icr = exit.r11, exit.r12, exit.r13 & 0xFFFF_FFFF, exit.r14
    if icr & (abi.ICR_DEST_LOGICAL | abi.ICR_SHORTHAND):
        return VmResume.status(EINVAL)
    bitmap = low | high << 64
    hit = [v.index for v in host.vcpus
           if 0 <= v.apic_id - first < 128 and bitmap >> (v.apic_id - first) & 1]
    for target in hit:
        ipi.deliver(host, target, icr & ~abi.ICR_SHORTHAND)
    return VmResume.status(len(hit))


def sched_yield(host, exit: VmExit) -> VmResume:
    """a0 = APIC ID to yield to (KVM kvm_sched_yield): the caller gives up
    the rest of its time slice when that vCPU exists and is not itself.
    tdxsim's scheduler (scheduler.py) ends the caller's quantum."""
    if not pv_has(host, abi.KVM_FEATURE_PV_SCHED_YIELD):
        return VmResume.status(ENOSYS)
    return _yield_to(host, exit.vcpu, exit.r11 & 0xFFFF_FFFF, VmResume.status(0))


def _yield_to(host, caller: int, apic_id: int, resume: VmResume) -> VmResume:
    target = host.vcpu_of(apic_id)
    if target is not None and target != caller:
        resume.action = Yield(target)
    return resume


def clock_pairing(host, exit: VmExit) -> VmResume:
    """a0 = GPA of the result, a1 = clock type.  KVM answers -KVM_EOPNOTSUPP
    unless the host clocksource is the TSC; tdxsim has no host wall clock to
    pair with (runs must not depend on it), so it always answers that."""
    return VmResume.status(abi.kvm_error(abi.KVM_EOPNOTSUPP))


def map_gpa_range(host, exit: VmExit) -> VmResume:
    """a0 = GPA, a1 = page count, a2 = attributes (bit 4: to private).  KVM
    checks, then QEMU converts the whole range at once.  Its GPA is taken as
    is: a range with the shared bit lies outside RAM, which QEMU ignores when
    converting to shared and refuses when converting to private.  A refusal
    returns -KVM_EINVAL [uncertain: current QEMU stops the VM instead]."""
    gpa, pages, attributes = exit.r11, exit.r12, exit.r13
    if not host.map_gpa_exit:
        return VmResume.status(ENOSYS)
    first = gpa >> 12
    if gpa % abi.PAGE_SIZE or not pages or (first + pages) & abi.MASK64 <= first:
        return VmResume.status(EINVAL)
    shared = not attributes & abi.KVM_MAP_GPA_RANGE_ENCRYPTED
    ok = mapgpa.convert(host, gpa, pages * abi.PAGE_SIZE, shared)
    return VmResume.status(0 if ok else EINVAL)


def handle_unknown(host, exit: VmExit) -> VmResume:
    return VmResume.status(ENOSYS)


HANDLERS = {
    KvmHc.VAPIC_POLL_IRQ: vapic_poll_irq,
    KvmHc.KICK_CPU: kick_cpu,
    KvmHc.CLOCK_PAIRING: clock_pairing,
    KvmHc.SEND_IPI: send_ipi,
    KvmHc.SCHED_YIELD: sched_yield,
    KvmHc.MAP_GPA_RANGE: map_gpa_range,
}
