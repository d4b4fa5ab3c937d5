# tdcall.S - tdxsim guest library: TDCALL / TDG.VP.VMCALL (GHCI) stubs.
#
# GNU as, AT&T syntax, x86-64, 64-bit mode, CPL0.  No C preprocessor:
# assemble with plain `as --64`.  Linked into every tdxsim guest image.
#
# Every routine follows the SysV AMD64 calling convention (args in RDI, RSI,
# RDX, RCX, R8, R9; result in RAX; RBX, RBP, R12-R15 callee-saved) and keeps
# a frame pointer chain (push %rbp; mov %rsp,%rbp) so backtraces work.
#
# References are to shared/spec/tdx-interface.md.  The GHCI wrappers are all
# built on __tdx_hypercall (spec 9.1), which always exposes R10-R15
# (GPR_SELECT 0xFC00) and nothing else, so RDI/RSI/RDX/R8/R9/RBX/RBP never
# reach the VMM there.  Only tdx_report_fatal_error_code issues its own TDCALL,
# because the message needs more registers (spec 4.6).

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

# TDCALL leaves (RAX[15:0], spec 1.3)
.set TDG_VP_VMCALL,             0
.set TDG_VP_INFO,               1
.set TDG_MEM_PAGE_ACCEPT,       6

# TDG.MEM.PAGE.ACCEPT page levels in RCX bits 2:0 (spec 1.3)
.set TDX_PS_4K,                 0
.set TDX_PS_1G,                 2

# RCX GPR_SELECT masks (spec 0.1, 3.1).  Bit i selects GPR i.
.set TDVMCALL_EXPOSE_R10_R15,   0xFC00  # seed / Linux v5.19 __tdx_hypercall
.set TDVMCALL_EXPOSE_FATAL,     0xFFCC  # R10-R15, RBX, RSI, RDI, R8, R9, RDX;
                                        # never RBP (bit 5, NO_RBP_MOD)

# GHCI sub-functions in R11 when R10 = 0 (spec 4.3)
.set TDVMCALL_CPUID,            10
.set TDVMCALL_HLT,              12
.set TDVMCALL_IO,               30
.set TDVMCALL_RDMSR,            31
.set TDVMCALL_WRMSR,            32
.set TDVMCALL_MMIO,             48
.set TDVMCALL_WBINVD,           54
.set TDVMCALL_PCONFIG,          65
.set TDVMCALL_GET_TD_VM_CALL_INFO, 0x10000
.set TDVMCALL_MAP_GPA,          0x10001
.set TDVMCALL_GET_QUOTE,        0x10002
.set TDVMCALL_REPORT_FATAL_ERROR,  0x10003
.set TDVMCALL_SETUP_EVENT_NOTIFY,  0x10004
.set TDVMCALL_SERVICE,          0x10005

# GHCI status in R10 (spec 4.2) that the library acts on
.set TDVMCALL_STATUS_RETRY,     1

# tdx_map_gpa (spec 4.4): retries without progress before giving up (Linux
# v6.7+), and its own result when the host's resume GPA is out of range
.set MAP_GPA_MAX_RETRIES,       3
.set MAP_GPA_BAD_RESUME,        -2

# tdx_accept_memory: its own result for a range that is not 4 KiB aligned
.set ACCEPT_BAD_RANGE,          -1

# Direction operand in R13 for Instruction.IO and #VE.RequestMMIO (spec 4.3)
.set GHCI_DIR_READ,             0       # IN / MMIO read
.set GHCI_DIR_WRITE,            1       # OUT / MMIO write

# struct tdx_hypercall_args (spec 9.1): six u64, software-only layout
.set HC_R10,                    0
.set HC_R11,                    8
.set HC_R12,                    16
.set HC_R13,                    24
.set HC_R14,                    32
.set HC_R15,                    40
.set HC_SIZE,                   48

# __tdx_hypercall flags (spec 9.1)
.set TDX_HCALL_HAS_OUTPUT,      1
.set TDX_HCALL_ISSUE_STI,       2

# struct tdx_module_output: RCX, RDX, R8, R9, R10, R11 after TDCALL
.set MO_RCX,                    0
.set MO_RDX,                    8
.set MO_R8,                     16
.set MO_R9,                     24
.set MO_R10,                    32
.set MO_R11,                    40

# Devices of the simulated platform
.set COM1_THR,                  0x3F8   # COM1 transmit holding register
.set DEBUG_EXIT_PORT,           0xF4    # tdxsim debug-exit device

# ReportFatalError message: 8 registers x 8 bytes (spec 4.6)
.set FATAL_MSG_MAX,             64

