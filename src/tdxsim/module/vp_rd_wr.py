"""TDG.VP.RD (leaf 9) and TDG.VP.WR (leaf 10): vCPU-scope metadata, the
TDVPS (spec 13.2; [M-api] tdg_vp_rd_wr.c, metadata_vp.c,
tdvps_fields_lookup.c).

Inputs: RCX must be 0 (else OPERAND_INVALID(RCX)), RDX = field ID; WR: R8 =
value, R9 = write mask.  Out: R8 = the value (RD) or the old value (WR), 0
on failure; RD also returns the next field ID in RDX (FIELD_ID_NA at the
end and on failure), and a null field ID asks for the first one
(METADATA_FIRST_FIELD_ID_IN_CONTEXT).  Lookup and write rules: metadata.py.

Guest-visible field of a TD without L2 VMs modelled here: CPUID_CONTROL,
one byte per entry of the module's CPUID table (guest write mask 3: bit 0
#VE for that leaf at CPL 0, bit 1 at CPL > 0; td_cpuid.c checks it after
the TD-wide TDG.VP.CPUIDVE.SET bits).  Entry i is tdxsim's i-th natively
answered leaf, sub-leaf 0 [uncertain: the module's table order, with one
entry per sub-leaf].  The L2 VM fields (L2 VMCS, MSR bitmaps) belong to TD
partitioning, which is not modelled.
"""
from __future__ import annotations

from .. import abi
from ..abi import Status
from .common import complete
from .intercept import NATIVE_CPUID_LEAVES
from .metadata import Field, FieldTable

CPUID_CONTROL_LEAVES = tuple(sorted(NATIVE_CPUID_LEAVES | abi.CPUID_LEAVES_VIRT_CPUID2
                                    | abi.CPUID_LEAVES_TOPOLOGY | abi.CPUID_LEAVES_REDUCE_VE))


def _read_control(module, element: int) -> int:
    leaves = CPUID_CONTROL_LEAVES
    return module.vp.cpuid_control.get(leaves[element], 0) if element < len(leaves) else 0


def _control_writer(element: int):
    def write(module, value: int) -> int:
        if element < len(CPUID_CONTROL_LEAVES):
            module.vp.cpuid_control[CPUID_CONTROL_LEAVES[element]] = value
        return Status.SUCCESS
    return write


FIELDS = FieldTable([
    Field(abi.FIELD_VP_CPUID_CONTROL | i, lambda m, _, i=i: _read_control(m, i),
          abi.CPUID_CONTROL_GUEST_WRITABLE, _control_writer(i))
    for i in range(abi.CPUID_CONTROL_ENTRIES)
])


def handle_rd(module, regs, time_ns: int):
    field_id = regs.get(abi.RDX)
    failed = {abi.RDX: abi.FIELD_ID_NA, abi.R8: 0}
    if regs.get(abi.RCX) != 0:
        return complete(regs, abi.operand_invalid(abi.RCX), failed)
    if FIELDS.is_null(field_id):
        return complete(regs, Status.METADATA_FIRST_FIELD_ID_IN_CONTEXT,
                        failed | {abi.RDX: FIELDS.next_id(None)})
    status, value, field = FIELDS.read(module, field_id)
    if status:
        return complete(regs, status, failed)
    return complete(regs, Status.SUCCESS, {abi.RDX: FIELDS.next_id(field), abi.R8: value})


def handle_wr(module, regs, time_ns: int):
    if regs.get(abi.RCX) != 0:
        return complete(regs, abi.operand_invalid(abi.RCX), {abi.R8: 0})
    status, old = FIELDS.write(module, regs.get(abi.RDX), regs.get(abi.R8), regs.get(abi.R9))
    return complete(regs, status, {abi.R8: old})
