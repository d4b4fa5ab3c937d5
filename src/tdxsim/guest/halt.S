# halt.S - tdxsim guest library: halting (tdx_halt, tdx_safe_halt,
# tdx_halt_then_sti), and the small helpers around it that a TD's
# interrupt and #VE code needs: TDG.VP.VEINFO.GET, an IDT gate, a KVM
# hypercall.
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

# No executable stack.
        .section .note.GNU-stack, "", @progbits