# Stack frame of the GHCI wrappers.  The hypercall args struct sits at
# 0(%rsp); two spare slots keep caller arguments that are needed after the
# call.  They live in our own (private) stack, which the VMM cannot touch,
# so reloading a pointer from there after the TDCALL is safe (bug class B6).
# 64 bytes keeps RSP 16-byte aligned at the call (entry RSP = 8 mod 16,
# + push %rbp).
.set WR_FRAME,                  64
.set WR_SLOT0,                  HC_SIZE
.set WR_SLOT1,                  HC_SIZE + 8

# ---------------------------------------------------------------------------
# Macros
# ---------------------------------------------------------------------------

.macro FUNC name
        .globl  \name
        .type   \name, @function
        .p2align 4
\name:
.endm

.macro ENDFUNC name
        .size   \name, . - \name
.endm

# Prologue / epilogue of the GHCI wrappers (see WR_FRAME above).
.macro WRAPPER_ENTER
        push    %rbp
        mov     %rsp, %rbp
        sub     $WR_FRAME, %rsp
.endm

.macro WRAPPER_LEAVE
        leave
        ret
.endm

# HCALL_ARGS r10, r11, r12, r13, r14, r15
# Fill the struct tdx_hypercall_args at 0(%rsp).  Every field is written,
# unused ones with 0, because __tdx_hypercall exposes all of R10-R15: stale
# stack data must never reach the VMM (bug class B3).
.macro HCALL_ARGS r10:req, r11:req, r12=$0, r13=$0, r14=$0, r15=$0
        movq    \r10, HC_R10(%rsp)
        movq    \r11, HC_R11(%rsp)
        movq    \r12, HC_R12(%rsp)
        movq    \r13, HC_R13(%rsp)
        movq    \r14, HC_R14(%rsp)
        movq    \r15, HC_R15(%rsp)
.endm

# HCALL flags
# Call __tdx_hypercall on the struct at 0(%rsp) with the given flags.
.macro HCALL flags:req
        mov     %rsp, %rdi
        mov     \flags, %esi
        call    __tdx_hypercall
.endm

# SIZE_MASK size, dst
# dst = mask of the low `size` bytes (size >= 8: all ones; 0: zero).
# Clobbers RCX.  Used so that data is cut to the access size in both
# directions: no extra bytes leak to the VMM, none are accepted from it.
.macro SIZE_MASK size:req, dst:req
        mov     $-1, \dst
        cmp     $8, \size
        jae     .Lsize_mask_done_\@
        lea     0(, \size, 8), %rcx
        shl     %cl, \dst               # ones above bit size*8
        not     \dst                    # ... inverted: ones below it
.Lsize_mask_done_\@:
.endm

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

# ---------------------------------------------------------------------------
# u64 tdx_io_write(u64 port, u64 size, u64 value)
#
# Instruction.IO, OUT (R11 = 30): R12 = size (1/2/4), R13 = 1 (write),
# R14 = port, R15 = value cut to `size` bytes (as Linux handle_out does, so
# the VMM sees nothing beyond the access).  Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_io_write
        WRAPPER_ENTER
        SIZE_MASK %rsi, %rax
        and     %rdx, %rax
        HCALL_ARGS $0, $TDVMCALL_IO, %rsi, $GHCI_DIR_WRITE, %rdi, %rax
        HCALL   $0                      # OUT has no output
        WRAPPER_LEAVE
ENDFUNC tdx_io_write

# ---------------------------------------------------------------------------
# u64 tdx_io_read(u64 port, u64 size, u64 *value)
#
# Instruction.IO, IN (R11 = 30): R12 = size (1/2/4), R13 = 0 (read),
# R14 = port, R15 = 0.  On success (status 0) *value = host's R11 cut to
# `size` bytes; otherwise *value is left untouched.  Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_io_read
        WRAPPER_ENTER
        mov     %rdx, WR_SLOT0(%rsp)    # value pointer
        mov     %rsi, WR_SLOT1(%rsp)    # size
        HCALL_ARGS $0, $TDVMCALL_IO, %rsi, $GHCI_DIR_READ, %rdi, $0
        HCALL   $TDX_HCALL_HAS_OUTPUT
        test    %rax, %rax
        jnz     .Lio_read_out
        mov     WR_SLOT1(%rsp), %rdx
        SIZE_MASK %rdx, %r8
        and     HC_R11(%rsp), %r8
        mov     WR_SLOT0(%rsp), %rdx
        mov     %r8, (%rdx)
        xor     %r8d, %r8d              # held VMM data: do not leave it live
.Lio_read_out:
        WRAPPER_LEAVE
ENDFUNC tdx_io_read

