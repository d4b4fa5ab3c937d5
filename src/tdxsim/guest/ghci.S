# ghci.S - tdxsim guest library: the GHCI wrappers for instructions a TD
# cannot execute itself (IN/OUT, CPUID, RDMSR/WRMSR, MMIO) and
# GetTdVmCallInfo, each one TDG.VP.VMCALL through __tdx_hypercall.
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

# No executable stack.
        .section .note.GNU-stack, "", @progbits
