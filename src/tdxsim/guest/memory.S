# memory.S - tdxsim guest library: private and shared memory: the shared
# bit (TDG.VP.INFO), conversion (MapGPA, with its retry rules) and
# acceptance (TDG.MEM.PAGE.ACCEPT, largest page first).
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

# No executable stack.
        .section .note.GNU-stack, "", @progbits
