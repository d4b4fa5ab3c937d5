"""ReportFatalError's error-code and GPA rules, the sub-functions KVM does
not serve (WBINVD, PCONFIG, Service) and the KVM hypercalls (spec 4.3, 4.6,
5, 6.1), through the guest library's wrappers."""
from __future__ import annotations

import pytest

from tdxsim import VmResume
from tdxsim.events import MemoryConverted
from tdxsim.memory import Page

SUCCESS = 0x0000000000000000                 # spec 4.2
INVALID_OPERAND = 0x8000000000000000
SUBFUNC_UNSUPPORTED = 0x8000000000000003
KVM_ENOSYS = 0xFFFFFFFFFFFFFC18              # spec 5: -1000
KVM_EINVAL = 0xFFFFFFFFFFFFFFEA              # spec 5: -22
KVM_EOPNOTSUPP = 0xFFFFFFFFFFFFFFA1          # spec 5: -95
SHARED = 1 << 47
BUF = 0x200000
PV_UNHALT, PV_SEND_IPI, PV_SCHED_YIELD = 7, 11, 13  # kvm_para.h feature bits

FATAL_SRC = """
        .globl  fatal_code
# fatal_code(code, gpa): tdx_report_fatal_error_code with a fixed message
fatal_code:
        lea     msg(%rip), %rdx
        jmp     tdx_report_fatal_error_code
        .section .rodata
msg:    .asciz  "with a code"
"""


# --- ReportFatalError (spec 4.6) ---

def test_fatal_error_with_gpa(asm):
    """Bit 63 of the code makes R13 a GPA; message as usual."""
    td = asm(FATAL_SRC)
    result = td.call_result("fatal_code", 1 << 63 | 0x10000, 0x1234000)
    assert result.reason == "fatal"
    assert result.fatal.error_code == 1 << 63 | 0x10000
    assert result.fatal.gpa == 0x1234000 and result.fatal.message == "with a code"
    assert "GPA 0x1234000" in result.message


def test_fatal_error_without_bit63_has_no_gpa(asm):
    result = asm(FATAL_SRC).call_result("fatal_code", 0x20000, 0x1234000)
    assert result.reason == "fatal" and result.fatal.gpa is None


def test_fatal_error_code_with_bits_15_0_is_rejected_but_stops_the_td(asm):
    """Spec 4.6: QEMU rejects a code with bits 15:0 set and stops the VM
    anyway, without reading the message."""
    result = asm(FATAL_SRC).call_result("fatal_code", 1 << 63 | 0x7, 0x1234000)
    assert result.reason == "fatal"
    assert result.fatal.message == "" and result.fatal.gpa is None
    assert "bits 15:0" in result.message


# --- sub-functions KVM does not serve (spec 6.1 step 5) ---

WRAPPERS = [("tdx_wbinvd", 54, (1,)), ("tdx_pconfig", 65, (2, 3, 4, 5, 0)),
            ("tdx_service", 0x10005, (0x1000 | SHARED, 0x2000 | SHARED, 0x40, 100))]


@pytest.mark.parametrize("function,subfn,args", WRAPPERS, ids=[w[0] for w in WRAPPERS])
@pytest.mark.parametrize("host,status", [("kvm", SUBFUNC_UNSUPPORTED),
                                         ("kvm-legacy", INVALID_OPERAND)])
def test_unserved_subfunctions(probe, function, subfn, args, host, status):
    p = probe(host=host)
    result = p.td.call_result(function, *args)
    assert result.return_value == status
    [record] = result.exits
    assert record.exposed[11] == subfn
    assert record.exposed[12:12 + min(len(args), 4)] == args[:4]


@pytest.mark.parametrize("function,subfn,args", WRAPPERS, ids=[w[0] for w in WRAPPERS])
def test_registered_handler_serves_them(probe, function, subfn, args):
    p = probe()
    p.td.host.handlers[subfn] = lambda host, exit: VmResume.status(SUCCESS, r11=0x77)
    assert p.td.call(function, *args) == SUCCESS


def test_pconfig_output_in_r11(probe):
    p = probe()
    p.td.host.handlers[65] = lambda host, exit: VmResume.status(SUCCESS, r11=0x77)
    assert p.td.call("tdx_pconfig", 1, 0, 0, 0, BUF) == SUCCESS
    assert int.from_bytes(p.td.read(BUF, 8), "little") == 0x77


# --- KVM hypercalls (spec 5) ---

def kvm(p, nr, a0=0, a1=0, a2=0, a3=0):
    return p.td.call("tdx_kvm_hypercall", nr, a0, a1, a2, a3)


def enforce_without(p, feature):
    host = p.td.host
    host.enforce_pv_cpuid = True
    eax, ebx, ecx, edx = host.cpuid.lookup(0x4000_0001, 0)
    host.cpuid.set(0x4000_0001, 0, eax & ~(1 << feature), ebx, ecx, edx)


@pytest.mark.parametrize("nr,feature", [(5, PV_UNHALT), (11, PV_SCHED_YIELD)],
                         ids=["KICK_CPU", "SCHED_YIELD"])
