"""GetQuote (R11 = 0x10002) and SetupEventNotifyInterrupt (R11 = 0x10004):
asynchronous attestation quotes through a shared buffer (spec 4.5, 4.7, 6.4).

KVM refuses a private buffer GPA (INVALID_OPERAND) and strips the shared bit;
QEMU then applies its checks in order.  SUCCESS only means "queued": the
quote service answers after a virtual delay, writes the quote and the header,
and raises the vector registered with SetupEventNotifyInterrupt.

tdxsim's quote service is a stand-in: its "quote" is a deterministic blob,
clearly marked as simulated, that embeds the REPORTDATA of the TDREPORT it was
given.  It is not signed and proves nothing.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from .. import abi
from ..abi import VmcallStatus
from ..errors import HostError
from ..events import QuoteCompleted
from ..exits import VmExit, VmResume

QUOTE_MAGIC = b"TDXSIM SIMULATED QUOTE - NOT GENUINE, UNSIGNED".ljust(48, b"\0")
QUOTE_LAYOUT = 1


def simulated_quote(tdreport: bytes, serial: int) -> bytes:
    """48-byte magic, u32 layout 1, u32 length, u64 serial number of the
    request, the 64-byte REPORTDATA, SHA-384 of the whole TDREPORT."""
    reportdata = tdreport[abi.REPORTDATA_OFFSET:abi.REPORTDATA_OFFSET + abi.REPORTDATA_SIZE]
    digest = hashlib.sha384(tdreport).digest()
    length = len(QUOTE_MAGIC) + 16 + len(reportdata) + len(digest)
    return QUOTE_MAGIC + struct.pack("<IIQ", QUOTE_LAYOUT, length, serial) + reportdata + digest


@dataclass
class QuoteService:
    """The quote generation service behind QEMU (its socket configured)."""
    delay_ns: int = 1_000_000  # virtual time from request to completion
    in_flight: int = 0
    served: int = 0

    def answer(self, request: bytes, room: int) -> tuple[int, bytes]:
        """(status, quote) for a request: a TDREPORT that fits yields a quote."""
        self.served += 1
        if len(request) != abi.TDREPORT_SIZE:
            return abi.QUOTE_STATUS_ERROR, b""
        quote = simulated_quote(request, self.served)
        if len(quote) > room:
            return abi.QUOTE_STATUS_ERROR, b""
        return abi.QUOTE_STATUS_SUCCESS, quote


def setup_event_notify(host, exit: VmExit) -> VmResume:
    """Record (vector, APIC ID of the caller) for vectors 32..255."""
    if exit.r12 not in abi.EVENT_NOTIFY_VECTORS:
        return VmResume.status(VmcallStatus.INVALID_OPERAND)
    host.notify_vector, host.notify_vcpu = exit.r12, exit.vcpu
    return VmResume.status(VmcallStatus.SUCCESS)


def get_quote(host, exit: VmExit) -> VmResume:
    gpa, size = exit.r12, exit.r13
    shared_bit = abi.shared_bit(host.gpaw)
    if not gpa & shared_bit:  # KVM: the buffer must be shared
        return VmResume.status(VmcallStatus.INVALID_OPERAND)
    gpa &= ~shared_bit
    if size == 0:
        return VmResume.status(VmcallStatus.INVALID_OPERAND)
    if gpa % abi.PAGE_SIZE or size % abi.PAGE_SIZE:
        return VmResume.status(VmcallStatus.ALIGN_ERROR)
    try:
        return _queue(host, gpa, size)
    except HostError:  # QEMU: the buffer cannot be read or written
        return VmResume.status(VmcallStatus.INVALID_OPERAND)


def _queue(host, gpa: int, size: int) -> VmResume:
    version, _, in_len, out_len = struct.unpack(
        abi.QUOTE_HEADER, host.memory.read(gpa, abi.QUOTE_HEADER_SIZE))
    if version != abi.QUOTE_VERSION or size > abi.QUOTE_MAX_BUFFER \
            or in_len > size - abi.QUOTE_HEADER_SIZE:
        return VmResume.status(VmcallStatus.INVALID_OPERAND)
    service = host.quote_service

    def header(status: int, out: int) -> bytes:
        return struct.pack(abi.QUOTE_HEADER, version, status, in_len, out)

    if service is None:
        host.memory.write(gpa, header(abi.QUOTE_STATUS_UNAVAILABLE, out_len))
        return VmResume.status(VmcallStatus.SUCCESS)
    if service.in_flight >= abi.QUOTE_MAX_IN_FLIGHT:
        return VmResume.status(VmcallStatus.RETRY)
    request = host.memory.read(gpa + abi.QUOTE_HEADER_SIZE, in_len)
    host.memory.write(gpa, header(abi.QUOTE_STATUS_IN_FLIGHT, out_len))
    service.in_flight += 1

    def complete() -> None:
        service.in_flight -= 1
        status, quote = service.answer(request, size - abi.QUOTE_HEADER_SIZE)
        written = out_len
        if quote and _try(host.memory.write, gpa + abi.QUOTE_HEADER_SIZE, quote):
            written = len(quote)
        _try(host.memory.write, gpa, header(status, written))
        host.record(QuoteCompleted(host.clock.now(), gpa, status, written))
        if host.notify_vector is not None:
            host.vcpus[host.notify_vcpu].lapic.schedule(host.clock.now(), host.notify_vector)

    host.at(host.clock.now() + service.delay_ns, complete)
    return VmResume.status(VmcallStatus.SUCCESS)


def _try(write, gpa: int, data: bytes) -> bool:
    """QEMU logs a failed completion write and carries on (the guest may
    have made the buffer private again meanwhile)."""
    try:
        write(gpa, data)
        return True
    except HostError:
        return False