# ---------------------------------------------------------------------------
# u64 tdx_cpuid(u64 leaf, u64 subleaf, u32 out[4])
#
# Instruction.CPUID (R11 = 10): R12 = leaf (EAX), R13 = sub-leaf (ECX).
# On success out[0..3] = EAX, EBX, ECX, EDX (low 32 bits of host's
# R12..R15); otherwise out is left untouched.  Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_cpuid
        WRAPPER_ENTER
        mov     %rdx, WR_SLOT0(%rsp)
        HCALL_ARGS $0, $TDVMCALL_CPUID, %rdi, %rsi, $0, $0
        HCALL   $TDX_HCALL_HAS_OUTPUT
        test    %rax, %rax
        jnz     .Lcpuid_out
        mov     WR_SLOT0(%rsp), %rdx
        mov     HC_R12(%rsp), %ecx
        mov     %ecx, 0(%rdx)           # EAX
        mov     HC_R13(%rsp), %ecx
        mov     %ecx, 4(%rdx)           # EBX
        mov     HC_R14(%rsp), %ecx
        mov     %ecx, 8(%rdx)           # ECX
        mov     HC_R15(%rsp), %ecx
        mov     %ecx, 12(%rdx)          # EDX
        xor     %ecx, %ecx              # held VMM data
.Lcpuid_out:
        WRAPPER_LEAVE
ENDFUNC tdx_cpuid

# ---------------------------------------------------------------------------
# u64 tdx_rdmsr(u64 msr, u64 *value)
#
# Instruction.RDMSR (R11 = 31): R12 = MSR index.  On success
# *value = host's R11 (EDX:EAX); otherwise untouched.  Returns GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_rdmsr
        WRAPPER_ENTER
        mov     %rsi, WR_SLOT0(%rsp)
        HCALL_ARGS $0, $TDVMCALL_RDMSR, %rdi
        HCALL   $TDX_HCALL_HAS_OUTPUT
        test    %rax, %rax
        jnz     .Lrdmsr_out
        mov     WR_SLOT0(%rsp), %rdx
        mov     HC_R11(%rsp), %rcx
        mov     %rcx, (%rdx)
        xor     %ecx, %ecx              # held VMM data
.Lrdmsr_out:
        WRAPPER_LEAVE
ENDFUNC tdx_rdmsr

# ---------------------------------------------------------------------------
# u64 tdx_wrmsr(u64 msr, u64 value)
#
# Instruction.WRMSR (R11 = 32): R12 = MSR index, R13 = value (EDX:EAX).
# Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_wrmsr
        WRAPPER_ENTER
        HCALL_ARGS $0, $TDVMCALL_WRMSR, %rdi, %rsi
        HCALL   $0
        WRAPPER_LEAVE
ENDFUNC tdx_wrmsr

# ---------------------------------------------------------------------------
# u64 tdx_mmio_read(u64 gpa, u64 size, u64 *value)
#
# #VE.RequestMMIO read (R11 = 48): R12 = size (1/2/4/8), R13 = 0 (read),
# R14 = shared GPA, R15 = 0 (never the caller's *value: bug class B3).
# On success *value = host's R11 cut to `size` bytes; otherwise untouched.
# Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_mmio_read
        WRAPPER_ENTER
        mov     %rdx, WR_SLOT0(%rsp)    # value pointer
        mov     %rsi, WR_SLOT1(%rsp)    # size
        HCALL_ARGS $0, $TDVMCALL_MMIO, %rsi, $GHCI_DIR_READ, %rdi, $0
        HCALL   $TDX_HCALL_HAS_OUTPUT
        test    %rax, %rax
        jnz     .Lmmio_read_out
        mov     WR_SLOT1(%rsp), %rdx
        SIZE_MASK %rdx, %r8
        and     HC_R11(%rsp), %r8
        mov     WR_SLOT0(%rsp), %rdx
        mov     %r8, (%rdx)
        xor     %r8d, %r8d              # held VMM data
.Lmmio_read_out:
        WRAPPER_LEAVE
ENDFUNC tdx_mmio_read

# ---------------------------------------------------------------------------
# u64 tdx_mmio_write(u64 gpa, u64 size, u64 value)
#
# #VE.RequestMMIO write (R11 = 48): R12 = size (1/2/4/8), R13 = 1 (write),
# R14 = shared GPA, R15 = value cut to `size` bytes.  Returns GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_mmio_write
        WRAPPER_ENTER
        SIZE_MASK %rsi, %rax
        and     %rdx, %rax
        HCALL_ARGS $0, $TDVMCALL_MMIO, %rsi, $GHCI_DIR_WRITE, %rdi, %rax
        HCALL   $0
        WRAPPER_LEAVE
ENDFUNC tdx_mmio_write

