"""The host's side of several vCPUs: per-vCPU local APICs and MSRs, IPIs
through the x2APIC ICR (MSR 0x830), KVM_HC_SEND_IPI, KVM_HC_KICK_CPU,
KVM_HC_SCHED_YIELD, and the wake rule of a halted vCPU (spec 5, 7.4, 13.1;
SDM vol. 3 11.6.1, 11.12.9-10; KVM lapic.c, x86.c).  Expected values come
from those tables, not from running tdxsim."""
from __future__ import annotations

import pytest

from tdxsim.errors import TdxsimError
from tdxsim.exits import VmExit, Yield
from tdxsim.host import Host

SUCCESS, INVALID_OPERAND = 0, 0x8000000000000000          # spec 4.2
KVM_EINVAL = 0xFFFFFFFFFFFFFFEA                           # spec 5: -22
RDMSR, WRMSR = 31, 32                                     # spec 4.3
KICK_CPU, SEND_IPI, SCHED_YIELD = 5, 10, 11               # spec 5
ICR = 0x830
NMI = 2
R10, R11, R12, R13, R14 = 10, 11, 12, 13, 14


def exit_from(vcpu: int, **regs: int) -> VmExit:
    gprs = [0] * 16
    for name, value in regs.items():
        gprs[globals()[name.upper()]] = value
    return VmExit(0xFC00, 0, tuple(gprs), (0,) * 16, 0, vcpu)


def wrmsr(host, vcpu, index, value):
    return host.handle(exit_from(vcpu, r11=WRMSR, r12=index, r13=value)).gprs[R10]


def pending(host) -> list[set[int]]:
    """Each vCPU's pending vectors once the interrupts due now have arrived."""
    for i in range(len(host.vcpus)):
        host.fire_due(host.clock.now(), i)
    return [set(v.lapic.irr) for v in host.vcpus]


@pytest.fixture
def host():
    return Host("kvm", vcpus=4)


# --- the x2APIC ICR (SDM 11.12.9: destination 63:32, shorthand 19:18,
#     logical mode bit 11, delivery mode 10:8, vector 7:0) ---

def test_icr_fixed_physical_reaches_only_the_destination(host):
    assert wrmsr(host, 0, ICR, 2 << 32 | 0x41) == SUCCESS
    assert pending(host) == [set(), set(), {0x41}, set()]


@pytest.mark.parametrize("shorthand,expected", [(1, [1]), (2, [0, 1, 2, 3]), (3, [0, 2, 3])],
                         ids=["self", "all-including-self", "all-excluding-self"])
def test_icr_shorthands(host, shorthand, expected):
    assert wrmsr(host, 1, ICR, shorthand << 18 | 0x50) == SUCCESS
    assert [i for i, irr in enumerate(pending(host)) if 0x50 in irr] == expected


def test_icr_physical_broadcast_reaches_everyone(host):
    assert wrmsr(host, 3, ICR, 0xFFFF_FFFF << 32 | 0x60) == SUCCESS
    assert pending(host) == [{0x60}] * 4


def test_icr_logical_cluster_mode(host):
    """x2APIC logical ID: cluster = ID >> 4 in bits 31:16, bit ID & 15 in
    15:0 (SDM 11.12.10.2): cluster 0, bits 1 and 3 -> vCPUs 1 and 3."""
    assert wrmsr(host, 0, ICR, 0b1010 << 32 | 1 << 11 | 0x70) == SUCCESS
    assert pending(host) == [set(), {0x70}, set(), {0x70}]
    assert wrmsr(host, 0, ICR, (1 << 16 | 0b1010) << 32 | 1 << 11 | 0x71) == SUCCESS
    assert pending(host) == [set(), {0x70}, set(), {0x70}]  # cluster 1 is empty


def test_icr_nmi_makes_an_nmi_pending(host):
    assert wrmsr(host, 0, ICR, 1 << 32 | 0x400) == SUCCESS  # delivery mode 4 = NMI
    pending(host)
    assert [v.lapic.nmi_pending for v in host.vcpus] == [False, True, False, False]


def test_icr_to_an_absent_apic_id_reaches_nobody(host):
    assert wrmsr(host, 0, ICR, 9 << 32 | 0x41) == SUCCESS
    assert pending(host) == [set()] * 4


@pytest.mark.parametrize("bit", [13, 16, 17, 20, 31])
def test_icr_reserved_bits_are_refused(host, bit):
    """KVM X2APIC_ICR_RESERVED_BITS (31:20, 17:16, 13): the WRMSR fails,
    which a TDVMCALL reports as INVALID_OPERAND (spec 6.2)."""
    assert wrmsr(host, 0, ICR, 1 << 32 | 1 << bit | 0x41) == INVALID_OPERAND
    assert pending(host) == [set()] * 4


def test_icr_reads_back_without_the_busy_bit(host):
    assert wrmsr(host, 2, ICR, 1 << 32 | 1 << 12 | 0x41) == SUCCESS
    resume = host.handle(exit_from(2, r11=RDMSR, r12=ICR))
    assert resume.gprs[R11] == 1 << 32 | 0x41


