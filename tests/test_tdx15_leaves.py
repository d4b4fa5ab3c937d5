"""TDX 1.5 guest leaves (spec 13.2): TDG.VP.RD/WR (9/10), TDG.SYS.RD/RDALL
(11/12), TDG.MEM.PAGE.ATTR.RD/WR (23/24), each with success and every error
status the module source gives for a TD without L2 VMs, and the TD
partitioning leaves (25-27), which tdxsim does not model.

Sources (intel/tdx-module): src/td_dispatcher/vm_exits/tdg_vp_rd_wr.c (RCX
must be 0 -> OPERAND_INVALID(RCX); a null field ID -> FIRST_FIELD_ID_IN_
CONTEXT), tdg_sys_rd.c, tdg_sys_rdall.c (the list GPA: 4 KiB aligned,
private -> else OPERAND_INVALID(RDX)), tdg_mem_page_attr_rd.c and
tdg_mem_page_attr_wr.c (per-VM attribute words must be 0 for VM 0 and VMs
that do not exist -> OPERAND_INVALID(RDX)/(R8); page info -> OPERAND_
INVALID(RCX); a non-leaf entry -> PAGE_SIZE_MISMATCH | level; PENDING in bit
62 of gpa_mapping_and_flags_t); include/auto_gen/tdvps_fields_lookup.c
(CPUID_CONTROL 0xA120000000000000, guest write mask 3).  Statuses: spec 2.2
and tdx_error_codes_defs.h.  SYS field IDs: Linux arch/x86/virt/vmx/tdx/tdx.h.
"""
from __future__ import annotations

import struct

import pytest

from tdxsim.events import MemoryConverted, VeRaised
from tdxsim.memory import Page

OPERAND_INVALID = 0xC000_0100_0000_0000
RCX, RDX, R8 = 1, 2, 8
FIELD_ID_INCORRECT = 0xC000_0C00_0000_0000
NOT_WRITABLE = 0xC000_0C01_0000_0000
VALUE_NOT_VALID = 0xC000_0C03_0000_0000
FIRST_FIELD_ID = 0x0000_0C0B_0000_0000
PAGE_SIZE_MISMATCH = 0xC000_0B0B_0000_0000
NA = 0xFFFF_FFFF_FFFF_FFFF
VENDOR_ID, BUILD_DATE = 0x0800_0002_0000_0000, 0x8800_0002_0000_0001
TDX_FEATURES0 = 0x0A00_0003_0000_0008
CPUID_CONTROL = 0xA120_0000_0000_0000
SHARED = 1 << 47
PAGE = 0x200000
PENDING = 1 << 62


def call(p, **regs):
    g = p.tdcall(**regs).gprs
    return g["rax"], g["rcx"], g["rdx"], g["r8"]


def ardx8(p, **regs):
    """(RAX, RDX, R8) after the TDCALL: status, next field ID, value."""
    rax, _, rdx, r8 = call(p, **regs)
    return rax, rdx, r8


# --- TDG.SYS.RD (11) ---

def test_sys_rd_vendor_and_next_id(probe):
    assert ardx8(probe(), rax=11, rdx=VENDOR_ID) == (0, BUILD_DATE, 0x8086)


def test_sys_rd_features0_has_enum_topology(probe):
    status, _, _, value = call(probe(), rax=11, rdx=TDX_FEATURES0)
    assert status == 0 and value & 1 << 20


def test_sys_rd_null_field_gives_the_first(probe):
    assert ardx8(probe(), rax=11, rdx=NA) == (FIRST_FIELD_ID, VENDOR_ID, 0)


@pytest.mark.parametrize("field", [0x0800_0002_0000_0077, VENDOR_ID | 1 << 62])
def test_sys_rd_unknown_or_malformed(probe, field):
    assert ardx8(probe(), rax=11, rdx=field) == (FIELD_ID_INCORRECT, NA, 0)


# --- TDG.SYS.RDALL (12) ---

def test_sys_rdall_writes_the_list(probe):
    p = probe()
    status, _, _, r8 = call(p, rax=12, rdx=PAGE, r8=NA)
    assert (status, r8) == (0, NA)
    used, sequences, _ = struct.unpack("<HHI", p.td.read(PAGE, 8))
    assert sequences == 9 and used == 8 + 9 * 16
    header, value = struct.unpack("<QQ", p.td.read(PAGE + 8, 16))
    assert (header, value) == (VENDOR_ID, 0x8086)


@pytest.mark.parametrize("gpa", [PAGE + 8, PAGE | SHARED, 1 << 48])
def test_sys_rdall_bad_list_gpa(probe, gpa):
    assert call(probe(), rax=12, rdx=gpa, r8=NA)[0::3] == (OPERAND_INVALID | RDX, NA)


def test_sys_rdall_unknown_first_field(probe):
    assert call(probe(), rax=12, rdx=PAGE, r8=0x0800_0002_0000_0077)[0] == FIELD_ID_INCORRECT


# --- TDG.VP.RD / TDG.VP.WR (9 / 10) ---