# ---------------------------------------------------------------------------
# u64 tdx_get_td_vm_call_info(u64 leaf, u64 out[4])
#
# GetTdVmCallInfo (R11 = 0x10000): R12 = leaf (0, or 1 from GHCI 1.5).
# On success out[0..3] = host's R11, R12, R13, R14 (spec 4.7); otherwise
# untouched.  Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_get_td_vm_call_info
        WRAPPER_ENTER
        mov     %rsi, WR_SLOT0(%rsp)
        HCALL_ARGS $0, $TDVMCALL_GET_TD_VM_CALL_INFO, %rdi
        HCALL   $TDX_HCALL_HAS_OUTPUT
        test    %rax, %rax
        jnz     .Linfo_out
        mov     WR_SLOT0(%rsp), %rdx
        mov     HC_R11(%rsp), %rcx
        mov     %rcx, 0(%rdx)
        mov     HC_R12(%rsp), %rcx
        mov     %rcx, 8(%rdx)
        mov     HC_R13(%rsp), %rcx
        mov     %rcx, 16(%rdx)
        mov     HC_R14(%rsp), %rcx
        mov     %rcx, 24(%rdx)
        xor     %ecx, %ecx              # held VMM data
.Linfo_out:
        WRAPPER_LEAVE
ENDFUNC tdx_get_td_vm_call_info

# ---------------------------------------------------------------------------
# u64 tdx_shared_mask(void)
#
# The shared bit of this TD, 1 << (GPAW - 1), from TDG.VP.INFO (RCX[5:0] =
# GPAW, spec 1.3).  The module, not the VMM, answers, so the value is
# trusted.  A TDCALL failure is a broken module: UD2.
# ---------------------------------------------------------------------------
FUNC tdx_shared_mask
        push    %rbp
        mov     %rsp, %rbp
        mov     $TDG_VP_INFO, %eax
        tdcall
        test    %rax, %rax
        jnz     .Lshared_mask_failed
        and     $0x3f, %ecx
        dec     %ecx
        mov     $1, %eax
        shl     %cl, %rax
        pop     %rbp
        ret
.Lshared_mask_failed:
        ud2
ENDFUNC tdx_shared_mask

# ---------------------------------------------------------------------------
# u64 tdx_map_gpa(u64 start, u64 end, u64 to_shared)
#
# MapGPA (R11 = 0x10001) over [start, end), private GPAs, 4 KiB aligned:
# to_shared != 0 converts to shared (the shared bit is set on start and end,
# as Linux does), 0 converts to private; pages made private are pending
# until accepted (spec 4.4).  On RETRY the host's resume GPA in R11 is
# untrusted (bug class B11): it must satisfy start <= R11 < end, and the
# call gives up after MAP_GPA_MAX_RETRIES retries without progress.
# Returns 0 on success, the host's error status, TDVMCALL_STATUS_RETRY (1)
# when retries ran out, or MAP_GPA_BAD_RESUME (-2) for a resume GPA outside
# the range.
# ---------------------------------------------------------------------------
.set MG_START,                  HC_SIZE
.set MG_END,                    HC_SIZE + 8
.set MG_RETRIES,                HC_SIZE + 16
.set MG_FRAME,                  HC_SIZE + 32    # keeps RSP 16-byte aligned

FUNC tdx_map_gpa
        push    %rbp
        mov     %rsp, %rbp
        sub     $MG_FRAME, %rsp
        mov     %rdi, MG_START(%rsp)
        mov     %rsi, MG_END(%rsp)
        movq    $0, MG_RETRIES(%rsp)
        test    %rdx, %rdx
        jz      .Lmg_call
        call    tdx_shared_mask
        or      %rax, MG_START(%rsp)
        or      %rax, MG_END(%rsp)
.Lmg_call:
        mov     MG_START(%rsp), %rax
        mov     MG_END(%rsp), %rcx
        sub     %rax, %rcx                      # size
        HCALL_ARGS $0, $TDVMCALL_MAP_GPA, %rax, %rcx
        HCALL   $TDX_HCALL_HAS_OUTPUT
        cmp     $TDVMCALL_STATUS_RETRY, %rax
        jne     .Lmg_out                        # SUCCESS or the host's error
        mov     HC_R11(%rsp), %rcx              # resume GPA, from the VMM
        cmp     MG_START(%rsp), %rcx
        jb      .Lmg_bad_resume
        cmp     MG_END(%rsp), %rcx
        jae     .Lmg_bad_resume
        cmp     MG_START(%rsp), %rcx
        jne     .Lmg_progress
        incq    MG_RETRIES(%rsp)                # a retry without progress
        cmpq    $MAP_GPA_MAX_RETRIES, MG_RETRIES(%rsp)
        jb      .Lmg_call
        mov     $TDVMCALL_STATUS_RETRY, %eax    # the host keeps stalling: give up
        jmp     .Lmg_out
.Lmg_progress:
        mov     %rcx, MG_START(%rsp)
        movq    $0, MG_RETRIES(%rsp)
        jmp     .Lmg_call
