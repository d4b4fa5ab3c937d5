"""The EPT-violation #VE (spec 8.1 "Memory", 8.2, 8.3) and what the host
does with the EPT violations that are not #VE; MMIO emulation in the guest
library's #VE handler (spec 8.4).

Guest code: tests/guests/ept_ve.S.  Expected VE info: exit reason 48 (spec
0.1), R8 = GLA, R9 = GPA as accessed, R10 = 0 (length and information are
undefined for EPT violations, spec 8.2).  Exit qualification bits from the
Intel SDM vol. 3, Table 28-7: bit 0 read, 1 write, 2 fetch, 7 GLA valid,
8 set when the access itself (not a paging-structure read of the guest's
page walk) faulted; bits 5:3 (the entry's permissions) are 0 for a pending
page and for MMIO.  The MMIO test device sits at GPA 0xFEB00000 with ID
0x53584454 at offset 0 and scratch registers from offset 8 (README); the
default page tables show shared GPA g | bit 47 at linear 0xFFFF800000000000 + g.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tdxsim import TD, TdConfig
from tdxsim.events import MemoryConverted, VeRaised
from tdxsim.memory import Page
from tdxsim.trace import render_all

GUEST = Path(__file__).parent / "guests" / "ept_ve.S"
WINDOW_DEF = ".globl mmio_window\n.set mmio_window, 0xFFFFFFFF80200000\n"  # kernel half
SHARED = 1 << 47
WINDOW = 0xFFFF_8000_0000_0000
BUF = 0x200000
OUT = 0x300000
MMIO_LA = 0xFFFF_8000_FEB0_0000         # linear address of the device
MMIO_GPA = 0x0000_8000_FEB0_0000        # its shared GPA, as the guest accesses it
DEVICE_ID = 0x5358_4454
EPT_VIOLATION = 48
QUAL_READ, QUAL_WRITE, QUAL_FETCH, QUAL_WALK = 0x181, 0x182, 0x184, 0x081
SEPT_VE_DISABLE = 1 << 28               # TD ATTRIBUTES bit 28 (Linux ATTR_SEPT_VE_DISABLE)
PRESET = 0xAAAA_BBBB_CCCC_DDDD
MMIO = 48                               # #VE.RequestMMIO sub-function (spec 4.3)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    window = tmp_path_factory.mktemp("ept") / "window.S"
    window.write_text(WINDOW_DEF)
    return TD.from_source(GUEST, window).image


def make(image, gates="stop_gates", attributes=0, **kw) -> TD:
    td = TD(image, config=TdConfig(attributes=attributes), **kw)
    td.call(gates)
    return td


def pending(td: TD, gpa: int) -> None:
    """Shared, then private again: the page is pending (spec 4.4)."""
    td.ram.convert(gpa, 0x1000, shared=True)
    td.ram.convert(gpa, 0x1000, shared=False)


def ves(result):
    return [(e.vector, e.rip) for e in result.events if isinstance(e, VeRaised)]


def veinfo(td: TD) -> list[int]:
    assert td.call("tdx_veinfo_get", OUT) == 0
    raw = td.read(OUT, 40)
    return [int.from_bytes(raw[i:i + 8], "little") for i in range(0, 40, 8)]


def frame(td: TD) -> tuple[int, int]:
    raw = td.read(td.gprs()["rsp"], 24)
    return int.from_bytes(raw[:8], "little"), int.from_bytes(raw[16:], "little")


def converted(result):
    return [(e.gpa, e.size, e.shared, e.ok, e.implicit) for e in result.events
            if isinstance(e, MemoryConverted)]


# --- a pending private page (spec 8.1: SEPT_VE_DISABLE = 0 -> #VE) ---

@pytest.mark.parametrize("label,regs,qual", [
    ("at_load", dict(rdi=BUF + 0x10, rax=PRESET), QUAL_READ),
    ("at_store", dict(rdi=BUF + 0x10, rsi=7), QUAL_WRITE),
])
def test_pending_page_access_raises_ve(image, label, regs, qual):
    """Fault-like (spec 8.3): the saved RIP is the access, RF is set, the
    instruction has not run (RAX keeps its value)."""
    td = make(image)
    pending(td, BUF)
    result = td.call_result(label, regs=regs)
    assert ves(result) == [(20, td.symbol(label))]
    assert td.vcpu.regs.rip == td.symbol("ve_stop")
    saved_rip, saved_rflags = frame(td)
    assert saved_rip == td.symbol(label) and saved_rflags & 1 << 16
    if label == "at_load":
        assert td.gprs()["rax"] == PRESET
    assert veinfo(td) == [EPT_VIOLATION, qual, BUF + 0x10, BUF + 0x10, 0]


def test_pending_page_fetch_raises_ve_at_the_target(image):
    """A jump into a pending page: the fetch faults at the target."""
    td = make(image)
    pending(td, BUF)
    result = td.call_result("at_fetch", regs=dict(rdi=BUF + 0x20))
    assert ves(result) == [(20, BUF + 0x20)]
    assert frame(td)[0] == BUF + 0x20
    assert veinfo(td) == [EPT_VIOLATION, QUAL_FETCH, BUF + 0x20, BUF + 0x20, 0]


def test_pending_page_table_page_clears_qualification_bit_8(image):
    """The guest's own page walk reads a PTE from a pending page: GPA = the
    PTE's address, GLA = the address being translated, bit 8 clear."""
    td = make(image)
    td.call("own_tables", BUF | 3)
    pt = td.symbol("pt")
    pending(td, pt)
    result = td.call_result("window_load")
    assert ves(result) == [(20, td.symbol("window_load"))]
    assert veinfo(td) == [EPT_VIOLATION, QUAL_WALK, 0x4000_0000, pt, 0]