def test_kick_cpu_and_sched_yield(probe, nr, feature):
    """Accepted (0) when the PV feature is there; -KVM_ENOSYS when user space
    enforces PV CPUID and the guest lacks the feature."""
    p = probe()
    assert kvm(p, nr, 0, 0) == 0
    enforce_without(p, feature)
    assert kvm(p, nr, 0, 0) == KVM_ENOSYS


def test_pv_features_are_advertised_in_cpuid(probe):
    eax = probe().td.host.cpuid.lookup(0x4000_0001, 0)[0]
    assert all(eax >> bit & 1 for bit in (PV_UNHALT, PV_SEND_IPI, PV_SCHED_YIELD))


def test_send_ipi_to_self_posts_the_vector(probe):
    """a0/a1 = APIC-ID bitmap from a2, a3 = ICR (fixed, vector 0x40): one
    vCPU reached, the vector pending."""
    p = probe()
    assert kvm(p, 10, 1, 0, 0, 0x40) == 1
    p.td.host.fire_due(p.td.now_ns())
    assert 0x40 in p.td.lapic.irr


@pytest.mark.parametrize("a0,a1,a2", [(0, 0, 0), (2, 0, 0), (1, 0, 1), (0, 1, 0)],
                         ids=["empty", "other-cpu", "min-above", "high-word"])
def test_send_ipi_to_nobody(probe, a0, a1, a2):
    p = probe()
    assert kvm(p, 10, a0, a1, a2, 0x40) == 0
    assert not p.td.lapic.irr


@pytest.mark.parametrize("icr", [0x40 | 1 << 11, 0x40 | 1 << 18, 0x40 | 3 << 18],
                         ids=["logical", "self-shorthand", "all-shorthand"])
def test_send_ipi_bad_icr_is_einval(probe, icr):
    assert kvm(probe(), 10, 1, 0, 0, icr) == KVM_EINVAL


def test_send_ipi_needs_pv_send_ipi_when_enforced(probe):
    p = probe()
    enforce_without(p, PV_SEND_IPI)
    assert kvm(p, 10, 1, 0, 0, 0x40) == KVM_ENOSYS


def test_clock_pairing_is_not_supported(probe):
    """No TSC-based host clocksource to pair with: -KVM_EOPNOTSUPP."""
    assert kvm(probe(), 9, BUF, 0) == KVM_EOPNOTSUPP


def test_map_gpa_range_converts(probe):
    """nr 12: a0 = GPA, a1 = pages, a2 bit 4 = to private; result in R10."""
    p = probe()
    assert kvm(p, 12, BUF, 2, 0) == 0
    assert {p.td.ram.state(BUF), p.td.ram.state(BUF + 0x1000)} == {Page.SHARED}
    assert kvm(p, 12, BUF, 2, 0x10) == 0
    assert p.td.ram.state(BUF) == Page.PENDING
    [event] = [e for e in p.td.events if isinstance(e, MemoryConverted)]
    assert (event.gpa, event.size, event.shared, event.ok) == (BUF, 0x2000, False, True)


@pytest.mark.parametrize("a0,a1", [(BUF + 8, 1), (BUF, 0), (0xFFFF_FFFF_FFFF_F000, (1 << 64) - (1 << 52) + 1)],
                         ids=["unaligned", "no-pages", "wrap"])
def test_map_gpa_range_checks(probe, a0, a1):
    p = probe()
    assert kvm(p, 12, a0, a1, 0) == KVM_EINVAL
    assert p.td.ram.state(BUF) == Page.PRIVATE


def test_map_gpa_range_to_private_outside_ram(probe):
    assert kvm(probe(), 12, 0x4000_0000 | SHARED, 1, 0x10) == KVM_EINVAL


def test_map_gpa_range_needs_the_user_exit(probe):
    p = probe()
    p.td.host.map_gpa_exit = False
    assert kvm(p, 12, BUF, 1, 0) == KVM_ENOSYS


def test_vapic_poll_irq_and_unknown(probe):
    p = probe()
    assert kvm(p, 1) == 0
    assert [kvm(p, nr) for nr in (2, 3, 4, 6, 7, 8, 13)] == [KVM_ENOSYS] * 7


def test_kvm_hypercalls_are_traced(probe):
    p = probe()
    result = p.td.call_result("tdx_kvm_hypercall", 11, 0, 0, 0, 0)
    [record] = result.exits
    assert record.name == "KVM_HC_SCHED_YIELD" and record.status == 0


def test_debug_exit_ignored_by_the_host_becomes_a_fatal_error(asm):
    """tdx_debug_exit does not return: a host that ignores the exit gets a
    ReportFatalError instead."""
    td = asm("""
        .globl _start
    _start:
        mov     $3, %edi
        call    tdx_debug_exit
    """)
    td.host.handlers[30] = lambda host, exit: VmResume.status(SUCCESS)
    result = td.run()
    assert result.reason == "fatal"
    assert result.fatal.message == "the host ignored the debug exit"
