"""TD-scope controls through TDG.VM.RD/WR and their effects (spec 13.2), and
the bundled `early-init` guest (Linux's tdx_setup).

Field IDs and bits: spec 13.2 ([LX-sh] asm/shared/tdx.h).  Write rules and
statuses: intel/tdx-module src/common/metadata_handlers/metadata_td.c,
md_td_write_element, case MD_TDCS_TD_CTLS_FIELD_ID: with LOCK set any change
is METADATA_FIELD_VALUE_NOT_VALID (0xC0000C0300000000); without
CONFIG_FLAGS.FLEXIBLE_PENDING_VE a change of PENDING_VE_DISABLE is
VALUE_NOT_VALID; REDUCE_VE turns on ENUM_TOPOLOGY and VIRT_CPUID2;
ENUM_TOPOLOGY without TOPOLOGY_ENUM_CONFIGURED is VALUE_NOT_VALID; a mask with
no writable bit is METADATA_FIELD_NOT_WRITABLE (0xC0000C0100000000).
TD build (tdh_mng_init.c) sets TD_CTLS.PENDING_VE_DISABLE from the
SEPT_VE_DISABLE attribute.  CPUID effects: src/td_dispatcher/vm_exits/
td_cpuid.c (leaf 2 needs VIRT_CPUID2; 0xB/0x1F need ENUM_TOPOLOGY, EDX =
x2APIC ID; 6, 0xC, 0x16, 0x17, 0x80000002-5 need REDUCE_VE; leaves outside
the module's table read as zeros under REDUCE_VE).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tdxsim import TD, TdConfig
from tdxsim.events import VeRaised
from tdxsim.image import bundled_guest
from tdxsim.toolchain import build

CONFIG_FLAGS = 0x1110_0003_0000_0016
TD_CTLS = 0x1110_0003_0000_0017
NOTIFY_ENABLES = 0x9100_0000_0000_0010
TOPOLOGY_ENUM_CONFIGURED = 0x9100_0000_0000_0019
FLEXIBLE_PENDING_VE, NO_RBP_MOD = 1 << 1, 1 << 2
PENDING_VE_DISABLE, ENUM_TOPOLOGY, VIRT_CPUID2, REDUCE_VE, LOCK = 1, 2, 4, 8, 1 << 63
SEPT_VE_DISABLE = 1 << 28
NOT_WRITABLE = 0xC000_0C01_0000_0000
VALUE_NOT_VALID = 0xC000_0C03_0000_0000
BUF = 0x200000


def rd(p, field):
    g = p.tdcall(rax=7, rcx=0, rdx=field).gprs
    return g["rax"], g["r8"]


def wr(p, field, value, mask):
    g = p.tdcall(rax=8, rcx=0, rdx=field, r8=value, r9=mask).gprs
    return g["rax"], g["r8"]


# --- the fields ---

def test_default_td_fields(probe):
    """KVM's default TD: NO_RBP_MOD and FLEXIBLE_PENDING_VE, x2APIC IDs
    configured, TD_CTLS 0 (SEPT_VE_DISABLE clear)."""
    p = probe()
    assert rd(p, CONFIG_FLAGS) == (0, FLEXIBLE_PENDING_VE | NO_RBP_MOD)
    assert rd(p, TD_CTLS) == (0, 0)
    assert rd(p, TOPOLOGY_ENUM_CONFIGURED) == (0, 1)


def test_td_build_copies_sept_ve_disable_into_td_ctls(probe):
    assert rd(probe(config=TdConfig(attributes=SEPT_VE_DISABLE)), TD_CTLS) == (0, PENDING_VE_DISABLE)


@pytest.mark.parametrize("field", [CONFIG_FLAGS, TOPOLOGY_ENUM_CONFIGURED])
def test_read_only_fields(probe, field):
    assert wr(probe(), field, 0, 0xFFFF_FFFF_FFFF_FFFF) == (NOT_WRITABLE, 0)


def test_pending_ve_disable_with_flexible_pending_ve(probe):
    """Linux disable_sept_ve(): WR(TD_CTLS, PENDING_VE_DISABLE, same mask);
    R8 = the old value."""
    p = probe()
    assert wr(p, TD_CTLS, PENDING_VE_DISABLE, PENDING_VE_DISABLE) == (0, 0)
    assert rd(p, TD_CTLS) == (0, PENDING_VE_DISABLE)
    assert wr(p, TD_CTLS, 0, PENDING_VE_DISABLE) == (0, PENDING_VE_DISABLE)


def test_pending_ve_disable_without_flexible_pending_ve(probe):
    p = probe(config=TdConfig(flexible_pending_ve=False))
    assert wr(p, TD_CTLS, PENDING_VE_DISABLE, PENDING_VE_DISABLE) == (VALUE_NOT_VALID, 0)
    assert rd(p, TD_CTLS) == (0, 0)
    assert wr(p, TD_CTLS, ENUM_TOPOLOGY, ENUM_TOPOLOGY) == (0, 0)  # other bits still may


def test_reduce_ve_implies_enum_topology_and_virt_cpuid2(probe):
    p = probe()
    assert wr(p, TD_CTLS, REDUCE_VE, REDUCE_VE) == (0, 0)
    assert rd(p, TD_CTLS) == (0, REDUCE_VE | ENUM_TOPOLOGY | VIRT_CPUID2)


@pytest.mark.parametrize("bit", [ENUM_TOPOLOGY, REDUCE_VE])
def test_topology_needs_the_vmm_configuration(probe, bit):
    p = probe(config=TdConfig(topology_enum_configured=False))
    assert rd(p, TOPOLOGY_ENUM_CONFIGURED) == (0, 0)
    assert wr(p, TD_CTLS, bit, bit) == (VALUE_NOT_VALID, 0)
    assert wr(p, TD_CTLS, VIRT_CPUID2, VIRT_CPUID2) == (0, 0)


def test_lock_freezes_td_ctls(probe):
    p = probe()
    assert wr(p, TD_CTLS, VIRT_CPUID2 | LOCK, VIRT_CPUID2 | LOCK) == (0, 0)
    assert wr(p, TD_CTLS, 0, VIRT_CPUID2) == (VALUE_NOT_VALID, 0)
    assert wr(p, TD_CTLS, VIRT_CPUID2, VIRT_CPUID2) == (0, VIRT_CPUID2 | LOCK)  # no change: fine
    assert rd(p, TD_CTLS) == (0, VIRT_CPUID2 | LOCK)


def test_reserved_td_ctls_bits(probe):
    """Bits outside the guest's write mask must keep their value."""
    p = probe()
    assert wr(p, TD_CTLS, 1 << 4, 1 << 4) == (NOT_WRITABLE, 0)
    assert wr(p, TD_CTLS, 1 << 4 | VIRT_CPUID2, 1 << 4 | VIRT_CPUID2) == (VALUE_NOT_VALID, 0)