def test_vp_rd_wr_cpuid_control_and_its_effect(asm):
    """Writing CPUID_CONTROL[0] bit 0 makes CPUID(0) at CPL 0 raise #VE."""
    from conftest import PROBE_SRC
    from conftest import Probe
    p = Probe(asm(PROBE_SRC + "\n.text\n.globl do_cpuid\ndo_cpuid: xor %eax, %eax\n"
                  "xor %ecx, %ecx\ncpuid\nret\n"))
    assert ardx8(p, rax=9, rcx=0, rdx=CPUID_CONTROL) == (0, CPUID_CONTROL | 1, 0)
    assert call(p, rax=10, rcx=0, rdx=CPUID_CONTROL, r8=1, r9=3)[0::3] == (0, 0)
    assert call(p, rax=9, rcx=0, rdx=CPUID_CONTROL)[0::3] == (0, 1)
    result = p.td.call_result("do_cpuid")
    assert any(isinstance(e, VeRaised) for e in result.events)


def test_vp_rd_wr_rcx_must_be_zero(probe):
    p = probe()
    assert ardx8(p, rax=9, rcx=1, rdx=CPUID_CONTROL) == (OPERAND_INVALID | RCX, NA, 0)
    assert call(p, rax=10, rcx=1, rdx=CPUID_CONTROL, r8=1, r9=1)[0::3] == (OPERAND_INVALID | RCX, 0)


def test_vp_rd_null_and_unknown(probe):
    p = probe()
    assert ardx8(p, rax=9, rcx=0, rdx=NA) == (FIRST_FIELD_ID, CPUID_CONTROL, 0)
    assert ardx8(p, rax=9, rcx=0, rdx=0x1020_0003_0000_0000) == (FIELD_ID_INCORRECT, NA, 0)
    assert call(p, rax=10, rcx=0, rdx=0x1020_0003_0000_0000, r8=1, r9=1)[0] == FIELD_ID_INCORRECT


def test_vp_wr_mask_rules(probe):
    p = probe()
    assert call(p, rax=10, rcx=0, rdx=CPUID_CONTROL, r8=4, r9=4)[0::3] == (NOT_WRITABLE, 0)
    assert call(p, rax=10, rcx=0, rdx=CPUID_CONTROL, r8=5, r9=7)[0::3] == (VALUE_NOT_VALID, 0)


# --- TDG.MEM.PAGE.ATTR.RD (23) ---

def test_attr_rd_private_and_pending(probe):
    p = probe()
    assert call(p, rax=23, rcx=PAGE + 0x123)[:3] == (0, PAGE, 0)
    p.td.ram.convert(PAGE, 0x1000, shared=True)
    p.td.ram.convert(PAGE, 0x1000, shared=False)
    assert call(p, rax=23, rcx=PAGE)[:3] == (0, PAGE | PENDING, 0)


@pytest.mark.parametrize("gpa", [PAGE | SHARED, 1 << 48])
def test_attr_rd_invalid_gpa(probe, gpa):
    assert call(probe(), rax=23, rcx=gpa)[:3] == (OPERAND_INVALID | RCX, 0, 0)


def test_attr_rd_of_a_shared_page_exits_to_the_host(probe):
    """Nothing mapped privately: an EPT-violation exit; KVM/QEMU convert the
    page (implicitly) and the TDCALL runs again: now pending."""
    p = probe()
    p.td.ram.convert(PAGE, 0x1000, shared=True)
    after = p.tdcall(rax=23, rcx=PAGE)
    assert (after.gprs["rax"], after.gprs["rcx"]) == (0, PAGE | PENDING)
    assert [e.implicit for e in after.result.events if isinstance(e, MemoryConverted)] == [True]
    assert p.td.ram.state(PAGE) == Page.PENDING


# --- TDG.MEM.PAGE.ATTR.WR (24) ---

def test_attr_wr_success(probe):
    p = probe()
    assert call(p, rax=24, rcx=PAGE, rdx=0, r8=0)[:3] == (0, PAGE, 0)


@pytest.mark.parametrize("rdx,r8,status", [
    (1, 0, OPERAND_INVALID | RDX), (0, 1, OPERAND_INVALID | R8),
    (1 << 16, 0, OPERAND_INVALID | RDX), (0, 1 << 48, OPERAND_INVALID | R8),
    (1 << 16, 1, OPERAND_INVALID | R8),  # VM 0's mask is checked before VM 1's attributes
], ids=["attr-vm0", "mask-vm0", "attr-vm1", "mask-vm3", "order"])
def test_attr_wr_attributes_must_be_zero(probe, rdx, r8, status):
    assert call(probe(), rax=24, rcx=PAGE, rdx=rdx, r8=r8)[:3] == (status, 0, 0)


@pytest.mark.parametrize("rcx", [PAGE | 3, PAGE | 1 << 4, PAGE | 1 << 52, PAGE + 0x1000 | 1,
                                 PAGE | SHARED, 1 << 48])
def test_attr_wr_bad_page_info(probe, rcx):
    assert call(probe(), rax=24, rcx=rcx, rdx=0, r8=0)[:3] == (OPERAND_INVALID | RCX, 0, 0)


def test_attr_wr_2m_over_4k_pages_is_size_mismatch(probe):
    assert call(probe(), rax=24, rcx=PAGE | 1, rdx=0, r8=0)[0] == PAGE_SIZE_MISMATCH | 1


# --- TD partitioning (25-27) ---

@pytest.mark.parametrize("leaf,name", [(25, "VP.ENTER"), (26, "VP.INVEPT"), (27, "VP.INVVPID")])
def test_td_partitioning_leaves_are_not_modelled(probe, leaf, name):
    result = probe().td.call_result("probe", regs={"rax": leaf})
    assert result.reason == "error" and f"TDG.{name}" in result.message
    assert "not modelled" in result.message
