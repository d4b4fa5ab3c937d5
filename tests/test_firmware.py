"""Debian's TDVF (OVMF.fd, edk2 2022.11) booted as a TD (spec 14).

Expected values come from spec 14 (the descriptor measured on this image,
the build rules) and the TDX build records (spec 1.3), computed here with
hashlib, never by tdxsim's own measurement code.  One boot is shared by the
tests (module fixture); .ci/run installs the `ovmf` package.
"""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from tdxsim.cli import main
from tdxsim.errors import ImageError
from tdxsim.firmware import parse
from tdxsim.firmware.boot import FirmwareTD
from tdxsim.module import TdConfig

OVMF = Path("/usr/share/ovmf/OVMF.fd")
MiB = 1 << 20
MEMORY = 128 * MiB
BOOT_INSNS = 50_000_000  # past the acceptance of all pending RAM (measured: ~45 M)
PAGE = 0x1000
# Spec 14: the sections measured on Debian's OVMF.fd, in descriptor order
# (type, GPA, size, attributes; MR.EXTEND = 1).
SECTIONS = [(0, 0xFFE20000, 0x1E0000, 1), (1, 0xFFE00000, 0x20000, 0),
            (3, 0x810000, 0x10000, 0), (3, 0x80B000, 0x2000, 0),
            (2, 0x809000, 0x2000, 0), (3, 0x800000, 0x6000, 0)]
BFV_IMAGE_OFFSET = 0x20000  # the BFV is the image after the 128 KiB CFV
TEMP_AND_HOB = [(gpa, size) for kind, gpa, size, _ in SECTIONS if kind in (2, 3)]

pytestmark = pytest.mark.skipif(not OVMF.exists(), reason="apt-get install ovmf (.ci/run does)")


@pytest.fixture(scope="module")
def boot():
    td = FirmwareTD.from_path(OVMF, memory=MEMORY, config=TdConfig(no_rbp_mod=False))
    return td, td.run(max_insns=BOOT_INSNS, timeout=120)


def test_descriptor_matches_spec():
    fw = parse(OVMF)
    assert fw.descriptor_offset == 0x1FF7C0
    assert [(s.type, s.gpa, s.size, s.attributes) for s in fw.sections] == SECTIONS


def test_not_firmware_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.fd"
    bad.write_bytes(bytes(4096))
    with pytest.raises(ImageError, match="OVMF GUIDed table"):
        parse(bad)
    assert main(["run", "--firmware", str(bad)]) == 2


def test_milestone1_reset_vector_reaches_64bit_sec(boot):
    """The reset vector detected TDX (CPUID 0x21), built page tables and
    switched to long mode: TDCALL, which only 64-bit code can issue, came
    from the BFV (SEC) at the top of 4 GiB."""
    td, result = boot
    assert result.reason == "budget"
    assert 0xFFE20000 <= td.observer.first_64bit_rip < 1 << 32
    assert td.vcpu.code64()


def test_firmware_accepts_exactly_the_unaccepted_ram_of_the_td_hob(boot):
    """The TD HOB lists RAM minus TempMem and the TD HOB as unaccepted
    (spec 14); the firmware accepts every one of those pages, 4 KiB each
    (2 MiB accepts of pending ranges answer PAGE_SIZE_MISMATCH), and no
    other."""
    td, _ = boot
    added = {p for gpa, size in TEMP_AND_HOB for p in range(gpa, gpa + size, PAGE)}
    expected = set(range(0, MEMORY, PAGE)) - added
    accepted = td.observer.accepted
    assert len(accepted) == len(set(accepted)) == len(expected)
    assert set(accepted) == expected


def test_td_hob_layout(boot):
    """PHIT, one resource descriptor per range (system memory 0 / unaccepted
    7, attributes PRESENT|INITIALIZED|TESTED), end of list (PI spec HOBs)."""
    td, _ = boot
    ranges, cursor = [], 0
    for gpa, size in sorted(TEMP_AND_HOB):
        if gpa > cursor:
            ranges.append((7, cursor, gpa - cursor))
        ranges.append((0, gpa, size))
        cursor = gpa + size
    ranges.append((7, cursor, MEMORY - cursor))
    body = b"".join(struct.pack("<HHI16sIIQQ", 3, 48, 0, bytes(16), kind, 7, start, length)
                    for kind, start, length in ranges)
    end = 0x809000 + 56 + len(body) + 8
    expected = struct.pack("<HHIII5Q", 1, 56, 0, 9, 0, 0, 0, 0, 0, end) + body \
        + struct.pack("<HHI", 0xFFFF, 8, 0)
    assert td.hob == expected


def _record(tag: bytes, gpa: int) -> bytes:
    return tag.ljust(16, b"\0") + gpa.to_bytes(8, "little") + bytes(104)


def test_mrtd_and_rtmrs(boot):
    """MRTD: per page in descriptor order a MEM.PAGE.ADD record; the BFV's
    pages (MR.EXTEND) also 16 MR.EXTEND records, each followed by its 256
    bytes (spec 1.3, 14).  No RTMR is extended during SEC."""
    td, _ = boot
    image = OVMF.read_bytes()
    h = hashlib.sha384()
    for kind, gpa, size, attributes in SECTIONS:
        for page in range(gpa, gpa + size, PAGE):
            h.update(_record(b"MEM.PAGE.ADD", page))
            if attributes & 1:
                offset = BFV_IMAGE_OFFSET + page - gpa
                for chunk in range(0, PAGE, 256):
                    h.update(_record(b"MR.EXTEND", page + chunk))
                    h.update(image[offset + chunk:offset + chunk + 256])
    assert td.module.measurements.mrtd == h.digest()
    assert td.module.measurements.rtmr == [bytes(48)] * 4


def test_no_rbp_mod_refuses_tdvf_2022_hypercalls():
    """Finding (README): edk2 2022.11's TDG.VP.VMCALL exposes RBP (RCX =
    0xFFEC); with NO_RBP_MOD, as KVM sets it, the module refuses every call
    with OPERAND_INVALID, and the firmware's fallback then reads MMIO
    through a bogus address."""
    td = FirmwareTD.from_path(OVMF, memory=32 * MiB)
    result = td.run(max_insns=20_000_000, timeout=60)
    assert result.reason == "crash" and not result.exits
    assert "non-canonical" in result.message


def test_cli_summary(capsys):
    code = main(["run", "--firmware", str(OVMF), "--memory", "32M", "--max-insns", "12000000"])
    err = capsys.readouterr().err
    assert code == 1
    assert "TDCALL leaves: MEM_PAGE_ACCEPT" in err and "MRTD" in err and "RTMR[3]" in err