# --- the effects ---

LOAD_SRC = """
        .text
        .globl  load
load:   mov     (%rdi), %rax
        ret
"""


def test_pending_ve_disable_turns_a_pending_access_into_an_exit(asm):
    """Spec 13.2: like SEPT_VE_DISABLE (spec 8.1): no #VE, KVM kills the TD."""
    td = asm(LOAD_SRC)
    assert td.call("__tdx_module_call", 8, 0, TD_CTLS, PENDING_VE_DISABLE, PENDING_VE_DISABLE, 0) == 0
    td.ram.convert(BUF, 0x1000, shared=True)
    td.ram.convert(BUF, 0x1000, shared=False)
    result = td.call_result("load", BUF + 8)
    assert result.reason == "crash" and not any(isinstance(e, VeRaised) for e in result.events)
    assert "GPA 0x200008" in result.message and "before accepting" in result.message


CPUID_SRC = """
        .text
        .globl  do_cpuid
do_cpuid:
        push    %rbx
        mov     %edi, %eax
        mov     %esi, %ecx
        cpuid
        mov     %edx, %eax
        pop     %rbx
        ret
"""


def cpuid_edx(td, leaf, subleaf=0):
    """EDX of CPUID(leaf) run natively, or 'VE' when the module raised #VE
    (there is no IDT, so the run stops)."""
    result = td.call_result("do_cpuid", leaf, subleaf)
    if any(isinstance(e, VeRaised) for e in result.events):
        return "VE"
    assert result.reason == "return", result.describe()
    return result.return_value


