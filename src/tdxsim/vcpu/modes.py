"""CPU modes besides tdxsim's default 64-bit start: the TDX reset state that
TDVF starts in (32-bit protected mode, paging off) and which code is 32-bit.

One UC_MODE_64 engine runs both kinds of code: Unicorn's register API in a
UC_MODE_32 engine reaches only the low 32 bits of eight GPRs (R8-R15 and the
upper halves read as 0), which a TD in long mode needs for every TDCALL.
The engine starts in long mode, so the reset state is reached the way a CPU
leaves long mode (Intel SDM vol. 3, 10.8.5): paging off clears EFER.LMA and
makes the code segment's D bit decide the operand size again.
"""
from __future__ import annotations

import struct

from unicorn import x86_const as X

from . import paging

MSR_EFER = 0xC000_0080
# The TD vCPU's initial state ([M-api] td_vmcs_init.c): CR0 = PE | NE,
# EFER = SCE | LME | NXE, flat 4 GiB segments with access rights C09B (code)
# and C093 (data), GDTR limit 0xFFFF, RFLAGS = 2, RIP = 0xFFFFFFF0.  CR4 is
# MCE only: VMXE (also set by the module) is the host's bit and Unicorn has
# no VMX.
RESET_CR0 = 0x21
RESET_CR4 = 0x40
RESET_EFER = 0x901
RESET_RIP = 0xFFFF_FFF0
_FLAT_GDT = struct.pack("<QQQ", 0, 0x00CF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF)
_CODE, _DATA = 0x08, 0x10
_SEGMENTS = (X.UC_X86_REG_DS, X.UC_X86_REG_ES, X.UC_X86_REG_FS, X.UC_X86_REG_GS, X.UC_X86_REG_SS)
DESC_L = 1 << 53  # 64-bit code segment


def enter_reset_state(vcpu, scratch: int) -> None:
    """Put the vCPU into TDX's initial 32-bit state.  Unicorn loads a segment
    register only from a descriptor table, so a flat GDT is written to the
    page at `scratch` for the loads and cleared again: the guest finds its
    memory as it was and the GDTR as the module leaves it (base 0)."""
    uc = vcpu.uc
    vcpu.mmu.mixed_modes = True
    uc.reg_write(X.UC_X86_REG_CR4, uc.reg_read(X.UC_X86_REG_CR4) | paging.CR4_PAE)
    uc.reg_write(X.UC_X86_REG_CR0, uc.reg_read(X.UC_X86_REG_CR0) | paging.CR0_PG)
    uc.reg_write(X.UC_X86_REG_CR0, RESET_CR0)  # paging off: leaves long mode
    uc.msr_write(MSR_EFER, RESET_EFER)
    uc.reg_write(X.UC_X86_REG_CR4, RESET_CR4)
    uc.reg_write(X.UC_X86_REG_CR3, 0)
    # The scratch page may be pending: these loads are tdxsim's, not the guest's.
    check, vcpu.mmu.check_gpa = vcpu.mmu.check_gpa, lambda gpa, la, access: gpa
    saved = vcpu.phys_read(scratch, len(_FLAT_GDT))
    try:
        vcpu.flush_translations()
        vcpu.phys_write(scratch, _FLAT_GDT)
        uc.reg_write(X.UC_X86_REG_GDTR, (0, scratch, len(_FLAT_GDT) - 1, 0))
        uc.reg_write(X.UC_X86_REG_CS, _CODE)
        for seg in _SEGMENTS:
            uc.reg_write(seg, _DATA)
    finally:
        vcpu.phys_write(scratch, saved)
        vcpu.mmu.check_gpa = check
        vcpu.flush_translations()
    uc.reg_write(X.UC_X86_REG_GDTR, (0, 0, 0xFFFF, 0))
    uc.reg_write(X.UC_X86_REG_IDTR, (0, 0, 0, 0))


def code64(vcpu) -> bool:
    """Whether the vCPU executes 64-bit code: long mode active and the code
    segment's L bit set (read from the GDT; compatibility mode otherwise)."""
    uc = vcpu.uc
    if not uc.msr_read(MSR_EFER) & paging.EFER_LMA:
        return False
    selector = uc.reg_read(X.UC_X86_REG_CS)
    _, base, limit, _ = uc.reg_read(X.UC_X86_REG_GDTR)
    if selector & 4 or (selector | 7) > limit:
        return True  # an LDT selector or beyond the limit: cannot tell, assume 64-bit
    address = base + (selector & ~7)
    if not vcpu.readable(address, 8):
        return True  # the GDT is not readable: cannot tell
    return bool(int.from_bytes(vcpu.read(address, 8), "little") & DESC_L)
