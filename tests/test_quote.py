"""GetQuote (R11 = 0x10002), SetupEventNotifyInterrupt (R11 = 0x10004) and
GetTdVmCallInfo leaf 1: QEMU's checks in order, asynchronous completion and
the notify interrupt (spec 4.5, 4.7, 6.4)."""
from __future__ import annotations

import struct

import pytest

from tdxsim.cli import main
from tdxsim.events import InterruptDelivered, QuoteCompleted
from tdxsim.vcpu.interrupts import install_idt_stub

SUCCESS = 0x0000000000000000              # spec 4.2
RETRY = 0x0000000000000001
INVALID_OPERAND = 0x8000000000000000
ALIGN_ERROR = 0x8000000000000002
IN_FLIGHT = 0xFFFFFFFFFFFFFFFF            # spec 4.5 header status values
QUOTE_ERROR = 0x8000000000000000
QGS_UNAVAILABLE = 0x8000000000000001
SHARED = 1 << 47                          # spec 1.3/4.4, GPAW 48
BUF = 0x200000
SIZE = 0x2000
VECTOR = 0x50
REPORTDATA = bytes(range(64))


def header(version=1, status=0, in_len=1024, out_len=0) -> bytes:
    """Spec 4.5: version u64, status u64, in_len u32, out_len u32."""
    return struct.pack("<QQII", version, status, in_len, out_len)


def read_header(td, gpa=BUF):
    return struct.unpack("<QQII", td.read(gpa, 24))


def setup(p, size=SIZE, **fields):
    """The guest converts the buffer to shared and writes the header and a
    TDREPORT-shaped request (REPORTDATA at offset 128)."""
    assert p.td.call("tdx_map_gpa", BUF, BUF + size, 1) == SUCCESS
    report = bytearray(1024)
    report[128:192] = REPORTDATA
    p.td.write(BUF, header(**fields) + bytes(report))


def get_quote(p, gpa=BUF | SHARED, size=SIZE):
    return p.vmcall(r10=0, r11=0x10002, r12=gpa, r13=size).gprs["r10"]


def test_success_means_queued(probe):
    """Spec 4.5: SUCCESS only queues; the header says in flight."""
    p = probe()
    setup(p)
    assert get_quote(p) == SUCCESS
    assert read_header(p.td) == (1, IN_FLIGHT, 1024, 0)


def test_completion_writes_the_quote_then_raises_the_notify_vector(probe):
    """Spec 4.5/6.4: after the delay the service writes the quote at GPA + 24,
    then out_len and status, then raises the registered vector."""
    p = probe()
    p.td.host.quote_service.delay_ns = 5000
    install_idt_stub(p.td.vcpu, VECTOR)
    assert p.td.call("tdx_setup_event_notify", VECTOR) == SUCCESS
    setup(p)
    queued_at = p.td.now_ns()
    assert p.td.call("tdx_get_quote", BUF, SIZE) == SUCCESS
    result = p.td.call_result("tdx_safe_halt")
    assert result.reason == "return", result.describe()
    version, status, in_len, out_len = read_header(p.td)
    assert (version, status, in_len) == (1, SUCCESS, 1024)
    quote = p.td.read(BUF + 24, out_len)
    assert quote.startswith(b"TDXSIM SIMULATED QUOTE")
    assert quote[64:128] == REPORTDATA
    [done] = [e for e in result.events if isinstance(e, QuoteCompleted)]
    [irq] = [e for e in result.events if isinstance(e, InterruptDelivered)]
    assert irq.vector == VECTOR and irq.time_ns == done.time_ns >= queued_at + 5000


def test_quote_is_deterministic(probe):
    quotes = []
    for _ in range(2):
        p = probe()
        setup(p)
        get_quote(p)
        p.td.call_result("tdx_halt", 0)
        quotes.append(p.td.read(BUF + 24, read_header(p.td)[3]))
    assert quotes[0] == quotes[1]


def test_no_notify_vector_no_interrupt(probe):
    """Spec 6.4 step 7: completion raises nothing without a valid vector; a
    halt then has nothing to wake it, but the quote is there."""
    p = probe()
    setup(p)
    assert get_quote(p) == SUCCESS
    assert p.td.call_result("tdx_halt", 0).reason == "halted"
    assert read_header(p.td)[1] == SUCCESS


def test_request_that_is_not_a_tdreport_completes_with_error(probe):
    p = probe()
    setup(p, in_len=100)
    assert get_quote(p) == SUCCESS
    p.td.call_result("tdx_halt", 0)
    assert read_header(p.td) == (1, QUOTE_ERROR, 100, 0)


def test_no_quote_service(probe):
    """Spec 6.4 step 4: status 0x8000000000000001 in the header, R10 SUCCESS."""
    p = probe()
    p.td.host.quote_service = None
    setup(p)
    assert get_quote(p) == SUCCESS
    assert read_header(p.td) == (1, QGS_UNAVAILABLE, 1024, 0)