.Lmg_bad_resume:
        mov     $MAP_GPA_BAD_RESUME, %rax
.Lmg_out:
        xor     %ecx, %ecx                      # held VMM data
        leave
        ret
ENDFUNC tdx_map_gpa

# ---------------------------------------------------------------------------
# u64 tdx_accept_memory(u64 start, u64 end)
#
# Accepts the private GPAs [start, end) (4 KiB aligned) with
# TDG.MEM.PAGE.ACCEPT, as Linux's tdx_accept_memory does (spec 1.3, 4.4):
# at each step it tries 1 GiB, then 2 MiB, then 4 KiB, each only where the
# GPA is aligned to it and the rest of the range holds it, and falls back on
# any nonzero status (the module refuses 1 GiB; 2 MiB over 4 KiB pages is
# PAGE_SIZE_MISMATCH).  Like Linux it counts the warning
# PAGE_ALREADY_ACCEPTED as a failure.  Returns 0, the status of the failing 4 KiB accept
# (the pages before it stay accepted), or ACCEPT_BAD_RANGE (-1) when start
# or end is not 4 KiB aligned.
# ---------------------------------------------------------------------------
FUNC tdx_accept_memory
        push    %rbp
        mov     %rsp, %rbp
        push    %rbx
        push    %r12
        push    %r13
        mov     %rdi, %rbx                      # next GPA
        mov     %rsi, %r12                      # end
.Laccept_next:
        xor     %eax, %eax
        cmp     %r12, %rbx
        jae     .Laccept_out
        mov     $TDX_PS_1G, %r13d               # level: 1G, 2M, 4K
.Laccept_try:
        lea     (%r13, %r13, 8), %ecx
        add     $12, %ecx
        mov     $1, %edx
        shl     %cl, %rdx                       # size = 4 KiB << 9 * level
        lea     -1(%rdx), %rax
        test    %rax, %rbx
        jnz     .Laccept_smaller                # not aligned to this level
        mov     %r12, %rax
        sub     %rbx, %rax
        cmp     %rdx, %rax
        jb      .Laccept_smaller                # the range ends before the page
        mov     %rdx, %rsi
        mov     %rbx, %rcx
        or      %r13, %rcx                      # RCX = GPA | level
        mov     $TDG_MEM_PAGE_ACCEPT, %eax
        tdcall
        test    %rax, %rax
        jnz     .Laccept_failed
        add     %rsi, %rbx
        jmp     .Laccept_next
.Laccept_failed:
        cmp     $TDX_PS_4K, %r13d
        je      .Laccept_out                    # even 4 KiB failed: RAX = status
.Laccept_smaller:
        mov     $ACCEPT_BAD_RANGE, %rax
        sub     $1, %r13d
        jae     .Laccept_try
.Laccept_out:                                   # (falls through from a bad range)
        pop     %r13
        pop     %r12
        pop     %rbx
        pop     %rbp
        ret
ENDFUNC tdx_accept_memory

# ---------------------------------------------------------------------------
# u64 tdx_get_quote(u64 buf, u64 size)
#
# GetQuote (R11 = 0x10002), spec 4.5: R12 = the shared GPA of `buf` (a
# private GPA; the shared bit is added here), R13 = size.  `buf` must have
# been converted to shared and must start with the 24-byte header.
# SUCCESS only means queued: poll the header's status.  Returns the status.
# ---------------------------------------------------------------------------
FUNC tdx_get_quote
        WRAPPER_ENTER
        mov     %rdi, WR_SLOT0(%rsp)
        mov     %rsi, WR_SLOT1(%rsp)
        call    tdx_shared_mask
        or      WR_SLOT0(%rsp), %rax
        mov     WR_SLOT1(%rsp), %rcx
        HCALL_ARGS $0, $TDVMCALL_GET_QUOTE, %rax, %rcx
        HCALL   $0
        WRAPPER_LEAVE
ENDFUNC tdx_get_quote

# ---------------------------------------------------------------------------
# u64 tdx_setup_event_notify(u64 vector)
#
# SetupEventNotifyInterrupt (R11 = 0x10004), spec 4.7: the host raises
# `vector` (32..255) on this vCPU when, e.g., a quote is ready.
# Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_setup_event_notify
        WRAPPER_ENTER
        HCALL_ARGS $0, $TDVMCALL_SETUP_EVENT_NOTIFY, %rdi
        HCALL   $0
        WRAPPER_LEAVE
ENDFUNC tdx_setup_event_notify

# ---------------------------------------------------------------------------
# u64 tdx_wbinvd(u64 kind)
#
# Instruction.WBINVD (R11 = 54): R12 = 0 WBINVD, 1 WBNOINVD (spec 4.3,
# operands [uncertain]).  KVM does not serve it.  Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_wbinvd
        WRAPPER_ENTER
        HCALL_ARGS $0, $TDVMCALL_WBINVD, %rdi
        HCALL   $0
        WRAPPER_LEAVE
