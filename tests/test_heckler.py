"""The interrupt adversary (spec 13.1, 13.4 B14) and the bundled `heckler`
guest: a TDX host can make any vector 32-255 pending and inject NMIs, never
exceptions 0-31 (spec 13.1).  Heckler (CVE-2024-25744) used vector 0x80 to
reach the 32-bit syscall gate.  The naive gate runs its syscall body for an
external 0x80; the library's gate (irq.S) checks the x2APIC in-service
register (ISR bit 0x80 at MSR 0x814 bit 0: set only for an external
interrupt, SDM vol. 3 11.8.4) and refuses it.
"""
from __future__ import annotations

import os

import pytest

from tdxsim import TD, Host
from tdxsim.events import InterruptDelivered, InterruptPosted
from tdxsim.image import bundled_guest
from tdxsim.toolchain import build
from tdxsim.trace import render_all

SEEDS = int(os.environ.get("TDXSIM_SOAK_SEEDS", "40"))  # `make soak`: 1000


@pytest.fixture(scope="module")
def image():
    return build([bundled_guest("heckler")])


def counters(td: TD) -> tuple[int, int]:
    read = lambda name: int.from_bytes(td.read(td.symbol(name), 8), "little")  # noqa: E731
    return read("naive_calls"), read("defended_calls")


def test_without_an_adversary_each_body_runs_once(image):
    td = TD(image)
    result = td.run()
    assert result.reason == "exit" and result.exit_code == 0
    assert counters(td) == (1, 1)
    assert "naive int 0x80 gate: syscall ran 1 time(s)" in result.console


def test_the_adversary_reaches_the_naive_gate_and_never_the_defended_body(image):
    reached = 0
    for seed in range(SEEDS):
        td = TD(image, host=Host("hostile", seed=seed))
        result = td.run(max_insns=2_000_000, timeout=20)
        assert result.reason == "exit", (seed, result.describe())
        naive, defended = counters(td)
        assert defended == 1, seed  # only the guest's own `int $0x80`
        reached += naive > 1
        if naive > 1:
            handlers = {e.handler_name for e in result.events
                        if isinstance(e, InterruptDelivered) and e.vector == 0x80}
            assert "naive_int80" in handlers
    assert reached >= SEEDS // 2, reached


def test_the_same_seed_gives_the_same_run(image):
    runs = [TD(image, host=Host("hostile", seed=s)).run() for s in (11, 11, 12)]
    traces = [render_all(r.events) + [r.console] for r in runs]
    assert traces[0] == traces[1] and traces[0] != traces[2]


def test_injected_vectors_are_external_or_nmi(image):
    """Never an exception vector 0-31 other than NMI (2)."""
    seen = set()
    for seed in range(15):
        result = TD(image, host=Host("hostile", seed=seed)).run()
        seen |= {e.vector for e in result.events if isinstance(e, InterruptPosted)
                 and e.source == "injected"}
    assert seen and all(v == 2 or 32 <= v <= 255 for v in seen)
    assert 2 in seen and 0x80 in seen and len(seen - {2, 0x80, 0xEC}) > 3


def test_trace_names_each_injected_vector_and_its_handler(image):
    for seed in range(40):
        result = TD(image, host=Host("hostile", seed=seed)).run()
        lines = render_all(result.events)
        if any("naive_int80" in line for line in lines):
            break
    else:
        pytest.fail("no seed in 0..39 reached the naive gate")
    assert any("injected vector 0x80 pending" in line for line in lines)
    assert any("irq      vector 0x80 delivered" in line and "(naive_int80)" in line
               for line in lines)
    assert any("int      vector 0x80 by the guest" in line for line in lines)


NMI_GUEST = """
        .text
        .globl  _start, nmi_handler
_start: call    tdx_default_idt
        mov     %rax, %rdi
        mov     $2, %esi
        lea     nmi_handler(%rip), %rdx
        call    tdx_set_gate
        mov     $5000, %ecx                 # past the default IDT's ~3500 instructions
1:      dec     %ecx
        jnz     1b
        xor     %edi, %edi
        call    tdx_debug_exit
nmi_handler:
        push    %rcx
        incq    nmis(%rip)
        mov     $50, %ecx               # time for a second NMI to become pending
2:      dec     %ecx
        jnz     2b
        pop     %rcx
        iretq
        .data
        .globl  nmis
nmis:       .quad 0
"""


def test_nmi_goes_through_vector_2_and_blocks_nmis_until_iret(asm):
    """IF = 0 throughout: an NMI is delivered anyway; a second one pending
    during the handler waits for its IRET (SDM 6.7.1)."""
    td = asm(NMI_GUEST)
    td.lapic.schedule(8000, 2)  # virtual ns = instructions
    td.lapic.schedule(8010, 2)
    result = td.run()
    assert result.reason == "exit", result.describe()
    nmis = [e for e in result.events if isinstance(e, InterruptDelivered) and e.vector == 2]
    assert len(nmis) == 2 and all(e.handler_name == "nmi_handler" for e in nmis)
    assert nmis[1].time_ns > nmis[0].time_ns + 50  # not nested inside the first
    assert td.read(td.symbol("nmis"), 8) == (2).to_bytes(8, "little")


EXPLORE_GUEST = """
        .text
        .globl  naive_setup, defended_setup, window, naive_gate
naive_setup:
        lea     naive_gate(%rip), %rdx
        jmp     setup
defended_setup:
        lea     tdx_int80_entry(%rip), %rdx
setup:  push    %rdx
        call    tdx_default_idt
        pop     %rdx
        mov     %rax, %rdi
        mov     $0x80, %esi
        jmp     tdx_set_gate
window: sti                             # interrupts open for three boundaries
        nop
        nop
        cli
        ret
naive_gate:
        iretq
"""


def test_explorer_finds_the_naive_gate_at_every_open_boundary(asm):
    """Spec 13.4 B14: 0x80 and an NMI at every boundary of `window`."""
    from tdxsim.interrupt_explorer import explore_interrupts
    td = asm(EXPLORE_GUEST)
    report = explore_interrupts(td, "window", setup="naive_setup")
    assert report.boundaries == 5  # sti, nop, nop, cli, ret
    # 0x80 pending before `sti`, in its shadow or at a `nop` is taken before
    # the `cli`; from the `cli` on it stays pending
    assert [(d.boundary, d.handler) for d in report.findings] == \
        [(k, "naive_gate") for k in range(4)]
    # NMIs ignore IF: taken at every boundary before the routine returns
    nmis = [d.boundary for d in report.deliveries if d.vector == 2 and d.handler == "tdx_nmi_entry"]
    assert nmis == [0, 1, 2, 3, 4]
    assert "reached naive_gate from outside" in report.render()


def test_explorer_finds_nothing_with_the_defended_gate(asm):
    from tdxsim.interrupt_explorer import explore_interrupts
    report = explore_interrupts(asm(EXPLORE_GUEST), "window", setup="defended_setup",
                                vectors=[0x80, 0x81, 0xFF])
    assert report.findings == []
    assert {d.handler for d in report.deliveries if d.vector == 0x80} == {"tdx_int80_entry", ""}


def test_explorer_refuses_exception_vectors(asm):
    from tdxsim.interrupt_explorer import explore_interrupts
    with pytest.raises(ValueError, match="32-255"):
        explore_interrupts(asm(EXPLORE_GUEST), "window", vectors=[14])