def test_sept_ve_disable_makes_a_pending_access_fatal(image):
    """SEPT_VE_DISABLE = 1: no #VE; the access exits to KVM, which kills the
    TD: a crash report naming the GPA."""
    td = make(image, attributes=SEPT_VE_DISABLE)
    pending(td, BUF)
    result = td.call_result("at_load", regs=dict(rdi=BUF + 0x10))
    assert result.reason == "crash" and ves(result) == []
    assert "GPA 0x200010" in result.message and "before accepting" in result.message


def test_nested_ve_on_a_pending_page_is_a_double_fault(image):
    """Spec 8.3: a second #VE before VEINFO.GET -> #DF, error code 0."""
    td = make(image, "nested_gates")
    pending(td, BUF)
    result = td.call_result("at_load", regs=dict(rdi=BUF))
    assert [v for v, _ in ves(result)] == [20, 8]
    assert td.vcpu.regs.rip == td.symbol("df_stop")
    assert td.read(td.gprs()["rsp"], 8) == bytes(8)


# --- the wrong alias: implicit conversion by KVM and QEMU ---

def test_shared_alias_of_a_private_page_converts_it_to_shared(image):
    """KVM_EXIT_MEMORY_FAULT; QEMU converts the 4 KiB page, the private
    contents are gone, and the load runs again and reads zero."""
    td = make(image)
    td.write(BUF, b"private!")
    result = td.call_result("at_load", regs=dict(rdi=WINDOW + BUF))
    assert result.reason == "return" and result.return_value == 0
    assert converted(result) == [(BUF, 0x1000, True, True, True)]
    assert td.ram.state(BUF) == Page.SHARED and ves(result) == []


def test_private_alias_of_a_shared_page_makes_it_pending_then_ve(image):
    td = make(image)
    td.ram.convert(BUF, 0x1000, shared=True)
    result = td.call_result("at_load", regs=dict(rdi=BUF + 8))
    assert converted(result) == [(BUF, 0x1000, False, True, True)]
    assert td.ram.state(BUF) == Page.PENDING
    assert ves(result) == [(20, td.symbol("at_load"))]
    assert veinfo(td) == [EPT_VIOLATION, QUAL_READ, BUF + 8, BUF + 8, 0]


def test_private_alias_without_ram_stops_the_td(image):
    """QEMU cannot make a GPA without RAM private: the VM stops."""
    td = make(image, memory=16 << 20)
    result = td.call_result("at_load", regs=dict(rdi=0x0100_0000))
    assert result.reason == "crash" and "GPA 0x1000000" in result.message
    assert converted(result) == [(0x0100_0000, 0x1000, False, False, True)]


# --- MMIO: a shared GPA with no memory behind it ---

def test_mmio_raises_ve_with_the_shared_gpa(image):
    td = make(image)
    result = td.call_result("at_load", regs=dict(rdi=MMIO_LA))
    assert ves(result) == [(20, td.symbol("at_load"))] and result.exits == []
    assert veinfo(td) == [EPT_VIOLATION, QUAL_READ, MMIO_LA, MMIO_GPA, 0]