ENDFUNC tdx_wbinvd

# ---------------------------------------------------------------------------
# u64 tdx_pconfig(u64 leaf, u64 a, u64 b, u64 c, u64 *out)
#
# Instruction.PCONFIG (R11 = 65): R12 = leaf, R13..R15 = leaf operands, R11
# = output (spec 4.3, operands [uncertain]).  On success *out = R11 when
# `out` is not NULL.  KVM does not serve it.  Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_pconfig
        WRAPPER_ENTER
        mov     %r8, WR_SLOT0(%rsp)
        HCALL_ARGS $0, $TDVMCALL_PCONFIG, %rdi, %rsi, %rdx, %rcx
        HCALL   $TDX_HCALL_HAS_OUTPUT
        test    %rax, %rax
        jnz     .Lpconfig_out
        mov     WR_SLOT0(%rsp), %rdx
        test    %rdx, %rdx
        jz      .Lpconfig_out
        mov     HC_R11(%rsp), %rcx
        mov     %rcx, (%rdx)
        xor     %ecx, %ecx                      # held VMM data
.Lpconfig_out:
        WRAPPER_LEAVE
ENDFUNC tdx_pconfig

# ---------------------------------------------------------------------------
# u64 tdx_service(u64 command, u64 response, u64 vector, u64 timeout)
#
# Service (R11 = 0x10005, GHCI 1.5): R12 = command buffer GPA, R13 =
# response buffer GPA (both shared), R14 = notify vector (0 = none), R15 =
# timeout (spec 4.3, details [uncertain]).  Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_service
        WRAPPER_ENTER
        HCALL_ARGS $0, $TDVMCALL_SERVICE, %rdi, %rsi, %rdx, %rcx
        HCALL   $0
        WRAPPER_LEAVE
ENDFUNC tdx_service

# ---------------------------------------------------------------------------
# u64 tdx_halt(u64 irq_disabled)
#
# Instruction.HLT (R11 = 12): R12 = irq_disabled, the GHCI "interrupt
# blocked" flag (spec 7.1), passed through as given.  No STI: IF is left as
# the caller has it.  With R12 = 0 a pending IRQ wakes the vCPU even while
# IF = 0 (the v6.3+ Linux idle pattern: halt with IRQs off, then STI).
# Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_halt
        WRAPPER_ENTER
        HCALL_ARGS $0, $TDVMCALL_HLT, %rdi
        HCALL   $0
        WRAPPER_LEAVE
ENDFUNC tdx_halt

# ---------------------------------------------------------------------------
# u64 tdx_safe_halt(void)
#
# Instruction.HLT with R12 = 0 issued as `sti; tdcall` (TDX_HCALL_ISSUE_STI,
# the v5.19 tdx_safe_halt): call with IRQs disabled; returns with IRQs
# enabled.  The STI shadow covers the TDCALL, so no wakeup is lost (7.3).
# Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_safe_halt
        WRAPPER_ENTER
        HCALL_ARGS $0, $TDVMCALL_HLT, $0
        HCALL   $TDX_HCALL_ISSUE_STI
        WRAPPER_LEAVE
ENDFUNC tdx_safe_halt

# ---------------------------------------------------------------------------
# u64 tdx_halt_then_sti(void)
#
# The Linux v6.3+ idle pattern (spec 7.2, 7.3): Instruction.HLT with R12 = 0
# issued while IRQs are still disabled, STI only after the host resumes us.
# Safe because R12 = 0 tells the host that a pending IRQ must wake the vCPU;
# the IRQ is then taken right after the STI here.  Call with IRQs disabled;
# returns with them enabled.
# ---------------------------------------------------------------------------
FUNC tdx_halt_then_sti
        push    %rbp
        mov     %rsp, %rbp
        xor     %edi, %edi
        call    tdx_halt
        sti
        pop     %rbp
        ret
ENDFUNC tdx_halt_then_sti

# ---------------------------------------------------------------------------
# u64 tdx_veinfo_get(struct tdx_module_output *out)
#
# TDG.VP.VEINFO.GET (leaf 3, spec 8.2): out->rcx = exit reason, rdx = exit
# qualification, r8 = GLA, r9 = GPA, r10 = instruction length | info << 32.
# Returns the module status (TDX_NO_VALID_VE_INFO when no #VE is pending).
# ---------------------------------------------------------------------------
FUNC tdx_veinfo_get
        mov     %rdi, %r9
        mov     $3, %edi
        xor     %esi, %esi
        xor     %edx, %edx
        xor     %ecx, %ecx
        xor     %r8d, %r8d
        jmp     __tdx_module_call
