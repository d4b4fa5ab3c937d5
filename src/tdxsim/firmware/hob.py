"""The TD HOB the VMM writes for TDVF (spec 14; PI spec vol. 3 HOB formats,
EDK2 MdePkg/Include/Pi/PiHob.h; what QEMU writes: hw/i386/tdvf-hob.c).

A PHIT (handoff) HOB whose memory fields are left zero except the end of the
list, one resource-descriptor HOB per RAM range (system memory for pages the
VMM added, "unaccepted memory" type 7 for the pending rest), and an
end-of-list HOB.  Every HOB is 8-byte aligned.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

HOB_TYPE_HANDOFF = 0x0001
HOB_TYPE_RESOURCE_DESCRIPTOR = 0x0003
HOB_TYPE_END_OF_HOB_LIST = 0xFFFF
HANDOFF_TABLE_VERSION = 0x0009
RESOURCE_SYSTEM_MEMORY = 0x0
RESOURCE_MEMORY_UNACCEPTED = 0x7
# PRESENT | INITIALIZED | TESTED: QEMU's attributes for both kinds of TDVF RAM
RESOURCE_ATTRIBUTES = 0x1 | 0x2 | 0x4
_HEADER = struct.Struct("<HHI")
_PHIT = struct.Struct("<HHIII5Q")  # header, Version, BootMode, 4 memory fields, EndOfHobList
_RESOURCE = struct.Struct("<HHI16sIIQQ")  # header, Owner GUID, type, attributes, start, length


class RamRange(NamedTuple):
    start: int
    length: int
    accepted: bool


def ram_ranges(ram_size: int, accepted: list[tuple[int, int]]) -> list[RamRange]:
    """RAM [0, ram_size) cut into accepted ranges (one per added section, as
    QEMU keeps them) and the pending ranges between them."""
    ranges, cursor = [], 0
    for start, size in sorted(accepted):
        start, end = max(start, cursor), min(start + size, ram_size)
        if end <= start:
            continue
        if start > cursor:
            ranges.append(RamRange(cursor, start - cursor, False))
        ranges.append(RamRange(start, end - start, True))
        cursor = end
    if cursor < ram_size:
        ranges.append(RamRange(cursor, ram_size - cursor, False))
    return ranges


def build(hob_gpa: int, ranges: list[RamRange]) -> bytes:
    """The HOB list as it lies at hob_gpa."""
    body = b"".join(_RESOURCE.pack(HOB_TYPE_RESOURCE_DESCRIPTOR, _RESOURCE.size, 0, bytes(16),
                                   RESOURCE_SYSTEM_MEMORY if r.accepted
                                   else RESOURCE_MEMORY_UNACCEPTED,
                                   RESOURCE_ATTRIBUTES, r.start, r.length) for r in ranges)
    end = _HEADER.pack(HOB_TYPE_END_OF_HOB_LIST, _HEADER.size, 0)
    end_of_list = hob_gpa + _PHIT.size + len(body) + len(end)
    phit = _PHIT.pack(HOB_TYPE_HANDOFF, _PHIT.size, 0, HANDOFF_TABLE_VERSION, 0, 0, 0, 0, 0,
                      end_of_list)
    return phit + body + end
