"""The KVM-style host, the instruction sub-functions: CPUID, IO, RDMSR/WRMSR,
#VE.RequestMMIO and HLT through real guest TDCALLs (spec 4.3, 7).  `p.vmcall(...)`
runs `tdcall; ret` with the given registers and mask 0xFC00 (R10-R15) unless
RCX is given.  The services, KVM hypercalls and user handlers are in
test_host_ghci_services.py."""
from __future__ import annotations

import pytest

from tdxsim import TdConfig

SUCCESS = 0x0000000000000000           # spec 4.2
INVALID_OPERAND = 0x8000000000000000   # spec 4.2
SHARED = 1 << 47                       # spec 1.3/4.4: BIT(GPAW - 1), GPAW 48
MMIO_DEV = 0xFEB00000                  # tdxsim's test device (brief)
BUF = 0x200000                         # scratch guest memory


def ghci(p, subfn, *args, **regs):
    """Standard GHCI call: R10 = 0, R11 = subfn, R12.. = args."""
    names = ("r12", "r13", "r14", "r15")
    return p.vmcall(r10=0, r11=subfn, **dict(zip(names, args)), **regs)


# --- Instruction.CPUID (R11 = 10) ---

def test_cpuid_leaf0_vendor(probe):
    """Spec 4.3: CPUID R12 = leaf, R13 = sub-leaf -> R12..R15 = EAX, EBX, ECX,
    EDX.  Leaf 0's vendor is EBX:EDX:ECX (SDM)."""
    g = ghci(probe(), 10, 0, 0).gprs
    assert g["r10"] == SUCCESS
    vendor = b"".join(g[r].to_bytes(4, "little") for r in ("r13", "r15", "r14"))
    assert vendor == b"GenuineIntel"


def test_cpuid_override(probe):
    """Spec 4.3: the host's CPUID table value comes back in R12..R15."""
    p = probe()
    p.td.host.cpuid.set(0x4000_0001, 0, 0x11, 0x22, 0x33, 0x44)
    p.td.host.cpuid.set(0x7, 1, 0xA1, 0xB1, 0xC1, 0xD1)
    g = ghci(p, 10, 0x4000_0001, 0).gprs
    assert (g["r10"], g["r12"], g["r13"], g["r14"], g["r15"]) == (0, 0x11, 0x22, 0x33, 0x44)
    g = ghci(p, 10, 0x7, 1).gprs
    assert (g["r12"], g["r13"], g["r14"], g["r15"]) == (0xA1, 0xB1, 0xC1, 0xD1)


def test_cpuid_library_wrapper(probe):
    """tdx_cpuid(leaf, subleaf, u32 out[4]) stores EAX, EBX, ECX, EDX."""
    p = probe()
    p.td.host.cpuid.set(0x4000_0001, 0, 0x11, 0x22, 0x33, 0x44)
    assert p.td.call("tdx_cpuid", 0x4000_0001, 0, BUF) == SUCCESS
    assert p.td.read(BUF, 16) == bytes.fromhex("11000000 22000000 33000000 44000000")


# --- Instruction.IO (R11 = 30) ---

def test_io_out_direction_1_writes_serial(probe):
    """Spec 4.3 / B8: R13 = 1 is OUT.  A byte OUT to COM1 (0x3F8) reaches the
    console."""
    p = probe()
    after = ghci(p, 30, 1, 1, 0x3F8, ord("A"))
    assert after.gprs["r10"] == SUCCESS
    assert p.td.console == "A" and after.result.console == "A"


def test_io_in_direction_0_reads(probe):
    """Spec 4.3 / B8: R13 = 0 is IN: data comes back in R11, nothing is
    written to the device (THR stays untouched)."""
    p = probe()
    after = ghci(p, 30, 1, 0, 0x3F8, ord("X"))
    assert after.gprs["r10"] == SUCCESS
    assert after.result.console == ""


def test_io_serial_lsr_reports_transmitter_ready(probe):
    """IN from COM1 LSR (0x3FD) returns THRE | TEMT (0x20 | 0x40)."""
    g = ghci(probe(), 30, 1, 0, 0x3FD).gprs
    assert g["r10"] == SUCCESS
    assert g["r11"] & 0x60 == 0x60


@pytest.mark.parametrize("size,value", [(1, 0xFF), (2, 0xFFFF), (4, 0xFFFF_FFFF)])
def test_io_in_unknown_port_reads_all_ones(probe, size, value):
    """IN from a port with no device: all ones, cut to the access size."""
    g = ghci(probe(), 30, size, 0, 0x1234).gprs
    assert (g["r10"], g["r11"]) == (SUCCESS, value)


@pytest.mark.parametrize("size", [0, 3, 8, 1 << 32 | 1])
@pytest.mark.parametrize("direction", [0, 1])
def test_io_bad_size_is_invalid_operand(probe, size, direction):
    """Spec 6.2: IO size not in {1, 2, 4} -> INVALID_OPERAND."""
    p = probe()
    after = ghci(p, 30, size, direction, 0x3F8, ord("A"))
    assert after.gprs["r10"] == INVALID_OPERAND
    assert after.result.console == ""