ENDFUNC tdx_veinfo_get

# ---------------------------------------------------------------------------
# void tdx_set_gate(void *idt, u64 vector, void *handler)
#
# Writes IDT[vector] as a present 64-bit interrupt gate, DPL 0, no IST, with
# tdxsim's flat code selector 0x08.  Interrupt gates clear IF on entry, as
# the #VE and IRQ handlers here expect.
# ---------------------------------------------------------------------------
FUNC tdx_set_gate
        shl     $4, %rsi
        add     %rsi, %rdi
        mov     %dx, 0(%rdi)            # offset 15:0
        movw    $0x08, 2(%rdi)          # code selector
        movw    $0x8E00, 4(%rdi)        # present, DPL 0, interrupt gate
        shr     $16, %rdx
        mov     %dx, 6(%rdi)            # offset 31:16
        shr     $16, %rdx
        mov     %edx, 8(%rdi)           # offset 63:32
        movl    $0, 12(%rdi)
        ret
ENDFUNC tdx_set_gate

# ---------------------------------------------------------------------------
# u64 tdx_kvm_hypercall(u64 nr, u64 a0, u64 a1, u64 a2, u64 a3)
#
# KVM hypercall over TDVMCALL (spec 5): R10 = nr (nonzero: vendor ABI),
# R11..R14 = a0..a3, R15 = 0.  Returns the host's R10 (KVM's signed result,
# e.g. -KVM_ENOSYS = 0xFFFFFFFFFFFFFC18).
# ---------------------------------------------------------------------------
FUNC tdx_kvm_hypercall
        WRAPPER_ENTER
        HCALL_ARGS %rdi, %rsi, %rdx, %rcx, %r8, $0
        HCALL   $0
        WRAPPER_LEAVE
ENDFUNC tdx_kvm_hypercall

# ---------------------------------------------------------------------------
# void tdx_report_fatal_error(const char *msg)
#
# tdx_report_fatal_error_code(0, 0, msg): error code 0 ("panic", as Linux
# sends), no GPA.
# ---------------------------------------------------------------------------
FUNC tdx_report_fatal_error
        mov     %rdi, %rdx
        xor     %edi, %edi
        xor     %esi, %esi
        jmp     tdx_report_fatal_error_code
ENDFUNC tdx_report_fatal_error

# ---------------------------------------------------------------------------
# void tdx_report_fatal_error_code(u64 code, u64 gpa, const char *msg)
#
# ReportFatalError (R11 = 0x10003), spec 4.6: R12 = code, R13 = gpa, which
# the host reads only when bit 63 of the code is set; bits 15:0 of the code
# must be 0 (QEMU rejects the code otherwise, and still stops the TD).  Up
# to 64 bytes of the NUL-terminated `msg` (NULL = empty) are packed
# little-endian, 8 bytes per register, in the order R14, R15, RBX, RDI, RSI,
# R8, R9, RDX, NUL-padded.  Needs its own TDCALL: the message registers are
# outside 0xFC00.  Mask 0xFFCC; RBP stays unselected (NO_RBP_MOD, bug class
# B5), which also keeps the frame chain intact.  Never returns: the call is
# re-issued forever, each time reloading every register from the private
# stack copy, since the VMM may have rewritten all of them.  A TDCALL
# failure stops with UD2.
# ---------------------------------------------------------------------------
.set FE_CODE,                   FATAL_MSG_MAX
.set FE_GPA,                    FATAL_MSG_MAX + 8
.set FE_FRAME,                  FATAL_MSG_MAX + 16

FUNC tdx_report_fatal_error_code
        push    %rbp
        mov     %rsp, %rbp
        sub     $FE_FRAME, %rsp         # message buffer at 0(%rsp)
        mov     %rdi, FE_CODE(%rsp)
        mov     %rsi, FE_GPA(%rsp)

        xor     %eax, %eax
        mov     %rax, 0(%rsp)
        mov     %rax, 8(%rsp)
        mov     %rax, 16(%rsp)
        mov     %rax, 24(%rsp)
        mov     %rax, 32(%rsp)
        mov     %rax, 40(%rsp)
        mov     %rax, 48(%rsp)
        mov     %rax, 56(%rsp)

        xor     %ecx, %ecx              # byte index
        test    %rdx, %rdx
        jz      .Lfatal_call
.Lfatal_copy:
        cmp     $FATAL_MSG_MAX, %ecx
        jae     .Lfatal_call
        movzbl  (%rdx, %rcx), %eax
        test    %al, %al
        jz      .Lfatal_call
        mov     %al, (%rsp, %rcx)
        inc     %ecx
        jmp     .Lfatal_copy