def test_mmio_while_ve_info_is_valid_livelocks(image):
    """The CPU raises no #VE while VE info is valid (its busy field): a VM
    exit that KVM cannot emulate, so it re-enters forever.  Crash report."""
    td = make(image, "nested_gates")
    result = td.call_result("at_load", regs=dict(rdi=MMIO_LA + 8))
    assert [v for v, _ in ves(result)] == [20]
    assert result.reason == "crash" and "livelock" in result.message
    assert f"GPA {MMIO_GPA + 8:#x}" in result.message


def test_library_handler_reads_the_device_id(image):
    """A plain 32-bit load from MMIO becomes #VE.RequestMMIO: R12 = 4,
    R13 = 0 (read), R14 = the shared GPA; RIP moves past the 2-byte mov."""
    td = make(image, "library_gates")
    result = td.call_result("mmio_load32", MMIO_LA, regs=dict(rax=PRESET))
    assert result.return_value == DEVICE_ID, result.describe()
    [exit] = result.exits
    assert exit.exposed[11:15] == (MMIO, 4, 0, MMIO_GPA)
    lines = render_all(result.events)
    assert any("EPT violation (48) read: qual=0x181 gla=0xffff8000feb00000 "
               "gpa=0x8000feb00000" in line for line in lines)
    assert any("tdvmcall MMIO" in line and "<- #VE at" in line for line in lines)


def test_library_handler_write_then_read_back(image):
    td = make(image, "library_gates")
    value = 0x1122_3344_5566_7788
    [store] = td.call_result("mmio_store64", MMIO_LA + 8, value).exits
    assert store.exposed[11:16] == (MMIO, 8, 1, MMIO_GPA + 8, value)
    result = td.call_result("mmio_load64", MMIO_LA + 8)
    assert result.return_value == value
    assert result.exits[0].exposed[11:15] == (MMIO, 8, 0, MMIO_GPA + 8)


PATTERN = 0x8877_6655_4433_80F0  # stored at device offset 8 first


@pytest.mark.parametrize("label,regs,result_reg,expected", [
    ("mmio_load8", dict(rax=PRESET), "rax", 0xAAAA_BBBB_CCCC_DDF0),
    ("mmio_load16", dict(rax=PRESET), "rax", 0xAAAA_BBBB_CCCC_80F0),
    ("mmio_load32", dict(rax=PRESET), "rax", 0x4433_80F0),
    ("mmio_load64", dict(rax=PRESET), "rax", PATTERN),
    ("mmio_load_sil", dict(rsi=PRESET), "rax", 0xAAAA_BBBB_CCCC_DDF0),
    ("mmio_movzbl", dict(rax=PRESET), "rax", 0xF0),
    ("mmio_movzwq", dict(rax=PRESET), "rax", 0x80F0),
    ("mmio_movsbl", dict(rax=PRESET), "rax", 0xFFFF_FFF0),
    ("mmio_movswq", dict(rax=PRESET), "rax", 0xFFFF_FFFF_FFFF_80F0),
    ("mmio_movsbw", dict(rax=PRESET), "rax", 0xAAAA_BBBB_CCCC_FFF0),
])
def test_library_handler_load_forms(image, label, regs, result_reg, expected):
    """Loads write the destination as the CPU would: 8/16-bit keep the
    rest of the register, 32-bit clears bits 63:32, movsx/movzx extend."""
    td = make(image, "library_gates")
    td.call("mmio_store64", MMIO_LA + 8, PATTERN)
    result = td.call_result(label, regs={**regs, "rdi": MMIO_LA + 8})
    assert result.reason == "return", result.describe()
    assert td.gprs()[result_reg] == expected


def test_library_handler_sib_and_disp8(image):
    """`mov 8(%rdi,%rsi,4), %r9` (REX.W+R, SIB, disp8): 8 bytes at offset 8."""
    td = make(image, "library_gates")
    td.call("mmio_store64", MMIO_LA + 8, PATTERN)
    assert td.call("mmio_load_sib", MMIO_LA - 0xFF8, 0x3FE) == PATTERN


def test_library_handler_rip_relative(image):
    """`mov mmio_window(%rip), %eax` through the guest's own PTE for the
    device (shared GPA in the PTE): the decoded length moves RIP on."""
    td = make(image, "library_gates")
    td.call("own_tables", 0xFEB0_0000 | SHARED | 3)
    assert td.call("window_riprel") == DEVICE_ID
    assert td.exits[-1].exposed[11:15] == (MMIO, 4, 0, MMIO_GPA)