def test_sixteen_in_flight_then_retry(probe):
    """Spec 6.4 step 5: RETRY while 16 requests are in flight."""
    p = probe()
    setup(p)
    assert [get_quote(p) for _ in range(17)] == [SUCCESS] * 16 + [RETRY]


@pytest.mark.parametrize("gpa,size,status", [
    (BUF, SIZE, INVALID_OPERAND),                    # private GPA (KVM)
    (BUF + 8, SIZE, INVALID_OPERAND),                # private before alignment
    (BUF | SHARED, 0, INVALID_OPERAND),              # step 1: size 0
    (BUF + 8 | SHARED, 0, INVALID_OPERAND),          # size 0 before alignment
    (BUF + 8 | SHARED, SIZE, ALIGN_ERROR),           # step 2: GPA
    (BUF | SHARED, 0x1800, ALIGN_ERROR),             # step 2: size
    (BUF | SHARED, 0x21000, INVALID_OPERAND),        # step 3: over 128 KiB
], ids=["private", "private-unaligned", "size-0", "size-0-unaligned", "unaligned-gpa",
        "unaligned-size", "too-big"])
def test_checks_in_order(probe, gpa, size, status):
    p = probe()
    setup(p)
    assert get_quote(p, gpa, size) == status


def test_128_kib_is_allowed(probe):
    p = probe()
    setup(p)
    assert get_quote(p, BUF | SHARED, 0x20000) == SUCCESS


@pytest.mark.parametrize("fields,status", [
    (dict(version=2), INVALID_OPERAND),
    (dict(version=0), INVALID_OPERAND),
    (dict(in_len=SIZE - 23), INVALID_OPERAND),
    (dict(in_len=SIZE - 24), SUCCESS),
])
def test_header_checks(probe, fields, status):
    """Spec 6.4 step 3: version 1, in_len <= size - 24."""
    p = probe()
    setup(p, **fields)
    assert get_quote(p) == status


def test_unreadable_header_is_invalid_operand(probe):
    """A shared GPA whose page the guest never converted: QEMU cannot read
    the header (the host cannot read private memory)."""
    p = probe()
    p.td.write(BUF, header())
    assert get_quote(p) == INVALID_OPERAND


def test_buffer_made_private_before_completion_is_out_of_the_hosts_reach(probe):
    p = probe()
    install_idt_stub(p.td.vcpu, VECTOR)
    p.td.call("tdx_setup_event_notify", VECTOR)
    setup(p)
    assert get_quote(p) == SUCCESS
    assert p.td.call("tdx_map_gpa", BUF, BUF + SIZE, 0) == SUCCESS
    result = p.td.call_result("tdx_safe_halt")
    assert result.reason == "return"
    assert p.td.read(BUF, 24 + 176) == bytes(24 + 176)  # nothing written
    assert [e.vector for e in result.events if isinstance(e, InterruptDelivered)] == [VECTOR]


# --- SetupEventNotifyInterrupt and GetTdVmCallInfo ---

@pytest.mark.parametrize("vector,status", [(32, SUCCESS), (255, SUCCESS), (31, INVALID_OPERAND),
                                           (256, INVALID_OPERAND), (0, INVALID_OPERAND)])
def test_setup_event_notify_vector_range(probe, vector, status):
    """Spec 4.7: 32 <= R12 <= 255, else INVALID_OPERAND."""
    p = probe()
    assert p.vmcall(r10=0, r11=0x10004, r12=vector).gprs["r10"] == status
    assert p.td.host.notify_vector == (vector if status == SUCCESS else None)


def test_get_td_vm_call_info_leaf1_bitmap(probe):
    """Spec 4.7, 13.1: R11 bit 0 = GetQuote (pre-2025 hosts only), bit 1 =
    SetupEventNotifyInterrupt."""
    p = probe(host="kvm-legacy")
    g = p.vmcall(r10=0, r11=0x10000, r12=1).gprs
    assert (g["r10"], g["r11"], g["r12"], g["r13"], g["r14"]) == (SUCCESS, 0b11, 0, 0, 0)
    del p.td.host.handlers[0x10002]
    assert p.vmcall(r10=0, r11=0x10000, r12=1).gprs["r11"] == 0b10
    assert p.vmcall(r10=0, r11=0x10002, r12=BUF | SHARED, r13=SIZE).gprs["r10"] \
        == 0x8000000000000000  # kvm-legacy: INVALID_OPERAND for an unknown sub-function


def test_bundled_quote_guest(capsys):
    """`tdxsim run quote`: MapGPA, GetQuote, the notify interrupt, the header."""
    assert main(["run", "quote"]) == 0
    out = capsys.readouterr().out
    assert "quote header: version 1, status 0x0000000000000000, in_len 1024, out_len " in out
    assert "REPORTDATA matches" in out