@pytest.mark.parametrize("direction", [2, 0xFFFF_FFFF_FFFF_FFFF, 1 << 32])
def test_io_bad_direction_is_invalid_operand(probe, direction):
    """Spec 6.2: IO R13 not in {0, 1} -> INVALID_OPERAND."""
    p = probe()
    after = ghci(p, 30, 1, direction, 0x3F8, ord("A"))
    assert after.gprs["r10"] == INVALID_OPERAND
    assert after.result.console == ""


def test_io_library_puts_reaches_console(probe):
    """tdx_puts writes each byte with an OUT to COM1."""
    p = probe()
    p.td.write(BUF, b"hello, TD\n\0")
    result = p.td.call_result("tdx_puts", BUF)
    assert result.reason == "return"
    assert result.console == "hello, TD\n" == p.td.console
    assert [r.gpr_select for r in result.exits] == [0xFC00] * 10
    assert {r.exposed[13] for r in result.exits} == {1}  # R13 = 1: OUT


def test_io_library_read_uses_direction_0(probe):
    """tdx_io_read issues IN with R13 = 0 (spec 4.3) and stores the data."""
    p = probe()
    result = p.td.call_result("tdx_io_read", 0x3FD, 1, BUF)
    assert result.return_value == SUCCESS
    [record] = result.exits
    assert record.exposed[11:15] == (30, 1, 0, 0x3FD)  # R11..R14
    assert p.td.read(BUF, 1)[0] & 0x60 == 0x60


def test_debug_exit_port_ends_the_run(asm):
    """A write to port 0xF4 ends the run with the written code."""
    td = asm("""
        .globl _start
    _start:
        mov     $42, %edi
        call    tdx_debug_exit
    """)
    result = td.run()
    assert result.reason == "exit"
    assert result.exit_code == 42


# --- Instruction.RDMSR / WRMSR (R11 = 31 / 32) ---

def test_rdmsr_apic_base(probe):
    """Spec 4.3: RDMSR R12 = index -> R11 = value.  IA32_APIC_BASE (0x1B) has
    the architectural base 0xFEE00000 and the global enable bit 11 (SDM)."""
    g = ghci(probe(), 31, 0x1B).gprs
    assert g["r10"] == SUCCESS
    assert g["r11"] & 0xFFFFF000 == 0xFEE00000
    assert g["r11"] & 1 << 11


def test_rdmsr_unknown_is_invalid_operand(probe):
    """Spec 6.2: an MSR outside KVM's emulated set -> INVALID_OPERAND."""
    assert ghci(probe(), 31, 0xDEAD).gprs["r10"] == INVALID_OPERAND


@pytest.mark.parametrize("msr", [0x1B, 0xC0000080, 0x3A], ids=["APIC_BASE", "EFER", "FEAT_CTL"])
def test_wrmsr_read_only_is_invalid_operand(probe, msr):
    """Spec 6.2: a write to APICBASE, EFER or FEAT_CTL -> INVALID_OPERAND, and
    the MSR keeps its value."""
    p = probe()
    before = ghci(p, 31, msr).gprs["r11"]
    assert ghci(p, 32, msr, 0x1234).gprs["r10"] == INVALID_OPERAND
    g = ghci(p, 31, msr).gprs
    assert (g["r10"], g["r11"]) == (SUCCESS, before)


def test_wrmsr_then_rdmsr(probe):
    """Spec 4.3: WRMSR R12 = index, R13 = value; a writable MSR
    (IA32_TSC_DEADLINE, 0x6E0) reads back what was written.  The LVT timer
    is in TSC-deadline mode first: in the other modes the APIC ignores the
    write (SDM vol. 3, 11.5.4.1)."""
    p = probe()
    assert ghci(p, 32, 0x832, 2 << 17 | 0xEC).gprs["r10"] == SUCCESS
    assert ghci(p, 32, 0x6E0, 0x1122_3344_5566_7788).gprs["r10"] == SUCCESS
    g = ghci(p, 31, 0x6E0).gprs
    assert (g["r10"], g["r11"]) == (SUCCESS, 0x1122_3344_5566_7788)


def test_msr_library_wrappers(probe):
    """tdx_rdmsr/tdx_wrmsr: masks 0xFC00, R11 = 31 / 32."""
    p = probe()
    assert p.td.call("tdx_wrmsr", 0x838, 0xABCD) == SUCCESS  # APIC timer initial count
    assert p.td.call("tdx_rdmsr", 0x838, BUF) == SUCCESS
    assert int.from_bytes(p.td.read(BUF, 8), "little") == 0xABCD
    assert p.td.call("tdx_wrmsr", 0x1B, 0) == INVALID_OPERAND


