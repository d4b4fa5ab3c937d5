# tdcall.S - tdxsim guest library: the two TDCALL entry stubs,
# __tdx_hypercall (TDG.VP.VMCALL, the GHCI; every wrapper is built on it)
# and __tdx_module_call (every other TDCALL leaf).
#
# GNU as, AT&T syntax, x86-64, 64-bit mode, CPL0.  No C preprocessor:
# assemble with plain `as --64 -I DIR`, DIR being this directory (for
# tdcall.inc, the constants and macros every library file shares).
# Linked into every tdxsim guest image, in the order of LIBRARY in
# toolchain/sdk.py.  SysV AMD64 calls, frame pointer chain kept; references
# are to shared/spec/tdx-interface.md.

        .include "tdcall.inc"

        .text

# ---------------------------------------------------------------------------
# u64 __tdx_hypercall(struct tdx_hypercall_args *args, u64 flags)
#
# TDG.VP.VMCALL with the seed / Linux v5.19 ABI (spec 9.1).
#   RDI  args: { r10, r11, r12, r13, r14, r15 } (offsets 0..40), inputs
#   RSI  flags: TDX_HCALL_HAS_OUTPUT (1) copy R10-R15 back into *args;
#               TDX_HCALL_ISSUE_STI (2) execute STI right before TDCALL
#               (safe halt: the STI shadow covers the TDCALL, spec 7.3)
# Returns RAX = the VMM's R10 (GHCI status; untrusted by design).
# Exposes exactly R10-R15 (RCX = 0xFC00).  RDI and RSI are not exposed, so
# they are still valid (and trusted) after TDCALL.
# On exit: RCX = 0xFC00, R10 = R11 = 0, RDX/RSI/RDI/R8/R9 unchanged,
# callee-saved registers restored.  A TDCALL failure (RAX != 0) is a broken
# module: UD2, never return.
# ---------------------------------------------------------------------------
FUNC __tdx_hypercall
        push    %rbp
        mov     %rsp, %rbp
        # Callee-saved, and about to be handed to (and overwritten by) the VMM.
        push    %r15
        push    %r14
        push    %r13
        push    %r12

        mov     $TDG_VP_VMCALL, %eax

        mov     HC_R10(%rdi), %r10
        mov     HC_R11(%rdi), %r11
        mov     HC_R12(%rdi), %r12
        mov     HC_R13(%rdi), %r13
        mov     HC_R14(%rdi), %r14
        mov     HC_R15(%rdi), %r15

        # The mask is loaded before the branch so that, on the STI path,
        # nothing can sit between STI and TDCALL (bug class B7).
        mov     $TDVMCALL_EXPOSE_R10_R15, %ecx

        test    $TDX_HCALL_ISSUE_STI, %esi
        jnz     .Lhcall_sti
        tdcall
        jmp     .Lhcall_done
.Lhcall_sti:
        # Must stay byte-exact FB 66 0F 01 CC: an IRQ taken between the two
        # would be handled before the VMM sees HLT (lost wakeup, spec 7.3).
        sti
        tdcall
.Lhcall_done:
        # RAX is the module's status: nonzero means the call never reached
        # the VMM and R10 is meaningless (bug class B9).
        test    %rax, %rax
        jnz     .Lhcall_failed

        mov     %r10, %rax

        test    $TDX_HCALL_HAS_OUTPUT, %esi
        jz      .Lhcall_scrub
        mov     %r10, HC_R10(%rdi)
        mov     %r11, HC_R11(%rdi)
        mov     %r12, HC_R12(%rdi)
        mov     %r13, HC_R13(%rdi)
        mov     %r14, HC_R14(%rdi)
        mov     %r15, HC_R15(%rdi)

.Lhcall_scrub:
        # R10/R11 hold VMM-controlled values and no pop restores them: zero
        # them so they cannot feed a speculative gadget later (spec 9.1).
        # R12-R15 are overwritten by the pops.
        xor     %r10d, %r10d
        xor     %r11d, %r11d

        pop     %r12
        pop     %r13
        pop     %r14
        pop     %r15
        leave
        ret

.Lhcall_failed:
        ud2
ENDFUNC __tdx_hypercall

# ---------------------------------------------------------------------------
# u64 __tdx_module_call(u64 fn, u64 rcx, u64 rdx, u64 r8, u64 r9,
#                       struct tdx_module_output *out)
#
# Any TDCALL leaf other than TDG.VP.VMCALL (VP.INFO, VEINFO.GET, MR.REPORT,
# MEM.PAGE.ACCEPT, VM.RD/WR, ...).  The module, not the VMM, answers these.
#   RDI fn   -> RAX (leaf, plus version in bits 23:16)
#   RSI      -> RCX     RDX -> RDX     RCX -> R8     R8 -> R9
#   R9  out: if non-NULL, receives RCX, RDX, R8, R9, R10, R11 after TDCALL
#            (offsets 0, 8, 16, 24, 32, 40)
# Returns RAX = the TDX module completion status (spec 2), unchanged.
# RBX and R12-R15 are saved and restored: a few leaves (TDX 1.5 SYS.RDALL,
# VP.ENTER, ...) write more than RCX-R11, and callers must not care which.
# ---------------------------------------------------------------------------
.set MC_OUT, -48                        # saved `out`, below the 5 pushes

FUNC __tdx_module_call
        push    %rbp
        mov     %rsp, %rbp
        push    %rbx
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        push    %r9                     # out, at MC_OUT(%rbp)

        # Shuffle SysV args into TDCALL registers; order avoids overwriting
        # a source before it is read.
        mov     %rdi, %rax
        mov     %r8, %r9
        mov     %rcx, %r8
        mov     %rsi, %rcx
        # RDX is already in place.

        tdcall

        mov     MC_OUT(%rbp), %rdi
        test    %rdi, %rdi
        jz      .Lmc_done
        mov     %rcx, MO_RCX(%rdi)
        mov     %rdx, MO_RDX(%rdi)
        mov     %r8,  MO_R8(%rdi)
        mov     %r9,  MO_R9(%rdi)
        mov     %r10, MO_R10(%rdi)
        mov     %r11, MO_R11(%rdi)
.Lmc_done:
        mov     -40(%rbp), %r15
        mov     -32(%rbp), %r14
        mov     -24(%rbp), %r13
        mov     -16(%rbp), %r12
        mov     -8(%rbp), %rbx
        leave
        ret
ENDFUNC __tdx_module_call

# No executable stack.
        .section .note.GNU-stack, "", @progbits
