"""The TD memory model: private and shared pages, the shared bit in the
guest's own page tables, EPT violations, and the host's shared-only view
(spec 1.3, 4.4).  The default page tables and the shared window at linear
0xFFFF800000000000 are tdxsim's documented convention (README)."""
from __future__ import annotations

import pytest

from tdxsim import RunResult, TdConfig, TdxsimError
from tdxsim.errors import HostError
from tdxsim.memory import Page

SHARED_48 = 1 << 47          # spec 1.3/4.4: shared bit = BIT(GPAW - 1), GPAW 48
SHARED_52 = 1 << 51          # GPAW 52
WINDOW = 0xFFFF_8000_0000_0000
BUF = 0x200000
MiB = 1 << 20

ACCESS_SRC = """
        .text
        .globl  load, store
# u64 load(u64 *p), void store(u64 *p, u64 v): one access each
load:   mov     (%rdi), %rax
        ret
store:  mov     %rsi, (%rdi)
        ret
"""

# own_tables(u64 pte): builds page tables in .bss that identity-map the
# first GiB (one 1 GiB page) and map linear 0x40000000 through one 4 KiB
# PTE = `pte`, loads them into CR3, reads 8 bytes at 0x40000000, restores
# the old CR3 and returns the value.
OWN_TABLES_SRC = ACCESS_SRC + """
        .globl  own_tables
own_tables:
        lea     pml4(%rip), %rax
        lea     pdpt(%rip), %rcx
        or      $3, %rcx
        mov     %rcx, (%rax)                    # PML4[0] -> PDPT
        lea     pdpt(%rip), %rax
        movq    $0x83, (%rax)                   # PDPT[0]: 1 GiB page at 0, RW
        lea     pd(%rip), %rcx
        or      $3, %rcx
        mov     %rcx, 8(%rax)                   # PDPT[1] -> PD (0x40000000..)
        lea     pd(%rip), %rax
        lea     pt(%rip), %rcx
        or      $3, %rcx
        mov     %rcx, (%rax)                    # PD[0] -> PT
        lea     pt(%rip), %rax
        mov     %rdi, (%rax)                    # PT[0] = pte
        mov     %cr3, %rdx
        lea     pml4(%rip), %rax
        mov     %rax, %cr3
        mov     0x40000000, %rax
        mov     %rdx, %cr3
        ret

        .bss
        .balign 4096
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4096
pt:     .skip 4096
"""


@pytest.fixture
def mem(asm):
    return asm(ACCESS_SRC)


def load(td, address):
    return td.call_result("load", address)


def test_ram_starts_private_and_accepted(mem):
    """A TD starts with all RAM private; page 0 is not RAM (NULL)."""
    assert mem.ram.state(BUF) == Page.PRIVATE
    assert mem.ram.state(0) is None
    assert mem.ram.shared_bit == SHARED_48


def test_private_memory_through_the_identity_map(mem):
    mem.write(BUF, (0x1122334455667788).to_bytes(8, "little"))
    assert mem.call("load", BUF) == 0x1122334455667788


def test_private_page_through_the_shared_window_is_converted_implicitly(mem):
    """Linear WINDOW + g reaches GPA g | shared bit; a private page there is
    the wrong alias: an EPT-violation exit, which KVM and QEMU serve as an
    implicit conversion to shared (KVM_EXIT_MEMORY_FAULT).  The private
    contents are gone and the load reads zero (test_ept_ve.py has more)."""
    mem.write(BUF, b"private!")
    assert mem.call("load", WINDOW + BUF) == 0
    assert mem.ram.state(BUF) == Page.SHARED


def test_shared_page_through_the_window_and_not_through_the_private_alias(mem):
    """Through the private alias the shared page is converted back to
    private and is then pending: #VE, which this guest without an IDT cannot
    take (a crash naming the GPA)."""
    mem.ram.convert(BUF, 0x1000, shared=True)
    mem.call("store", WINDOW + BUF, 0xABCD)
    assert mem.call("load", WINDOW + BUF) == 0xABCD
    assert mem.host.memory.read(BUF | SHARED_48, 8) == (0xABCD).to_bytes(8, "little")
    result = load(mem, BUF)
    assert result.reason == "crash" and "EPT violation" in result.message
    assert f"GPA {BUF:#x}" in result.message and "pending" in result.message


def test_conversion_leaves_pages_already_in_the_target_state_alone(mem):
    mem.ram.convert(BUF + 0x1000, 0x1000, shared=True)
    mem.host.memory.write(BUF + 0x1000, b"kept")
    mem.write(BUF, b"gone")
    mem.ram.convert(BUF, 0x3000, shared=True)
    assert mem.host.memory.read(BUF, 4) == bytes(4)
    assert mem.host.memory.read(BUF + 0x1000, 4) == b"kept"