def test_an_ipi_arrives_at_the_senders_time(host):
    """Delivered at the virtual time of the send: a target whose clock is
    behind sees it when it gets there."""
    host.clock.advance(500)
    assert wrmsr(host, 0, ICR, 1 << 32 | 0x41) == SUCCESS
    assert host.next_deadline(1) == 500
    assert host.fire_due(499, 1) == [] and host.fire_due(500, 1) == [("injected", 0x41)]


def test_per_vcpu_apic_timer_msrs(host):
    """Each vCPU's LVT timer is its own (MSR 0x832)."""
    assert wrmsr(host, 1, 0x832, 0x30) == SUCCESS
    assert host.vcpus[1].lapic.lvt_timer == 0x30
    assert host.vcpus[0].lapic.lvt_timer == 1 << 16  # masked, as at reset


def test_one_vcpu_host_is_vcpu_zero():
    host = Host()
    assert len(host.vcpus) == 1 and host.lapic is host.vcpus[0].lapic


# --- KVM_HC_SEND_IPI (a0/a1 = bitmap from a2, a3 = ICR) ---

def kvm(host, vcpu, nr, a0=0, a1=0, a2=0, a3=0):
    return host.handle(exit_from(vcpu, r10=nr, r11=a0, r12=a1, r13=a2, r14=a3))


def test_send_ipi_counts_the_vcpus_reached(host):
    """Bits 0, 2 and 5 from APIC ID 1: vCPUs 1 and 3 exist, 6 does not."""
    assert kvm(host, 0, SEND_IPI, 0b100101, 0, 1, 0x42).gprs[R10] == 2
    assert pending(host) == [set(), {0x42}, set(), {0x42}]


def test_send_ipi_high_word_starts_64_ids_later(host):
    assert kvm(host, 0, SEND_IPI, 0, 0b1, 0, 0x42).gprs[R10] == 0  # ID 64: nobody
    assert pending(host) == [set()] * 4


def test_send_ipi_nmi(host):
    assert kvm(host, 1, SEND_IPI, 0b1, 0, 0, 0x400).gprs[R10] == 1
    pending(host)
    assert host.vcpus[0].lapic.nmi_pending


@pytest.mark.parametrize("icr", [0x40 | 1 << 11, 0x40 | 1 << 18])
def test_send_ipi_refuses_logical_and_shorthand(host, icr):
    assert kvm(host, 0, SEND_IPI, 0b10, 0, 0, icr).gprs[R10] == KVM_EINVAL


def test_unmodelled_delivery_mode_is_a_clear_error(host):
    with pytest.raises(TdxsimError, match="delivery mode 5"):
        kvm(host, 0, SEND_IPI, 0b10, 0, 0, 0x500)  # INIT


# --- KVM_HC_KICK_CPU and KVM_HC_SCHED_YIELD ---

def test_kick_wakes_even_a_halt_with_interrupts_blocked(host):
    """KVM kvm_vcpu_has_events: pv_unhalted counts whatever R12 said; the
    flag is consumed by the wake."""
    resume = kvm(host, 0, KICK_CPU, 0, 2)
    assert resume.gprs[R10] == 0 and resume.action == Yield(2)
    assert host.vcpus[2].wake_event(irq_blocked=True) == "kick"
    assert host.vcpus[2].wake_event(irq_blocked=True) is None


def test_kick_of_an_unknown_apic_id_does_nothing(host):
    resume = kvm(host, 0, KICK_CPU, 0, 7)
    assert resume.gprs[R10] == 0 and resume.action is None
    assert all(v.kicked is None for v in host.vcpus)


@pytest.mark.parametrize("target,action", [(3, Yield(3)), (1, None), (9, None)],
                         ids=["other", "self", "absent"])
def test_sched_yield(host, target, action):
    resume = kvm(host, 1, SCHED_YIELD, target)
    assert resume.gprs[R10] == 0 and resume.action == action


# --- the wake rule (spec 7.4) ---

def test_wake_rule(host):
    vcpu = host.vcpus[1]
    assert vcpu.wake_event(irq_blocked=False) is None
    vcpu.lapic.post(0x41)
    assert vcpu.wake_event(irq_blocked=True) is None  # R12 != 0: interrupts do not wake
    assert vcpu.wake_event(irq_blocked=False) == 0x41
    vcpu.lapic.nmi_pending = True
    assert vcpu.wake_event(irq_blocked=True) == NMI  # an NMI always does


def test_event_notify_goes_to_the_registering_vcpu(host):
    """SetupEventNotifyInterrupt records (vector, APIC ID of the caller)
    (spec 4.7): the quote completion interrupts that vCPU."""
    assert host.handle(exit_from(2, r11=0x10004, r12=0x55)).gprs[R10] == SUCCESS
    assert host.notify_vcpu == 2


def test_the_hostile_host_injects_into_any_vcpu():
    """Issue 15: the hostile host may target any vCPU, not only the one
    that exited (here always vCPU 0, halting)."""
    host = Host("hostile", seed=3, vcpus=4)
    for _ in range(200):
        host.handle(exit_from(0, r11=12))  # Instruction.HLT
    later = host.clock.now() + 10**9
    targeted = {i for i in range(4) if any(src == "injected" for src, _ in host.fire_due(later, i))}
    assert len(targeted) > 1 and targeted - {0}
