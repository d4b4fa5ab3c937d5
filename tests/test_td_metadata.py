"""TDG.VM.RD (leaf 7) / TDG.VM.WR (leaf 8) on TD-scope metadata, and the
TDG.VP.INFO outputs of spec 1.3.

Field IDs and statuses come from the module ([M-api]
tdr_tdcs_fields_lookup.c, [M-err] tdx_error_codes_defs.h); spec 1.3 gives
the leaf registers and Linux's NOTIFY_ENABLES ID 0x9100000000000010.
"""
from __future__ import annotations

import pytest

from tdxsim import TdConfig

NOTIFY_ENABLES = 0x9100_0000_0000_0010  # as Linux spells it (spec 1.3)
ATTRIBUTES = 0x1110_0003_0000_0000
NUM_VCPUS = 0x9010_0002_0000_0001
FIELD_ID_INCORRECT = 0xC000_0C00_0000_0000
NOT_WRITABLE = 0xC000_0C01_0000_0000
VALUE_NOT_VALID = 0xC000_0C03_0000_0000
FIRST_FIELD_ID = 0x0000_0C0B_0000_0000
OPERAND_INVALID = 0xC000_0100_0000_0000
ALL = 0xFFFF_FFFF_FFFF_FFFF


def rd(p, field, version=0, rcx=0):
    g = p.tdcall(rax=7 | version << 16, rcx=rcx, rdx=field).gprs
    return g["rax"], g["r8"], g["rdx"]


def wr(p, field, value, mask, rcx=0):
    g = p.tdcall(rax=8, rcx=rcx, rdx=field, r8=value, r9=mask).gprs
    return g["rax"], g["r8"]


def test_linux_clears_notify_enables(probe):
    """Linux's tdx_early_init: VM.WR(NOTIFY_ENABLES, 0, mask -1) succeeds;
    R8 returns the old value."""
    p = probe()
    assert wr(p, NOTIFY_ENABLES, 1, 1) == (0, 0)
    assert rd(p, NOTIFY_ENABLES)[:2] == (0, 1)
    assert wr(p, NOTIFY_ENABLES, 0, ALL) == (0, 1)
    assert rd(p, NOTIFY_ENABLES)[:2] == (0, 0)


def test_write_mask_selects_the_bits(probe):
    """R9 is the write mask: bits outside the field's writable mask must keep
    their value (VALUE_NOT_VALID), and a mask with no writable bit is
    NOT_WRITABLE; R8 is 0 on failure."""
    p = probe()
    assert wr(p, NOTIFY_ENABLES, 1, 2) == (NOT_WRITABLE, 0)
    assert wr(p, NOTIFY_ENABLES, 3, 3) == (VALUE_NOT_VALID, 0)
    assert rd(p, NOTIFY_ENABLES)[:2] == (0, 0)


def test_attributes_read_only(probe):
    p = probe(config=TdConfig(attributes=0x1000_0000))
    assert rd(p, ATTRIBUTES)[:2] == (0, 0x1000_0000)
    assert wr(p, ATTRIBUTES, 0, ALL) == (NOT_WRITABLE, 0)


@pytest.mark.parametrize("field", [0x9110_0003_0000_0099, 0x1110_0003_0000_0000 | 1 << 62,
                                   ATTRIBUTES | 1 << 34])
def test_unknown_or_malformed_field_id(probe, field):
    """Unknown IDs, reserved bits or LAST_ELEMENT set -> METADATA_FIELD_ID_INCORRECT."""
    p = probe()
    assert rd(p, field)[:2] == (FIELD_ID_INCORRECT, 0)
    assert wr(p, field, 0, ALL) == (FIELD_ID_INCORRECT, 0)


def test_nonzero_vm_index_is_operand_invalid_rcx(probe):
    p = probe()
    assert rd(p, ATTRIBUTES, rcx=1)[0] == OPERAND_INVALID + 1
    assert wr(p, NOTIFY_ENABLES, 0, ALL, rcx=1)[0] == OPERAND_INVALID + 1


def test_vm_rd_version_1_enumerates_fields(probe):
    """Spec 1.2: VM.RD accepts version 1, which returns the next field ID in
    RDX; a null ID (all ones) asks for the first field."""
    p = probe()
    status, _, first = rd(p, ALL, version=1)
    assert status == FIRST_FIELD_ID and first == NUM_VCPUS
    status, value, nxt = rd(p, first, version=1)
    assert (status, value, nxt) == (0, 1, ATTRIBUTES)
    seen = [first]
    while nxt != ALL:
        seen.append(nxt)
        status, _, nxt = rd(p, nxt, version=1)
        assert status == 0
    assert NOTIFY_ENABLES | 3 << 32 | 1 << 52 in seen and len(seen) == len(set(seen))


def test_versions_above_the_leaf_limit(probe):
    """Spec 1.2: VM.RD takes version <= 1, VM.WR only 0 -> OPERAND_INVALID(RAX)."""
    p = probe()
    assert rd(p, ATTRIBUTES, version=2)[0] == OPERAND_INVALID
    assert p.tdcall(rax=8 | 1 << 16, rcx=0, rdx=NOTIFY_ENABLES, r8=0, r9=ALL).gprs["rax"] \
        == OPERAND_INVALID


def test_vp_info_r10_and_r11(probe):
    """Spec 1.3: R10 bit 0 = TDG.SYS.RD available (it is, spec 13.2),
    R11 = 0, and no TD exit."""
    after = probe().tdcall(rax=1, rcx=0)
    assert after.gprs["r10"] == 1 and after.gprs["r11"] == 0
    assert after.result.exits == []