@pytest.mark.parametrize("label,regs,offset,size,data", [
    ("mmio_store8", dict(rsi=0x1234_565A), 8, 1, 0x5A),
    ("mmio_store16", dict(rsi=0x1234_5678), 8, 2, 0x5678),
    ("mmio_store32", dict(rsi=0xFFFF_FFFF_1234_5678), 8, 4, 0x1234_5678),
    ("mmio_store64", dict(rsi=PATTERN), 8, 8, PATTERN),
    ("mmio_store_r12", dict(r12=PATTERN), 0x108, 8, PATTERN),
    ("mmio_store_imm8", {}, 8, 1, 0xAB),
    ("mmio_store_imm16", {}, 8, 2, 0xBEEF),
    ("mmio_store_imm32", {}, 0x18, 4, 0x1234_5678),
    ("mmio_store_imm64", {}, 8, 8, 0xFFFF_FFFF_FFFF_FFFE),
])
def test_library_handler_store_forms(image, label, regs, offset, size, data):
    """Stores send R12 = size, R13 = 1 (write), R14 = GPA, R15 = the data
    cut to the access size (spec 4.3)."""
    td = make(image, "library_gates")
    result = td.call_result(label, regs={**regs, "rdi": MMIO_LA + 8})
    assert result.reason == "return", result.describe()
    [exit] = result.exits
    assert exit.exposed[11:16] == (MMIO, size, 1, MMIO_GPA + offset, data)


@pytest.mark.parametrize("label,regs,text", [
    ("mmio_load_ah", dict(rdi=MMIO_LA), "unsupported instruction"),
    ("mmio_moffs", {}, "unsupported instruction"),
    ("mmio_add", dict(rdi=MMIO_LA), "unsupported instruction"),
    ("mmio_split", dict(rdi=MMIO_LA), "crosses a page"),
    ("mmio_load_sib", dict(rdi=MMIO_LA, rsi=0x3FD), "crosses a page"),
])
def test_library_handler_rejects_what_linux_rejects(image, label, regs, text):
    """Other instructions and page-crossing accesses end the run with
    ReportFatalError; no MMIO request reaches the host."""
    td = make(image, "library_gates")
    result = td.call_result(label, regs=regs)
    assert result.reason == "fatal" and text in result.message
    assert [e.name for e in result.exits] == ["REPORT_FATAL_ERROR"]


def test_library_handler_refuses_user_mode_mmio(image):
    td = make(image, "user_gates")
    result = td.call_result("at_load", regs=dict(rdi=MMIO_LA))
    assert result.reason == "fatal" and "MMIO from user mode" in result.message


def test_library_handler_pending_page_is_fatal_with_the_gpa(image):
    """Linux panics on an EPT violation #VE for private memory; the library
    reports a fatal error carrying the GPA (R12 bit 63, spec 4.6)."""
    td = make(image, "library_gates")
    pending(td, BUF)
    result = td.call_result("at_load", regs=dict(rdi=BUF + 0x10))
    assert result.reason == "fatal" and "private memory" in result.message
    assert result.fatal.gpa == BUF + 0x10


TRACE_GUEST = """
        .globl  _start
_start: lea     idt(%rip), %rdi
        mov     $20, %esi
        lea     tdx_ve_entry(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)
        movabs  $0xFFFF8000FEB00000, %rbx
        mov     (%rbx), %edi                    # the device ID, through #VE
        call    tdx_put_hex
        xor     %edi, %edi
        call    tdx_debug_exit
        .section .rodata
idt_ptr: .word  256 * 16 - 1
        .quad   idt
        .data
        .balign 16
idt:    .fill   256 * 16, 1, 0
"""


def test_cli_trace_shows_the_ept_ve_and_its_mmio_call(tmp_path, capsys):
    """`tdxsim run --trace`: the #VE line with qualification, GLA and GPA,
    then the MMIO TDVMCALL the handler made of it."""
    from tdxsim.cli import main
    path = tmp_path / "mmio.S"
    path.write_text(TRACE_GUEST)
    assert main(["run", str(path), "--trace"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("0x0000000053584454")
    assert ("EPT violation (48) read: qual=0x181 gla=0xffff8000feb00000 "
            "gpa=0x8000feb00000 len=0" in out)
    assert ("tdvmcall MMIO                   read gpa=0x8000feb00000 size=4 -> SUCCESS "
            "r11=0x53584454" in out)
