# services.S - tdxsim guest library: the remaining GHCI sub-functions:
# GetQuote and SetupEventNotifyInterrupt (attestation), WBINVD and PCONFIG
# (instructions KVM does not serve), Service.
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

# No executable stack.
        .section .note.GNU-stack, "", @progbits
