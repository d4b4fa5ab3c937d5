"""EPT-violation TD exits (spec 8.1; [KVM] tdx_handle_ept_violation and the
private/shared check of kvm_mmu_faultin_pfn; [QEMU] KVM_EXIT_MEMORY_FAULT).

Returns None once the host has changed the mapping, so that the TD runs the
faulting instruction (or TDCALL) again, or why the TD cannot go on:
- a pending private page (the TD has SEPT_VE_DISABLE): KVM kills the TD
  ("Guest access before accepting"; since 2025 a memory-fault exit of size 0
  that user space cannot serve, with the same end);
- the GPA's shared bit disagrees with the page's private/shared attribute:
  KVM exits to user space (KVM_EXIT_MEMORY_FAULT, one 4 KiB page) and QEMU
  converts the page: an implicit conversion.  The old contents are lost and a
  page made private is pending.  QEMU cannot make a GPA without RAM private:
  the VM stops;
- a shared GPA without RAM (MMIO) gets here only when the CPU could not raise
  #VE because VE info is still valid: KVM cannot emulate a TD's instruction
  and re-enters it at the same instruction, forever [uncertain: inferred from
  vt_check_emulate_instruction returning X86EMUL_RETRY_INSTR].
"""
from __future__ import annotations

from .. import abi
from ..exits import EptExit
from .mapgpa import convert


def handle(host, exit: EptExit) -> str | None:
    shared_bit = abi.shared_bit(host.gpaw)
    gpa, shared = exit.gpa & ~shared_bit, bool(exit.gpa & shared_bit)
    if exit.pending:
        return (f"KVM kills the TD: guest access before accepting GPA {gpa:#x} (with "
                "SEPT_VE_DISABLE a pending page raises no #VE)")
    if shared and host.memory.is_private(gpa) is None:
        return ("MMIO while VE info is still valid: the CPU cannot raise #VE, and KVM, "
                "which cannot emulate a TD's instruction, re-enters it forever (a livelock)")
    if convert(host, gpa, abi.PAGE_SIZE, shared, implicit=True):
        return None
    return f"QEMU cannot convert GPA {gpa:#x} to private (no guest RAM there): the VM stops"
