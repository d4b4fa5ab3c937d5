"""TDG.VM.RD (leaf 7, versions 0 and 1) and TDG.VM.WR (leaf 8): TD-scope
metadata (spec 1.3; [M-api] tdg_vm_rd_wr.c, metadata_td.c,
tdr_tdcs_fields_lookup.c).

Inputs: RCX = VM index (must be 0), RDX = field ID; WR: R8 = value, R9 =
write mask.  Output R8 = the value (RD) or the old value (WR), 0 on failure;
RD version 1 also returns the next field ID in RDX (FIELD_ID_NA at the end,
and a null field ID asks for the first one).  The fields are the documented
set below; any other ID is TDX_METADATA_FIELD_ID_INCORRECT.  TD_CTLS has
the module's special write rules (td_ctls.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .. import abi
from ..abi import Status
from . import td_ctls
from .common import complete

_CONTEXT_CODE_MASK = 0x7 << 52


@dataclass(frozen=True)
class Field:
    field_id: int  # canonical ID of the first element
    read: Callable  # (module, element) -> value
    wr_mask: int = 0  # bits the guest may write
    write: Callable | None = None  # (module, value) -> status
    elements: int = 1

    @property
    def size_mask(self) -> int:
        return (1 << (8 << (self.field_id >> 32 & 3))) - 1


def _set_notify(module, value) -> int:
    module.notify_enables = value
    return Status.SUCCESS


FIELDS = sorted([
    Field(abi.FIELD_NUM_VCPUS, lambda m, _: m.config.num_vcpus),
    Field(abi.FIELD_ATTRIBUTES, lambda m, _: m.config.attributes),
    Field(abi.FIELD_XFAM, lambda m, _: m.config.xfam),
    Field(abi.FIELD_MAX_VCPUS, lambda m, _: m.config.max_vcpus),
    Field(abi.FIELD_GPAW, lambda m, _: int(m.config.gpaw == 52)),
    Field(abi.FIELD_NOTIFY_ENABLES, lambda m, _: m.notify_enables, 1, _set_notify),
    Field(abi.FIELD_CONFIG_FLAGS, lambda m, _: td_ctls.config_flags(m.config)),
    Field(abi.FIELD_TD_CTLS, lambda m, _: m.td_ctls, abi.TD_CTLS_GUEST_WRITABLE, td_ctls.write),
    Field(abi.FIELD_TOPOLOGY_ENUM_CONFIGURED, lambda m, _: int(m.config.topology_enum_configured)),
    Field(abi.FIELD_MRTD, lambda m, i: int.from_bytes(m.measurements.mrtd[8 * i:8 * i + 8], "little"),
          elements=6),
], key=lambda f: f.field_id & abi.FIELD_ID_MATCH_MASK)  # the module's order: class, then field code


def _find(field_id: int) -> tuple[Field, int] | None:
    """The field holding `field_id` and the element index within it."""
    key = field_id & abi.FIELD_ID_MATCH_MASK
    for field in FIELDS:
        base = field.field_id & abi.FIELD_ID_MATCH_MASK
        if base <= key < base + field.elements:
            return field, key - base
    return None


def _next_id(field: Field | None) -> int:
    later = FIELDS[FIELDS.index(field) + 1:] if field else FIELDS
    return later[0].field_id if later else abi.FIELD_ID_NA


def _lookup(regs, field_id: int) -> tuple[int, tuple[Field, int] | None]:
    if regs.get(abi.RCX) != 0:
        return abi.operand_invalid(abi.RCX), None
    found = None if field_id & abi.FIELD_ID_RESERVED_MASK else _find(field_id)
    return (Status.SUCCESS if found else Status.METADATA_FIELD_ID_INCORRECT), found


def handle_rd(module, regs, time_ns: int):
    version = regs.get(abi.RAX) >> abi.RAX_VERSION_SHIFT & abi.RAX_VERSION_MASK
    field_id = regs.get(abi.RDX)
    out = {abi.R8: 0} | ({abi.RDX: abi.FIELD_ID_NA} if version else {})
    if version and regs.get(abi.RCX) == 0 and field_id | _CONTEXT_CODE_MASK == abi.FIELD_ID_NA:
        return complete(regs, Status.METADATA_FIRST_FIELD_ID_IN_CONTEXT, out | {abi.RDX: _next_id(None)})
    status, found = _lookup(regs, field_id)
    if status:
        return complete(regs, status, out)
    field, element = found
    out[abi.R8] = field.read(module, element) & field.size_mask
    if version:
        out[abi.RDX] = _next_id(field)
    return complete(regs, Status.SUCCESS, out)


def handle_wr(module, regs, time_ns: int):
    value, mask = regs.get(abi.R8), regs.get(abi.R9)
    status, found = _lookup(regs, regs.get(abi.RDX))
    if status:
        return complete(regs, status, {abi.R8: 0})
    field, element = found
    writable = field.wr_mask & mask
    if not writable:
        return complete(regs, Status.METADATA_FIELD_NOT_WRITABLE, {abi.R8: 0})
    old = field.read(module, element)
    forbidden = mask & ~field.wr_mask
    if old & forbidden != value & forbidden:
        return complete(regs, Status.METADATA_FIELD_VALUE_NOT_VALID, {abi.R8: 0})
    status = field.write(module, old & ~writable | value & writable)
    return complete(regs, status, {abi.R8: 0 if status else old})
