"""TD measurement registers and the TDREPORT (spec 1.3; [M-api] tdx_api_defs.h,
tdg_mr_report.c, tdg_mr_rtmr_extend.c).

MRTD follows the module's build-time algorithm: one SHA-384 over a 128-byte
TDH.MEM.PAGE.ADD record per 4 KiB page and, per 256-byte chunk, a 128-byte
TDH.MR.EXTEND record followed by the chunk.  Simulated part: tdxsim assumes
the VMM added and extended exactly the image's pages, in ascending GPA order.

The REPORTMACSTRUCT MAC is simulated too: HMAC-SHA-384 under the TD's
`report_key` (TdConfig), cut to the 32-byte MAC field, over the structure up
to the MAC.  No CPU key exists here; a verifier must use the same key.
"""
from __future__ import annotations

import hashlib
import hmac

from .. import abi
from ..errors import TdxsimError

PAGE = 0x1000


def _record(tag: bytes, gpa: int) -> bytes:
    return tag.ljust(16, b"\0") + gpa.to_bytes(8, "little") + bytes(104)


def mrtd(pages: list[tuple[int, bytes | None]]) -> bytes:
    """MRTD of (GPA, 4 KiB content) pages, added and extended in order; a
    page whose content is None was added (TDH.MEM.PAGE.ADD) but not
    extended (TDH.MR.EXTEND), as TDVF's unmeasured sections are."""
    h = hashlib.sha384()
    for gpa, content in pages:
        h.update(_record(b"MEM.PAGE.ADD", gpa))
        for off in range(0, PAGE, abi.MR_EXTEND_CHUNK) if content is not None else ():
            h.update(_record(b"MR.EXTEND", gpa + off))
            h.update(content[off:off + abi.MR_EXTEND_CHUNK])
    return h.digest()


class Measurements:
    """MRTD, the four RTMRs and the owner-supplied IDs of one TD."""

    def __init__(self, config):
        for name in ("mrconfigid", "mrowner", "mrownerconfig"):
            value = getattr(config, name)
            if not isinstance(value, bytes) or len(value) != abi.SHA384_SIZE:
                raise TdxsimError(f"TdConfig.{name} must be {abi.SHA384_SIZE} bytes (a SHA-384 "
                                  f"value), not {value!r}")
        for name in ("attributes", "xfam"):
            value = getattr(config, name)
            if not isinstance(value, int) or not 0 <= value < 1 << 64:
                raise TdxsimError(f"TdConfig.{name} must be a 64-bit unsigned integer, not {value!r}")
        if not isinstance(config.report_key, bytes) or not config.report_key:
            raise TdxsimError(f"TdConfig.report_key must be non-empty bytes, not {config.report_key!r}")
        self.config = config
        self.mrtd = bytes(abi.SHA384_SIZE)
        self.rtmr = [bytes(abi.SHA384_SIZE)] * abi.NUM_RTMRS

    def extend(self, index: int, data: bytes) -> None:
        """RTMR[index] = SHA-384(RTMR[index] || data)."""
        self.rtmr[index] = hashlib.sha384(self.rtmr[index] + data).digest()

    def tdinfo(self) -> bytes:
        cfg = self.config
        info = bytearray(abi.TDINFO_SIZE)
        info[abi.TDINFO_ATTRIBUTES:abi.TDINFO_ATTRIBUTES + 8] = cfg.attributes.to_bytes(8, "little")
        info[abi.TDINFO_XFAM:abi.TDINFO_XFAM + 8] = cfg.xfam.to_bytes(8, "little")
        for offset, value in ((abi.TDINFO_MRTD, self.mrtd), (abi.TDINFO_MRCONFIGID, cfg.mrconfigid),
                              (abi.TDINFO_MROWNER, cfg.mrowner),
                              (abi.TDINFO_MROWNERCONFIG, cfg.mrownerconfig),
                              *((abi.TDINFO_RTMR + abi.SHA384_SIZE * i, r)
                                for i, r in enumerate(self.rtmr))):
            info[offset:offset + abi.SHA384_SIZE] = value
        return bytes(info)

    def report(self, reportdata: bytes) -> bytes:
        """The 1024-byte TDREPORT_STRUCT for subtype 0, without service TDs
        (REPORTTYPE version 0).  CPUSVN and TEE_TCB_INFO are zero: there is
        no SEAM module to describe."""
        report = bytearray(abi.TDREPORT_SIZE)
        report[0] = abi.REPORT_TYPE_TDX
        report[1] = abi.REPORT_SUBTYPE_TDX
        tee_tcb_info = bytes(abi.TEE_TCB_INFO_SIZE)
        tdinfo = self.tdinfo()
        report[abi.REPORT_TEE_TCB_INFO_HASH:abi.REPORT_TEE_TCB_INFO_HASH + 48] = \
            hashlib.sha384(tee_tcb_info).digest()
        report[abi.REPORT_TEE_INFO_HASH:abi.REPORT_TEE_INFO_HASH + 48] = hashlib.sha384(tdinfo).digest()
        report[abi.REPORTDATA_OFFSET:abi.REPORTDATA_OFFSET + abi.REPORTDATA_SIZE] = reportdata
        mac = hmac.new(self.config.report_key, bytes(report[:abi.REPORT_MAC]), hashlib.sha384)
        report[abi.REPORT_MAC:abi.REPORT_MAC + abi.REPORT_MAC_SIZE] = mac.digest()[:abi.REPORT_MAC_SIZE]
        report[abi.REPORT_TEE_TCB_INFO:abi.REPORT_TEE_TCB_INFO + abi.TEE_TCB_INFO_SIZE] = tee_tcb_info
        report[abi.REPORT_TDINFO:] = tdinfo
        return bytes(report)