def test_pending_page_is_an_ept_violation(mem):
    """Spec 4.4: shared -> private leaves the page pending until accepted."""
    mem.ram.convert(BUF, 0x1000, shared=True)
    mem.ram.convert(BUF, 0x1000, shared=False)
    assert mem.ram.state(BUF) == Page.PENDING
    result = load(mem, BUF + 0x10)
    assert result.reason == "crash" and "pending" in result.message
    assert f"GPA {BUF + 0x10:#x}" in result.message


def test_write_to_a_pending_page_is_refused_too(mem):
    mem.ram.convert(BUF, 0x1000, shared=True)
    mem.ram.convert(BUF, 0x1000, shared=False)
    result = mem.call_result("store", BUF, 1)
    assert result.reason == "crash" and "write" in result.message


def test_no_memory_beyond_ram_names_the_gpa(asm):
    td = asm(ACCESS_SRC, memory=16 * MiB)
    result = load(td, 0x4000_0000)
    assert result.reason == "crash" and "0x40000000" in result.message
    assert "no guest memory" in result.message


def test_null_is_not_ram(mem):
    result = load(mem, 0)
    assert result.reason == "crash" and "GPA 0x0 " in result.message


def test_ept_violation_hook_is_one_method(mem):
    """The single plug-in point for EPT-violation #VE: TD.ept_violation."""
    seen = []
    mem.ept_violation = lambda rip, violation: seen.append(violation) or RunResult("error", "x")
    load(mem, WINDOW + BUF)
    [violation] = seen
    assert (violation.gpa, violation.la, violation.access) == (SHARED_48 | BUF, WINDOW + BUF, "read")


@pytest.mark.parametrize("gpaw,shared", [(48, SHARED_48), (52, SHARED_52)])
def test_guest_page_tables_carry_the_shared_bit(asm, gpaw, shared):
    """Spec 1.3/4.4: the guest's own PTE names the shared GPA with bit
    GPAW - 1 set; the access reaches the shared page."""
    td = asm(OWN_TABLES_SRC, config=TdConfig(gpaw=gpaw))
    td.ram.convert(BUF, 0x1000, shared=True)
    td.host.memory.write(BUF | shared, b"via PTE!")
    value = td.call("own_tables", BUF | shared | 3)
    assert value.to_bytes(8, "little") == b"via PTE!"


def test_guest_page_table_without_the_shared_bit_reaches_the_private_page(asm):
    td = asm(OWN_TABLES_SRC)
    td.write(BUF, b"private!")
    assert td.call("own_tables", BUF | 3).to_bytes(8, "little") == b"private!"
    assert td.call("own_tables", BUF | SHARED_48 | 3) == 0  # implicit conversion to shared
    assert td.ram.state(BUF) == Page.SHARED


def test_page_fault_is_reported(asm):
    """A not-present PTE is a #PF of the guest's own paging, not an EPT
    violation: crash report with the linear address."""
    td = asm(OWN_TABLES_SRC)
    result = td.call_result("own_tables", 0)
    assert result.reason == "crash"
    assert "#PF" in result.message and "0x40000000" in result.message


def test_gpaw_52_moves_the_shared_bit(asm):
    td = asm(ACCESS_SRC, config=TdConfig(gpaw=52))
    assert td.ram.shared_bit == SHARED_52
    td.ram.convert(BUF, 0x1000, shared=True)
    td.host.memory.write(BUF | SHARED_52, b"gpaw 52!")
    assert td.call("load", WINDOW + BUF).to_bytes(8, "little") == b"gpaw 52!"


def test_gpaw_must_be_48_or_52(asm):
    with pytest.raises(TdxsimError, match="GPAW must be 48 or 52"):
        asm(ACCESS_SRC, config=TdConfig(gpaw=40))


# --- the host's view: shared pages only ---

def test_host_cannot_read_or_write_private_memory(mem):
    mem.write(BUF, b"secret")
    with pytest.raises(HostError, match="private"):
        mem.host.memory.read(BUF | SHARED_48, 6)
    with pytest.raises(HostError, match="private"):
        mem.host.memory.read(BUF, 6)
    with pytest.raises(HostError, match="private"):
        mem.host.memory.write(BUF, b"x")
    assert mem.read(BUF, 6) == b"secret"


def test_host_range_must_be_shared_throughout(mem):
    mem.ram.convert(BUF, 0x1000, shared=True)
    assert mem.host.memory.read(BUF + 0xFF8, 8) == bytes(8)
    with pytest.raises(HostError):
        mem.host.memory.read(BUF + 0xFF8, 9)  # the next page is private


def test_host_cannot_reach_outside_ram(mem):
    with pytest.raises(HostError, match="no guest memory"):
        mem.host.memory.read(0x4000_0000 | SHARED_48, 8)


def test_large_guest_memory_is_allocated_lazily(asm):
    """A 1 GiB guest costs host RAM only for the pages it touches."""
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    before = rss()
    td = asm(ACCESS_SRC, memory=1 << 30)
    td.write((1 << 30) - 0x1000, b"top")
    assert td.call("load", (1 << 30) - 0x1000) & 0xFFFFFF == int.from_bytes(b"top", "little")
    assert rss() - before < 64 * MiB
