"""TDG.MR.REPORT (leaf 4) and TDG.MR.RTMR.EXTEND (leaf 2): spec 1.3 and the
module's TDREPORT_STRUCT layout ([M-api] tdx_api_defs.h): REPORTMACSTRUCT
(256 B: REPORTTYPE at 0, TEE_TCB_INFO_HASH at 32, TEE_INFO_HASH at 80,
REPORTDATA at 128, MAC at 224), TEE_TCB_INFO (239 B at 256), TDINFO (512 B
at 512: ATTRIBUTES 0, XFAM 8, MRTD 16, MRCONFIGID 64, MROWNER 112,
MROWNERCONFIG 160, RTMR0-3 at 208 + 48 i).

Hashes are recomputed here with hashlib, independently of tdxsim.
"""
from __future__ import annotations

import hashlib
import hmac

import pytest

from tdxsim import TdConfig, TdxsimError

REPORT = 0x300000  # 1024-byte aligned
DATA = 0x301000  # 64-byte aligned
EXTEND = 0x302000
TDINFO = 512
SHARED = 1 << 47  # GPAW 48
OPERAND_INVALID = 0xC000_0100_0000_0000
RCX, RDX, R8 = 1, 2, 8


def report(p, rcx=REPORT, rdx=DATA, r8=0):
    return p.tdcall(rax=4, rcx=rcx, rdx=rdx, r8=r8).gprs["rax"]


def extend(p, index, data=None, rcx=EXTEND):
    if data is not None:
        p.td.write(EXTEND, data)
    return p.tdcall(rax=2, rcx=rcx, rdx=index).gprs["rax"]


def test_report_layout(probe):
    """REPORTTYPE 0x81/subtype 0, REPORTDATA copied, TDINFO from the TD's
    configuration, TEE_INFO_HASH = SHA-384(TDINFO), MAC = the simulated
    HMAC-SHA-384 under the TD's key, cut to 32 bytes."""
    owner = bytes(range(48))
    p = probe(config=TdConfig(attributes=0x1000_0000, xfam=0x61AE7, mrowner=owner,
                              report_key=b"test key"))
    data = bytes(range(0x40, 0x80))
    p.td.write(DATA, data)
    assert report(p) == 0
    r = p.td.read(REPORT, 1024)
    assert r[0:4] == bytes([0x81, 0, 0, 0])
    assert r[128:192] == data
    assert r[TDINFO:TDINFO + 8] == (0x1000_0000).to_bytes(8, "little")
    assert r[TDINFO + 8:TDINFO + 16] == (0x61AE7).to_bytes(8, "little")
    assert r[TDINFO + 112:TDINFO + 160] == owner
    assert r[TDINFO + 208:TDINFO + 400] == bytes(192)  # RTMRs start at zero
    assert r[80:128] == hashlib.sha384(r[512:1024]).digest()
    assert r[32:80] == hashlib.sha384(r[256:495]).digest()
    assert r[224:256] == hmac.new(b"test key", r[:224], hashlib.sha384).digest()[:32]


def test_mrtd_measures_the_image(probe):
    """MRTD = SHA-384 over a 128-byte MEM.PAGE.ADD record per image page and
    a 128-byte MR.EXTEND record plus 256 bytes per chunk (the TDX build
    records); VM.RD returns the same value."""
    p = probe()
    pages = sorted({a for seg in p.td.image.segments
                    for a in range(seg.vaddr & ~0xFFF, seg.vaddr + seg.memsz, 0x1000)})
    image = {a: bytearray(0x1000) for a in pages}
    for seg in p.td.image.segments:
        for i, byte in enumerate(seg.data):
            image[(seg.vaddr + i) & ~0xFFF][(seg.vaddr + i) & 0xFFF] = byte
    h = hashlib.sha384()
    for gpa in pages:
        h.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + gpa.to_bytes(8, "little") + bytes(104))
        for off in range(0, 0x1000, 256):
            h.update(b"MR.EXTEND".ljust(16, b"\0") + (gpa + off).to_bytes(8, "little") + bytes(104))
            h.update(bytes(image[gpa][off:off + 256]))
    assert report(p) == 0
    assert p.td.read(REPORT + TDINFO + 16, 48) == h.digest()
    words = [p.tdcall(rax=7, rcx=0, rdx=0x1310_0003_0000_0000 + i).gprs["r8"] for i in range(6)]
    assert b"".join(w.to_bytes(8, "little") for w in words) == h.digest()


