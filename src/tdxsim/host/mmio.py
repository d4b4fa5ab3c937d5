"""#VE.RequestMMIO (R11 = 48): R12 = size, R13 = 0 read / 1 write, R14 = GPA,
R15 = data for a write; read data in R11 (spec 4.3, 6.2).

KVM's checks: size in {1, 2, 4, 8}, direction in {0, 1}, and the first and
last byte must be shared GPAs (shared bit set, inside GPAW); otherwise
INVALID_OPERAND.  The shared bit is stripped before device dispatch.  A read
with no device behind the GPA returns 0 (QEMU's unassigned memory).
"""
from __future__ import annotations

from .. import abi
from ..abi import VmcallStatus
from ..exits import VmExit, VmResume


def is_shared_gpa(gpa: int, gpaw: int) -> bool:
    return gpa < 1 << gpaw and bool(gpa & abi.shared_bit(gpaw))


def handle(host, exit: VmExit) -> VmResume:
    size, direction, gpa = exit.r12, exit.r13, exit.r14
    if size not in abi.MMIO_SIZES or direction not in (abi.MMIO_READ, abi.MMIO_WRITE) \
            or not is_shared_gpa(gpa, host.gpaw) or not is_shared_gpa(gpa + size - 1, host.gpaw):
        return VmResume.status(VmcallStatus.INVALID_OPERAND)
    gpa &= ~abi.shared_bit(host.gpaw)
    device = host.mmio_device(gpa, size)
    if direction == abi.MMIO_READ:
        value = device.read(gpa, size) if device else 0
        return VmResume.status(VmcallStatus.SUCCESS, r11=value)
    if device:
        device.write(gpa, size, exit.r15 & (1 << 8 * size) - 1)
    return VmResume.status(VmcallStatus.SUCCESS)
