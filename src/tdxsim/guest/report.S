# report.S - tdxsim guest library: telling the host: ReportFatalError,
# the debug exit, and text and numbers on COM1.
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
