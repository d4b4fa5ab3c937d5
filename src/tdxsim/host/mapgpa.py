"""MapGPA (R11 = 0x10001): R12 = start GPA whose shared bit names the target
state, R13 = size; R11 = the resume GPA on RETRY and on error (spec 4.4, 6.3).

KVM's algorithm, in its order: user space must have enabled the exit; then
the range checks (INVALID_OPERAND), then alignment (ALIGN_ERROR), all with
R11 = R12.  The range is converted through user space in 2 MiB steps counted
from R12; after each step a pending interrupt makes KVM return RETRY with
R11 = the next GPA, so the guest resumes from there.

Since 2026 user space may also refuse a step with EAGAIN ("KVM: TDX: Allow
userspace to return errors to guest for MAPGPA", spec 13.1): the guest then
gets RETRY with R11 = the GPA of the refused step, which is R12 itself when
the first step is refused, i.e. no progress at all.  `host.map_gpa_eagain`,
a function (gpa, size) -> bool of the step user space is asked to convert
(shared bit stripped), says which steps user space refuses that way.
"""
from __future__ import annotations

from .. import abi
from ..abi import VmcallStatus
from ..events import MemoryConverted
from ..exits import VmExit, VmResume


def convert(host, gpa: int, size: int, shared: bool, implicit: bool = False) -> bool:
    """User space converts [gpa, gpa + size) (QEMU's kvm_convert_memory);
    implicit: for a guest access through the other alias (host/ept.py)."""
    ok = host.memory.convert(gpa, size, shared)
    host.record(MemoryConverted(host.clock.now(), gpa, size, shared, ok, implicit))
    return ok


def handle(host, exit: VmExit) -> VmResume:
    start, size = exit.r12, exit.r13
    if not host.map_gpa_exit:
        return VmResume.status(host.unsupported_status, r11=start)
    shared_bit = abi.shared_bit(host.gpaw)
    end = start + size
    last = end - 1
    if end & abi.MASK64 <= start or start >> host.gpaw or last >> host.gpaw \
            or (start ^ last) & shared_bit:
        return VmResume.status(VmcallStatus.INVALID_OPERAND, r11=start)
    if start % abi.PAGE_SIZE or size % abi.PAGE_SIZE:
        return VmResume.status(VmcallStatus.ALIGN_ERROR, r11=start)
    shared = bool(start & shared_bit)
    next_gpa = start
    while True:
        chunk = min(abi.MAP_GPA_CHUNK, end - next_gpa)
        busy = host.map_gpa_eagain
        if busy is not None and busy(next_gpa & ~shared_bit, chunk):
            return VmResume.status(VmcallStatus.RETRY, r11=next_gpa)
        if not convert(host, next_gpa & ~shared_bit, chunk, shared):
            return VmResume.status(VmcallStatus.INVALID_OPERAND, r11=next_gpa)
        next_gpa += chunk
        if next_gpa >= end:
            return VmResume.status(VmcallStatus.SUCCESS)
        if host.vcpus[exit.vcpu].lapic.deliverable() is not None:
            return VmResume.status(VmcallStatus.RETRY, r11=next_gpa)
