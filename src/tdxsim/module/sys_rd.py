"""TDG.SYS.RD (leaf 11) and TDG.SYS.RDALL (leaf 12): the TDX module's own
metadata (spec 13.2; [M-api] tdg_sys_rd.c, tdg_sys_rdall.c, metadata_sys.c).

SYS.RD: RDX = field ID; out R8 = the value, RDX = the next field ID
(FIELD_ID_NA at the end and on failure).  A null field ID answers
METADATA_FIRST_FIELD_ID_IN_CONTEXT with the first ID in RDX; an unknown or
malformed one METADATA_FIELD_ID_INCORRECT.

SYS.RDALL: RDX = GPA of a 4 KiB private page, R8 = the first field ID; the
module writes a metadata list there and returns in R8 the field ID to
continue from (FIELD_ID_NA when done).  RDX not 4 KiB aligned, shared or
unusable -> OPERAND_INVALID(RDX).  List layout: a u64 header (u16 bytes
used, u16 number of sequences), then per field a sequence header (the field
ID with LAST_ELEMENT_IN_FIELD in bits 37:34) and its elements as u64
[uncertain: the module packs consecutive fields into one sequence].

The field set is the module-info and version class Linux reads (vendor
0x8086, TDX 1.5 version numbers, TDX_FEATURES0 with ENUM_TOPOLOGY);
tdxsim's own values, not a real module's build.
"""
from __future__ import annotations

import struct

from .. import abi
from ..abi import Status
from .common import complete
from .gpa import walk
from .metadata import Field, FieldTable

_LAST_ELEMENT_SHIFT = 34


def _const(value: int):
    return lambda module, element: value


FIELDS = FieldTable([
    Field(abi.FIELD_SYS_VENDOR_ID, _const(abi.TDX_VENDOR_INTEL)),
    Field(abi.FIELD_SYS_MINOR_VERSION, _const(5)),
    Field(abi.FIELD_SYS_MAJOR_VERSION, _const(1)),
    Field(abi.FIELD_SYS_UPDATE_VERSION, _const(0)),
    Field(abi.FIELD_SYS_INTERNAL_VERSION, _const(0)),
    Field(abi.FIELD_SYS_BUILD_DATE, _const(20261206)),
    Field(abi.FIELD_SYS_BUILD_NUM, _const(1)),
    Field(abi.FIELD_SYS_ATTRIBUTES, _const(0)),
    Field(abi.FIELD_SYS_TDX_FEATURES0, _const(abi.TDX_FEATURES0_PENDING_EPT_VIOLATION_V2
                                               | abi.TDX_FEATURES0_ENUM_TOPOLOGY)),
])


def handle_rd(module, regs, time_ns: int):
    field_id = regs.get(abi.RDX)
    if FIELDS.is_null(field_id):
        return complete(regs, Status.METADATA_FIRST_FIELD_ID_IN_CONTEXT,
                        {abi.RDX: FIELDS.next_id(None), abi.R8: 0})
    status, value, field = FIELDS.read(module, field_id)
    if status:
        return complete(regs, status, {abi.RDX: abi.FIELD_ID_NA, abi.R8: 0})
    return complete(regs, Status.SUCCESS, {abi.RDX: FIELDS.next_id(field), abi.R8: value})


def handle_rdall(module, regs, time_ns: int):
    gpa, field_id = regs.get(abi.RDX), regs.get(abi.R8)
    if gpa % abi.MD_LIST_SIZE:
        return complete(regs, abi.operand_invalid(abi.RDX), {abi.R8: abi.FIELD_ID_NA})
    status, address = walk(module, gpa, abi.MD_LIST_SIZE, abi.RDX, private_only=True)
    if status:
        return complete(regs, status, {abi.R8: abi.FIELD_ID_NA})
    first = 0 if FIELDS.is_null(field_id) else FIELDS.find(field_id)
    if first is None:
        return complete(regs, Status.METADATA_FIELD_ID_INCORRECT, {abi.R8: abi.FIELD_ID_NA})
    start = FIELDS.fields.index(first[0]) if first else 0
    body, sequences, next_id = b"", 0, abi.FIELD_ID_NA
    for field in FIELDS.fields[start:]:
        values = [field.read(module, i) & field.size_mask for i in range(field.elements)]
        sequence = struct.pack(f"<Q{len(values)}Q", field.field_id
                               | (field.elements - 1) << _LAST_ELEMENT_SHIFT, *values)
        if 8 + len(body) + len(sequence) > abi.MD_LIST_SIZE:
            next_id = field.field_id
            break
        body, sequences = body + sequence, sequences + 1
    module.memory.write(address, struct.pack("<HHI", 8 + len(body), sequences, 0) + body)
    return complete(regs, Status.SUCCESS, {abi.R8: next_id})