# --- #VE.RequestMMIO (R11 = 48) ---

def test_mmio_read_device_id(probe):
    """Spec 4.3/6.2: MMIO read (R13 = 0) of the shared GPA (bit 47 set) of the
    device at 0xFEB00000: offset 0 is the ID 0x53584454."""
    g = ghci(probe(), 48, 4, 0, MMIO_DEV | SHARED).gprs
    assert (g["r10"], g["r11"]) == (SUCCESS, 0x53584454)


@pytest.mark.parametrize("size,value", [(1, 0xA1), (2, 0xA1B2), (4, 0xA1B2C3D4),
                                        (8, 0xA1B2C3D4E5F60718)])
def test_mmio_scratch_write_read_back(probe, size, value):
    """Spec 4.3: MMIO write (R13 = 1, R15 = data) then read gives it back."""
    p = probe()
    gpa = MMIO_DEV + 0x10 | SHARED
    assert ghci(p, 48, size, 1, gpa, value).gprs["r10"] == SUCCESS
    g = ghci(p, 48, size, 0, gpa).gprs
    assert (g["r10"], g["r11"]) == (SUCCESS, value)


def test_mmio_library_wrappers(probe):
    """tdx_mmio_write/tdx_mmio_read round trip on a scratch register."""
    p = probe()
    gpa = MMIO_DEV + 0x20 | SHARED
    assert p.td.call("tdx_mmio_write", gpa, 8, 0x0102030405060708) == SUCCESS
    assert p.td.call("tdx_mmio_read", gpa, 8, BUF) == SUCCESS
    assert int.from_bytes(p.td.read(BUF, 8), "little") == 0x0102030405060708


@pytest.mark.parametrize("size", [0, 3, 5, 16])
def test_mmio_bad_size_is_invalid_operand(probe, size):
    """Spec 6.2: MMIO size not in {1, 2, 4, 8} -> INVALID_OPERAND."""
    assert ghci(probe(), 48, size, 0, MMIO_DEV | SHARED).gprs["r10"] == INVALID_OPERAND


@pytest.mark.parametrize("direction", [2, 1 << 63])
def test_mmio_bad_direction_is_invalid_operand(probe, direction):
    """Spec 6.2: MMIO R13 not in {0, 1} -> INVALID_OPERAND."""
    assert ghci(probe(), 48, 4, direction, MMIO_DEV | SHARED).gprs["r10"] == INVALID_OPERAND


def test_mmio_private_gpa_is_invalid_operand(probe):
    """Spec 6.2: first byte private (no shared bit) -> INVALID_OPERAND."""
    assert ghci(probe(), 48, 4, 0, MMIO_DEV).gprs["r10"] == INVALID_OPERAND


def test_mmio_last_byte_beyond_gpaw_is_invalid_operand(probe):
    """Spec 6.2: the last byte must also be a legal shared GPA: first byte at
    2^48 - 4 is shared, but gpa + 8 - 1 lies beyond GPAW 48 -> INVALID_OPERAND,
    while a 4-byte access at the same GPA is accepted."""
    p = probe()
    gpa = (1 << 48) - 4
    assert ghci(p, 48, 8, 0, gpa).gprs["r10"] == INVALID_OPERAND
    assert ghci(p, 48, 4, 0, gpa).gprs["r10"] == SUCCESS


def test_mmio_gpa_beyond_gpaw_is_invalid_operand(probe):
    """Spec 6.2: a GPA above GPAW is not a legal GPA."""
    assert ghci(probe(), 48, 4, 0, MMIO_DEV | SHARED | 1 << 48).gprs["r10"] == INVALID_OPERAND


def test_mmio_shared_bit_follows_gpaw_52(probe):
    """Spec 1.3: the shared bit is BIT(GPAW - 1): bit 51 when GPAW = 52; bit
    47 is then an ordinary (private) address bit."""
    p = probe(config=TdConfig(gpaw=52))
    g = ghci(p, 48, 4, 0, MMIO_DEV | 1 << 51).gprs
    assert (g["r10"], g["r11"]) == (SUCCESS, 0x53584454)
    assert ghci(p, 48, 4, 0, MMIO_DEV | SHARED).gprs["r10"] == INVALID_OPERAND


# --- Instruction.HLT (R11 = 12) ---

@pytest.mark.parametrize("irq_blocked", [0, 1])
def test_hlt_with_nothing_to_wake_is_reported(probe, irq_blocked):
    """Spec 7.4: a HLT nothing can wake ends the run with reason 'halted'
    (a diagnostic, not a hang)."""
    after = ghci(probe(), 12, irq_blocked, expect="halted")
    assert "halt" in after.result.message


def test_hlt_library(probe):
    """tdx_halt(0) with no interrupt source -> 'halted'."""
    result = probe().td.call_result("tdx_halt", 0, timeout=5)
    assert result.reason == "halted", result.describe()
