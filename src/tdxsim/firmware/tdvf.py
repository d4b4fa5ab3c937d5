"""The TDVF descriptor of a firmware image (spec 14; EDK2 OvmfPkg/ResetVector
Ia16/ResetVectorVtf0.asm and X64/IntelTdxMetadata.asm; QEMU hw/i386/tdvf.c).

The image ends with the "OVMF table": a GUIDed list read backwards from 0x20
bytes before the end.  Its footer is {u16 total length, GUID 96b582de-...};
each entry before it is {data, u16 entry length, GUID}.  The TDX metadata
offset entry (GUID e47a6535-...) holds a u32: the descriptor starts that many
bytes before the end of the image, after the 16-byte TDX metadata GUID
e9eaf9f3-....  Descriptor: "TDVF", u32 length, u32 version (1), u32 number of
sections, then 32 bytes per section.
"""
from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from ..errors import ImageError

PAGE = 0x1000
TABLE_FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
METADATA_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
METADATA_GUID = uuid.UUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae")
FOOTER_END = 0x20  # the table ends this many bytes before the end of the image
ENTRY_TAIL = 18  # u16 length + GUID
SIGNATURE = b"TDVF"
HEADER = struct.Struct("<4sIII")
SECTION = struct.Struct("<IIQQII")
ATTR_MR_EXTEND = 1 << 0  # measured into MRTD as it is added
ATTR_PAGE_AUG = 1 << 1  # added unaccepted: the firmware accepts it


class SectionType(IntEnum):
    BFV = 0
    CFV = 1
    TD_HOB = 2
    TEMP_MEM = 3
    PERM_MEM = 4
    PAYLOAD = 5
    PAYLOAD_PARAM = 6


@dataclass(frozen=True)
class Section:
    data_offset: int  # in the image
    raw_size: int
    gpa: int
    size: int  # MemoryDataSize
    type: SectionType
    attributes: int

    @property
    def measured(self) -> bool:
        return bool(self.attributes & ATTR_MR_EXTEND)

    @property
    def augmented(self) -> bool:
        return bool(self.attributes & ATTR_PAGE_AUG)

    def describe(self) -> str:
        flags = "+".join(n for n, on in (("MR.EXTEND", self.measured),
                                         ("PAGE.AUG", self.augmented)) if on) or "-"
        return f"{self.type.name:<9} GPA {self.gpa:#010x} size {self.size:#08x} {flags}"


@dataclass(frozen=True)
class Tdvf:
    path: str
    image: bytes
    descriptor_offset: int
    sections: tuple[Section, ...]

    def of_type(self, kind: SectionType) -> list[Section]:
        return [s for s in self.sections if s.type == kind]

    def content(self, section: Section) -> bytes:
        """The section's bytes as placed in memory: its raw data, then zeros."""
        raw = self.image[section.data_offset:section.data_offset + section.raw_size]
        return raw + bytes(section.size - len(raw))


def _table(image: bytes, path: str) -> dict[uuid.UUID, bytes]:
    end = len(image) - FOOTER_END
    if end < ENTRY_TAIL or uuid.UUID(bytes_le=image[end - 16:end]) != TABLE_FOOTER_GUID:
        raise ImageError(f"{path}: no OVMF GUIDed table at the end of the image (footer GUID "
                         f"{TABLE_FOOTER_GUID} missing): not an OVMF/TDVF firmware image")
    total = int.from_bytes(image[end - ENTRY_TAIL:end - 16], "little")
    start, pos, entries = end - total, end - ENTRY_TAIL, {}
    if total < ENTRY_TAIL or start < 0:
        raise ImageError(f"{path}: the OVMF table claims {total} bytes, outside the image")
    while pos > start:
        length = int.from_bytes(image[pos - ENTRY_TAIL:pos - 16], "little")
        if length < ENTRY_TAIL or pos - length < start:
            raise ImageError(f"{path}: OVMF table entry at image offset {pos:#x} has a bad "
                             f"length {length}")
        guid = uuid.UUID(bytes_le=image[pos - 16:pos])
        entries[guid] = image[pos - length:pos - ENTRY_TAIL]
        pos -= length
    return entries


def parse_image(image: bytes, path: str = "<firmware>") -> Tdvf:
    entry = _table(image, path).get(METADATA_OFFSET_GUID)
    if entry is None or len(entry) < 4:
        raise ImageError(f"{path}: the OVMF table has no TDX metadata entry ({METADATA_OFFSET_GUID})"
                         ": this firmware was built without TDX support")
    offset = len(image) - int.from_bytes(entry[:4], "little")
    if not 16 <= offset <= len(image) - HEADER.size or \
            uuid.UUID(bytes_le=image[offset - 16:offset]) != METADATA_GUID:
        raise ImageError(f"{path}: no TDX metadata GUID {METADATA_GUID} before the descriptor "
                         f"at image offset {offset:#x}")
    signature, length, version, count = HEADER.unpack_from(image, offset)
    if signature != SIGNATURE or version != 1 or length != HEADER.size + count * SECTION.size \
            or offset + length > len(image):
        raise ImageError(f"{path}: bad TDVF descriptor at {offset:#x} (signature {signature!r}, "
                         f"version {version}, length {length}, {count} sections)")
    sections = tuple(_section(image, path, offset + HEADER.size + i * SECTION.size)
                     for i in range(count))
    return Tdvf(path, image, offset, sections)


def _section(image: bytes, path: str, at: int) -> Section:
    data_offset, raw_size, gpa, size, kind, attributes = SECTION.unpack_from(image, at)
    where = f"{path}: TDVF section at descriptor offset {at:#x}"
    if kind not in SectionType._value2member_map_:
        raise ImageError(f"{where}: unknown type {kind}")
    if gpa % PAGE or size % PAGE or not size or raw_size > size \
            or data_offset + raw_size > len(image) or gpa + size > 1 << 52:
        raise ImageError(f"{where}: GPA {gpa:#x}, size {size:#x}, raw data {data_offset:#x}"
                         f"+{raw_size:#x} is not a page-aligned range inside the image")
    return Section(data_offset, raw_size, gpa, size, SectionType(kind), attributes)


def parse(path: str | Path) -> Tdvf:
    try:
        image = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read firmware {path}: {exc.strerror or exc}") from None
    return parse_image(image, str(path))
