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

from .. import abi
from ..abi import Status
from . import td_ctls
from .common import complete
from .metadata import Field, FieldTable


def _set_notify(module, value) -> int:
    module.notify_enables = value
    return Status.SUCCESS


FIELDS = FieldTable([
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
])


def _vm_index_ok(regs) -> bool:
    return regs.get(abi.RCX) == 0


def handle_rd(module, regs, time_ns: int):
    version = regs.get(abi.RAX) >> abi.RAX_VERSION_SHIFT & abi.RAX_VERSION_MASK
    field_id = regs.get(abi.RDX)
    out = {abi.R8: 0} | ({abi.RDX: abi.FIELD_ID_NA} if version else {})
    if not _vm_index_ok(regs):
        return complete(regs, abi.operand_invalid(abi.RCX), out)
    if version and FIELDS.is_null(field_id):
        return complete(regs, Status.METADATA_FIRST_FIELD_ID_IN_CONTEXT, out | {abi.RDX: FIELDS.next_id(None)})
    status, value, field = FIELDS.read(module, field_id)
    if status:
        return complete(regs, status, out)
    out[abi.R8] = value
    if version:
        out[abi.RDX] = FIELDS.next_id(field)
    return complete(regs, Status.SUCCESS, out)


def handle_wr(module, regs, time_ns: int):
    if not _vm_index_ok(regs):
        return complete(regs, abi.operand_invalid(abi.RCX), {abi.R8: 0})
    status, old = FIELDS.write(module, regs.get(abi.RDX), regs.get(abi.R8), regs.get(abi.R9))
    return complete(regs, status, {abi.R8: old})
