"""Guest buffers a leaf reads or writes (RTMR data, REPORTDATA, TDREPORT).

Mirrors the module's check_walk_and_map_guest_side_gpa ([M-api] helpers.c):
bits above GPAW, or the shared bit where only private memory is allowed,
give TDX_OPERAND_INVALID with the operand that held the GPA.  A GPA the EPT
check refuses (no guest memory, a pending page, the wrong alias) would make
the real module take an EPT-violation TD exit to the VMM; tdxsim answers
OPERAND_INVALID instead, so the guest sees the mistake.
"""
from __future__ import annotations

from .. import abi


def walk(module, gpa: int, size: int, operand: int, private_only: bool) -> tuple[int, int]:
    """(status, guest address) of a `size`-byte buffer at `gpa`."""
    gpaw = module.config.gpaw
    shared = abi.shared_bit(gpaw)
    if gpa >> gpaw or (private_only and gpa & shared):
        return abi.operand_invalid(operand), 0
    if module.memory is None or not module.memory.accessible(gpa, size):
        return abi.operand_invalid(operand), 0
    return abi.Status.SUCCESS, gpa