.Lfatal_call:
        mov     $TDG_VP_VMCALL, %eax
        mov     $TDVMCALL_EXPOSE_FATAL, %ecx
        xor     %r10d, %r10d            # standard GHCI call
        mov     $TDVMCALL_REPORT_FATAL_ERROR, %r11d
        mov     FE_CODE(%rsp), %r12
        mov     FE_GPA(%rsp), %r13
        mov     0(%rsp), %r14
        mov     8(%rsp), %r15
        mov     16(%rsp), %rbx
        mov     24(%rsp), %rdi
        mov     32(%rsp), %rsi
        mov     40(%rsp), %r8
        mov     48(%rsp), %r9
        mov     56(%rsp), %rdx
        tdcall
        # The VMM must not resume us; if it does anyway, ask again.
        test    %rax, %rax
        jz      .Lfatal_call
        ud2                             # TDCALL itself failed: broken module
ENDFUNC tdx_report_fatal_error_code

# ---------------------------------------------------------------------------
# void tdx_debug_exit(u64 code)
#
# 1-byte OUT of `code` to port 0xF4, the tdxsim debug-exit device, which
# ends the run.  Does not return: if the host resumes us anyway, the TD
# reports a fatal error instead.
# ---------------------------------------------------------------------------
FUNC tdx_debug_exit
        push    %rbp
        mov     %rsp, %rbp
        mov     %rdi, %rdx
        mov     $DEBUG_EXIT_PORT, %edi
        mov     $1, %esi
        call    tdx_io_write
        lea     .Lmsg_exit_ignored(%rip), %rdi
        call    tdx_report_fatal_error
ENDFUNC tdx_debug_exit

# ---------------------------------------------------------------------------
# void tdx_puts(const char *s)
#
# Writes each byte of the NUL-terminated string `s` (NULL = nothing) with a
# 1-byte OUT to COM1 (0x3F8).  Best effort: IO statuses are ignored.
# ---------------------------------------------------------------------------
FUNC tdx_puts
        push    %rbp
        mov     %rsp, %rbp
        push    %rbx                    # cursor, kept across calls
        sub     $8, %rsp                # RSP 16-byte aligned at calls
        mov     %rdi, %rbx
        test    %rbx, %rbx
        jz      .Lputs_done
.Lputs_next:
        movzbl  (%rbx), %edx
        test    %dl, %dl
        jz      .Lputs_done
        mov     $COM1_THR, %edi
        mov     $1, %esi
        call    tdx_io_write
        inc     %rbx
        jmp     .Lputs_next
.Lputs_done:
        mov     -8(%rbp), %rbx
        leave
        ret
ENDFUNC tdx_puts

# ---------------------------------------------------------------------------
# void tdx_put_hex(u64 v)
#
# Prints "0x" followed by exactly 16 lowercase hex digits of `v`.
# ---------------------------------------------------------------------------
FUNC tdx_put_hex
        push    %rbp
        mov     %rsp, %rbp
        sub     $32, %rsp               # "0x" + 16 digits + NUL = 19 bytes
        movb    $'0', 0(%rsp)
        movb    $'x', 1(%rsp)
        movb    $0, 18(%rsp)
        mov     $17, %ecx               # last digit; filled right to left
.Lhex_digit:
        mov     %edi, %eax
        and     $0xf, %eax
        cmp     $10, %eax
        jb      .Lhex_dec
        add     $('a' - '0' - 10), %eax
.Lhex_dec:
        add     $'0', %eax
        mov     %al, (%rsp, %rcx)
        shr     $4, %rdi
        dec     %ecx
        cmp     $2, %ecx
        jae     .Lhex_digit
        mov     %rsp, %rdi
        call    tdx_puts
        leave
        ret
ENDFUNC tdx_put_hex

# ---------------------------------------------------------------------------
# void tdx_put_dec(u64 v)
#
# Prints `v` in unsigned decimal, no leading zeros ("0" for zero).
# ---------------------------------------------------------------------------
FUNC tdx_put_dec
        push    %rbp
        mov     %rsp, %rbp
        sub     $32, %rsp               # up to 20 digits + NUL
        lea     31(%rsp), %rsi          # filled right to left from the NUL
        movb    $0, (%rsi)
        mov     %rdi, %rax
        mov     $10, %ecx
.Ldec_digit:
        xor     %edx, %edx
        div     %rcx
        add     $'0', %dl
        dec     %rsi
        mov     %dl, (%rsi)
        test    %rax, %rax
        jnz     .Ldec_digit
        mov     %rsi, %rdi
        call    tdx_puts
        leave
        ret
ENDFUNC tdx_put_dec

        .section .rodata
.Lmsg_exit_ignored:
        .asciz  "the host ignored the debug exit"

# No executable stack.
        .section .note.GNU-stack, "", @progbits