def test_rtmr_extend_is_visible_in_later_reports(probe):
    """RTMR[i] = SHA-384(RTMR[i] || 48 bytes), twice."""
    p = probe()
    a, b = bytes([1]) * 48, bytes([2]) * 48
    assert extend(p, 2, a) == 0
    assert extend(p, 2, b) == 0
    expected = hashlib.sha384(hashlib.sha384(bytes(48) + a).digest() + b).digest()
    assert report(p) == 0
    r = p.td.read(REPORT, 1024)
    assert r[TDINFO + 208 + 96:TDINFO + 208 + 144] == expected
    assert r[TDINFO + 208:TDINFO + 208 + 96] == bytes(96)  # RTMR0 and RTMR1 untouched


@pytest.mark.parametrize("rcx, rdx, operand", [
    (EXTEND + 8, 0, RCX),  # not 64-byte aligned
    (EXTEND + 32, 4, RCX),  # alignment is checked before the index
    (EXTEND | SHARED, 0, RCX),  # RTMR data must be private
    (1 << 50, 0, RCX),  # above GPAW
    (0x1000_0000, 0, RCX),  # no guest memory there
    (EXTEND, 4, RDX),  # index 0..3
    (EXTEND, 1 << 63, RDX),
])
def test_rtmr_extend_errors(probe, rcx, rdx, operand):
    p = probe()
    assert extend(p, rdx, rcx=rcx) == OPERAND_INVALID + operand
    assert report(p) == 0
    assert p.td.read(REPORT + TDINFO + 208, 192) == bytes(192)


@pytest.mark.parametrize("rcx, rdx, r8, operand", [
    (REPORT + 512, DATA, 0, RCX),  # TDREPORT not 1024-byte aligned
    (REPORT + 512, DATA + 1, 1, RCX),  # checked first
    (REPORT, DATA + 32, 0, RDX),  # REPORTDATA not 64-byte aligned
    (REPORT, 1 << 50, 0, RDX),  # above GPAW
    (REPORT, 0x1000_0000, 1, RDX),  # REPORTDATA is checked before the subtype
    (REPORT, DATA, 1, R8),  # subtype must be 0
    (0x1000_0000, DATA, 0, RCX),  # no guest memory for the TDREPORT
])
def test_report_errors(probe, rcx, rdx, r8, operand):
    p = probe()
    assert report(p, rcx, rdx, r8) == OPERAND_INVALID + operand
    assert p.td.read(REPORT, 1024) == bytes(1024)


def test_report_buffers_may_be_shared(probe):
    """[M-api]: both TDG.MR.REPORT buffers may be private or shared; a
    shared one must be a shared page, and the host can then read it."""
    p = probe()
    assert report(p, REPORT | SHARED, DATA | SHARED) == OPERAND_INVALID + RDX  # still private
    p.td.ram.convert(REPORT, 0x2000, shared=True)
    assert report(p, REPORT | SHARED, DATA | SHARED) == 0
    assert p.td.host.memory.read(REPORT, 1) == b"\x81"


def test_report_is_deterministic(probe):
    first, second = probe(), probe()
    assert report(first) == report(second) == 0
    assert first.td.read(REPORT, 1024) == second.td.read(REPORT, 1024)


@pytest.mark.parametrize("bad", [dict(mrowner=b"short"), dict(mrconfigid="text" * 12),
                                 dict(report_key=b""), dict(xfam=-1), dict(attributes=1 << 64)])
def test_bad_measurement_configuration_is_a_clear_error(probe, bad):
    with pytest.raises(TdxsimError, match="TdConfig"):
        probe(config=TdConfig(**bad))