@pytest.mark.parametrize("ctls,leaf,native", [
    (0, 0xB, False), (ENUM_TOPOLOGY, 0xB, True), (ENUM_TOPOLOGY, 0x1F, True),
    (0, 0x2, False), (VIRT_CPUID2, 0x2, True), (ENUM_TOPOLOGY, 0x2, False),
    (0, 0x6, False), (VIRT_CPUID2 | ENUM_TOPOLOGY, 0x6, False), (REDUCE_VE, 0x6, True),
    (REDUCE_VE, 0x2, True), (REDUCE_VE, 0x1F, True), (REDUCE_VE, 0x8000_0002, True),
    (0, 0x18, False), (REDUCE_VE, 0x18, True),
])
def test_td_ctls_make_the_module_answer_cpuid(asm, ctls, leaf, native):
    td = asm(CPUID_SRC)
    if ctls:
        assert td.call("__tdx_module_call", 8, 0, TD_CTLS, ctls, ctls, 0) == 0
    edx = cpuid_edx(td, leaf)
    assert (edx != "VE") == native


def test_reduce_ve_reads_unknown_leaves_as_zero_and_topology_edx_is_the_x2apic_id(asm):
    td = asm(CPUID_SRC)
    assert td.call("__tdx_module_call", 8, 0, TD_CTLS, REDUCE_VE, REDUCE_VE, 0) == 0
    assert cpuid_edx(td, 0x18) == 0
    assert cpuid_edx(td, 0xB) == 0  # x2APIC ID of vCPU 0
    assert cpuid_edx(td, 0x4000_0000) == "VE"  # the hypervisor range always #VEs


# --- the bundled early-init guest ---

@pytest.fixture(scope="module")
def early_init():
    return build([bundled_guest("early-init")])


def test_early_init_on_the_default_td(early_init):
    td = TD(early_init)
    result = td.run()
    assert result.reason == "exit" and result.exit_code == 0, result.describe()
    assert "tdx: Guest detected, GPAW 48\n" in result.console
    assert "tdx: TD_CTLS.PENDING_VE_DISABLE set" in result.console
    assert "tdx: TD_CTLS: 0x000000000000000f\n" in result.console
    assert "CPUID(0xB) answered by the TDX module" in result.console
    assert td.module.td_ctls == PENDING_VE_DISABLE | ENUM_TOPOLOGY | VIRT_CPUID2 | REDUCE_VE
    assert td.module.notify_enables == 0


def test_early_init_without_sept_ve_disable_or_flexible_pending_ve(early_init):
    """Linux panics on a non-debug TD: 'TD misconfiguration: SEPT_VE_DISABLE
    attribute must be set.' (spec 13.2)."""
    result = TD(early_init, config=TdConfig(flexible_pending_ve=False)).run()
    assert result.reason == "fatal"
    assert result.fatal.message == "TD misconfiguration: SEPT_VE_DISABLE attribute must be set."


def test_early_init_with_the_attribute_and_no_flexibility(early_init):
    result = TD(early_init, config=TdConfig(flexible_pending_ve=False,
                                            attributes=SEPT_VE_DISABLE)).run()
    assert result.reason == "exit" and result.exit_code == 0
    assert "PENDING_VE_DISABLE set" not in result.console


def test_early_init_without_topology(early_init):
    result = TD(early_init, config=TdConfig(topology_enum_configured=False)).run()
    assert result.reason == "exit" and result.exit_code == 0
    assert "tdx: VMM did not configure X2APIC_IDs properly\n" in result.console
    assert "tdx: TD_CTLS: 0x0000000000000001\n" in result.console
