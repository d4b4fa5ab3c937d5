"""EPT violations of guest accesses: #VE or a TD exit (spec 8.1, 8.2;
[M-ve] td_ept_violation.c; SDM vol. 3 "Convertible EPT Violations").

Two kinds become #VE:
- a private GPA on a pending page, unless TD_CTLS.PENDING_VE_DISABLE is set
  (the SEPT_VE_DISABLE attribute, or the guest's TDG.VM.WR, td_ctls.py): the
  module injects #VE (#DF while VE info is still valid, ve.py);
- a shared GPA with no memory behind it (MMIO): KVM's MMIO entry has
  suppress-#VE clear, so the CPU itself delivers #VE, but only while VE info
  is not valid (the CPU's "busy" dword is the module's VALID field); a busy
  area turns it into a VM exit like the rest.
Everything else exits to the host (host/ept.py), which sees the GPA with bits
11:0 cleared and, for a pending page, the PENDING extended qualification.

VE info: exit reason 48, the qualification (access type, GLA valid, and bit
8 set unless the page walk's own read of a paging-structure entry faulted),
the linear address and the GPA as accessed.  Instruction length and
information are undefined for EPT violations: 0 here.  The advanced
qualification bits 11:9 are 0, as on a CPU without that feature [uncertain].
Instruction fetches from shared GPAs are treated like data accesses
[uncertain: KVM treats such an exit as broken hardware].
"""
from __future__ import annotations

from .. import abi
from ..exits import EptExit
from ..memory import EptViolation, Page
from . import td_ctls
from .ve import VeInfo

_ACCESS = {"read": abi.EPT_QUAL_READ, "write": abi.EPT_QUAL_WRITE, "fetch": abi.EPT_QUAL_FETCH}


def ept_violation(module, violation: EptViolation) -> VeInfo | EptExit:
    shared = bool(violation.gpa & abi.shared_bit(module.config.gpaw))
    state = module.memory.state(violation.gpa)
    pending = not shared and state == Page.PENDING
    if shared:
        convertible = state is None and module.ve.info is None
    else:
        convertible = pending and not td_ctls.pending_ve_disabled(module)
    if not convertible:
        return EptExit(violation.gpa & ~(abi.PAGE_SIZE - 1), pending)
    qualification = (_ACCESS[violation.access] | abi.EPT_QUAL_GLA_VALID
                     | (0 if violation.walk else abi.EPT_QUAL_TRANSLATED))
    return VeInfo(abi.EXIT_REASON_EPT_VIOLATION, qualification, violation.la, violation.gpa)
