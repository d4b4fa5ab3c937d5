"""Metadata fields the guest reads and writes by field ID: one table per
context (TD scope: vm_rd_wr.py, vCPU scope: vp_rd_wr.py, the module itself:
sys_rd.py) with the module's lookup and write rules ([M-api]
metadata_generic.c md_check_as_single_element_id, md_read_element,
md_write_element, md_get_next_element_in_context).

A field is matched by CLASS_CODE (bits 61:56) and FIELD_CODE (23:0); size,
context and write-mask-valid bits are ignored, other reserved bits must be 0
(else METADATA_FIELD_ID_INCORRECT).  A write merges R8 under R9 & the
field's guest write mask: no writable bit -> NOT_WRITABLE; a bit of R9
outside the mask whose value would change -> VALUE_NOT_VALID.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .. import abi
from ..abi import Status

CONTEXT_CODE_MASK = 0x7 << 52


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


class FieldTable:
    def __init__(self, fields: list[Field]):
        # the module's order: class code, then field code
        self.fields = sorted(fields, key=lambda f: f.field_id & abi.FIELD_ID_MATCH_MASK)

    def find(self, field_id: int) -> tuple[Field, int] | None:
        """The field holding `field_id` and the element index within it."""
        if field_id & abi.FIELD_ID_RESERVED_MASK:
            return None
        key = field_id & abi.FIELD_ID_MATCH_MASK
        for field in self.fields:
            base = field.field_id & abi.FIELD_ID_MATCH_MASK
            if base <= key < base + field.elements:
                return field, key - base
        return None

    def next_id(self, field: Field | None) -> int:
        """The ID after `field` (the first one for None), FIELD_ID_NA at the end."""
        later = self.fields[self.fields.index(field) + 1:] if field else self.fields
        return later[0].field_id if later else abi.FIELD_ID_NA

    @staticmethod
    def is_null(field_id: int) -> bool:
        """The null field ID (all ones, context code ignored) asks for the first."""
        return field_id | CONTEXT_CODE_MASK == abi.FIELD_ID_NA

    def read(self, module, field_id: int) -> tuple[int, int, Field | None]:
        """(status, value, field)."""
        found = self.find(field_id)
        if found is None:
            return Status.METADATA_FIELD_ID_INCORRECT, 0, None
        field, element = found
        return Status.SUCCESS, field.read(module, element) & field.size_mask, field

    def write(self, module, field_id: int, value: int, mask: int) -> tuple[int, int]:
        """(status, old value)."""
        found = self.find(field_id)
        if found is None:
            return Status.METADATA_FIELD_ID_INCORRECT, 0
        field, element = found
        writable = field.wr_mask & mask
        if not writable:
            return Status.METADATA_FIELD_NOT_WRITABLE, 0
        old = field.read(module, element)
        forbidden = mask & ~field.wr_mask
        if old & forbidden != value & forbidden:
            return Status.METADATA_FIELD_VALUE_NOT_VALID, 0
        status = field.write(module, old & ~writable | value & writable)
        return status, 0 if status else old
