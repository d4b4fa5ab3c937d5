# ve_handler.S - tdxsim guest library: a #VE handler that turns plain
# instructions back into TDVMCALLs, as a TD kernel's handler does.
#
# GNU as, AT&T syntax, x86-64, CPL0.  Linked into every tdxsim guest image
# next to tdcall.S, whose wrappers it uses.  A guest points IDT vector 20
# (an interrupt gate) at tdx_ve_entry.
#
# What it does (spec 8.4, the Linux reference behaviour):
#   1. saves every GPR, then reads VE info with TDG.VP.VEINFO.GET; a failing
#      TDCALL means a broken module: ud2;
#   2. by exit reason:
#        HLT 12     Instruction.HLT, R12 = 1 if the interrupted context had
#                   IF = 0 (irqs_disabled);
#        IO 30      Instruction.IO; string I/O (qualification bit 4) is
#                   rejected.  IN writes the data as the instruction would
#                   (spec 13.3, Linux's 2026 port-I/O fixes): sizes 1 and 2
#                   replace exactly the low 8/16 bits of RAX, size 4 writes
#                   EAX and so zero-extends RAX[63:32]; OUT sends RAX cut to
#                   `size`;
#        CPUID 10   leaves 0x40000000-0x4FFFFFFF go to the VMM, every other
#                   leaf reads as zeros (what Linux does);
#        RDMSR 31   EDX:EAX = the VMM's value;   WRMSR 32  sends EDX:EAX;
#        EPT violation 48, kernel mode (CPL 0) and a kernel-half linear
#                   address only (spec 13.3, CVE-2024-47727: a user-half GLA
#                   is refused); a private GPA is fatal (Linux
#                   panics); a shared one is MMIO, emulated like Linux's
#                   handle_mmio: the handler decodes the instruction itself
#                   (VE info has no length for EPT violations) and issues
#                   #VE.RequestMMIO for the GPA in VE info.  Forms:
#                     mov r/m8,r8 (88)   mov r/m,r (89)   mov r8,r/m8 (8A)
#                     mov r,r/m (8B)     mov r/m8,imm8 (C6 /0)
#                     mov r/m,imm16/32 (C7 /0, sign-extended with REX.W)
#                     movzx (0F B6/B7)   movsx (0F BE/BF)
#                   with an optional 66 and REX prefix and any ModRM/SIB
#                   addressing, RIP-relative included.  Register writes
#                   follow the architecture: a 32-bit destination clears bits
#                   63:32, 8/16-bit ones keep the rest.  Rejected, as in
#                   Linux: MOVS, other instructions, other prefixes (segment
#                   overrides too), an access that crosses a page, and
#                   AH/CH/DH/BH operands;
#   3. on success advances the saved RIP by the instruction length and
#      returns with iretq; any failure or other exit reason ends the run
#      with ReportFatalError ("tdx_ve: ...").
#
# Unlike Linux before v6.15 it never re-enables interrupts: the HLT TDVMCALL
# is issued with IF = 0 and R12 = 0, so a wakeup arriving after `sti; hlt`
# stays pending, wakes the vCPU and is delivered after the iretq (spec 7.3).

.set TDG_VP_VEINFO_GET,         3
.set EXIT_REASON_CPUID,         10
.set EXIT_REASON_HLT,           12
.set EXIT_REASON_IO,            30
.set EXIT_REASON_MSR_READ,      31
.set EXIT_REASON_MSR_WRITE,     32
.set EXIT_REASON_EPT_VIOLATION, 48
.set IO_QUAL_IN,                1 << 3
.set IO_QUAL_STRING,            1 << 4
.set CPUID_HV_FIRST,            0x40000000
.set RFLAGS_IF,                 1 << 9
.set FATAL_GPA_VALID,           1 << 63 # ReportFatalError: R13 holds a GPA (spec 4.6)

# Decoded MMIO instruction forms (kept in %r12)
.set MMIO_LOAD,                 0       # mov r, m
.set MMIO_LOAD_ZX,              1       # movzx
.set MMIO_LOAD_SX,              2       # movsx
.set MMIO_STORE,                3       # mov m, r
.set MMIO_STORE_IMM,            4       # mov m, imm

# Saved state, relative to %rbx after the 15 pushes of tdx_ve_entry
.set F_R15,     0
.set F_R14,     8
.set F_R13,     16
.set F_R12,     24
.set F_R11,     32
.set F_R10,     40
.set F_R9,      48
.set F_R8,      56
.set F_RDI,     64
.set F_RSI,     72
.set F_RBP,     80
.set F_RBX,     88
.set F_RDX,     96
.set F_RCX,     104
.set F_RAX,     112
.set F_RIP,     120             # the interrupt frame pushed by the CPU
.set F_CS,      128
.set F_RFLAGS,  136
.set F_RSP,     144

# Locals below %rbx: VE info as __tdx_module_call stores it, and a scratch
# slot for the VMM's answers.  64 bytes keep RSP 16-byte aligned.
.set VE_REASON, -64             # RCX: exit reason
.set VE_QUAL,   -56             # RDX: exit qualification
.set VE_GLA,    -48             # R8: guest linear address
.set VE_GPA,    -40             # R9: guest-physical address
.set VE_LEN,    -32             # R10: instruction length (31:0)
.set SCRATCH,   -16             # u64, or u32[4] for CPUID (-16..0)
.set LOCALS,    64

        .text

# void tdx_ve_entry(void) - IDT vector 20.  Not called; returns with iretq.
        .globl  tdx_ve_entry
        .type   tdx_ve_entry, @function
tdx_ve_entry:
        push    %rax
        push    %rcx
        push    %rdx
        push    %rbx
        push    %rbp
        push    %rsi
        push    %rdi
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        mov     %rsp, %rbx
        sub     $LOCALS, %rsp

        mov     $TDG_VP_VEINFO_GET, %edi
        xor     %esi, %esi
        xor     %edx, %edx
        xor     %ecx, %ecx
        xor     %r8d, %r8d
        lea     VE_REASON(%rbx), %r9
        call    __tdx_module_call
        test    %rax, %rax
        jnz     .Lve_broken_module

        mov     VE_REASON(%rbx), %eax
        cmp     $EXIT_REASON_HLT, %eax
        je      .Lve_hlt
        cmp     $EXIT_REASON_IO, %eax
        je      .Lve_io
        cmp     $EXIT_REASON_CPUID, %eax
        je      .Lve_cpuid
        cmp     $EXIT_REASON_MSR_READ, %eax
        je      .Lve_rdmsr
        cmp     $EXIT_REASON_MSR_WRITE, %eax
        je      .Lve_wrmsr
        cmp     $EXIT_REASON_EPT_VIOLATION, %eax
        je      .Lve_ept
        lea     msg_ve_unexpected(%rip), %rdi
        jmp     .Lve_fatal

.Lve_hlt:
        mov     F_RFLAGS(%rbx), %rdi
        not     %rdi
        shr     $9, %rdi                # irqs_disabled = !RFLAGS.IF
        and     $1, %edi
        call    tdx_halt
        jmp     .Lve_check

.Lve_io:
        mov     VE_QUAL(%rbx), %rax
        test    $IO_QUAL_STRING, %eax
        jnz     .Lve_string_io
        mov     %eax, %esi
        and     $7, %esi
        inc     %esi                    # size
        mov     %rax, %rdi
        shr     $16, %rdi               # port
        test    $IO_QUAL_IN, %eax
        jnz     .Lve_in
        mov     F_RAX(%rbx), %rdx       # tdx_io_write cuts it to `size`
        call    tdx_io_write
        jmp     .Lve_check
.Lve_in:
        mov     %rsi, %r12              # size, kept across the call
        lea     SCRATCH(%rbx), %rdx
        call    tdx_io_read
        test    %rax, %rax
        jnz     .Lve_failed
        mov     SCRATCH(%rbx), %rax     # already cut to `size`
        cmp     $4, %r12d
        je      .Lve_in32               # a 32-bit register write
        lea     0(, %r12, 8), %ecx
        mov     $1, %rdx
        shl     %cl, %rdx
        dec     %rdx                    # GENMASK(size * 8 - 1, 0)
        not     %rdx
        and     %rdx, F_RAX(%rbx)
        or      %rax, F_RAX(%rbx)
        jmp     .Lve_done
.Lve_in32:
        mov     %eax, %eax              # zero-extends RAX[63:32]
        mov     %rax, F_RAX(%rbx)
        jmp     .Lve_done

.Lve_cpuid:
        mov     F_RAX(%rbx), %edi       # leaf
        mov     F_RCX(%rbx), %esi       # sub-leaf
        movq    $0, SCRATCH(%rbx)
        movq    $0, SCRATCH+8(%rbx)
        mov     %edi, %eax
        sub     $CPUID_HV_FIRST, %eax
        cmp     $0x0FFFFFFF, %eax
        ja      .Lve_cpuid_store        # not the hypervisor range: zeros
        lea     SCRATCH(%rbx), %rdx
        call    tdx_cpuid
        test    %rax, %rax
        jnz     .Lve_failed
.Lve_cpuid_store:
        mov     SCRATCH(%rbx), %eax
        mov     %rax, F_RAX(%rbx)
        mov     SCRATCH+4(%rbx), %eax
        mov     %rax, F_RBX(%rbx)
        mov     SCRATCH+8(%rbx), %eax
        mov     %rax, F_RCX(%rbx)
        mov     SCRATCH+12(%rbx), %eax
        mov     %rax, F_RDX(%rbx)
        jmp     .Lve_done

.Lve_rdmsr:
        mov     F_RCX(%rbx), %edi
        lea     SCRATCH(%rbx), %rsi
        call    tdx_rdmsr
        test    %rax, %rax
        jnz     .Lve_failed
        mov     SCRATCH(%rbx), %rax
        mov     %eax, %edx
        mov     %rdx, F_RAX(%rbx)       # EAX, zero-extended as RDMSR does
        shr     $32, %rax
        mov     %rax, F_RDX(%rbx)
        jmp     .Lve_done

.Lve_wrmsr:
        mov     F_RCX(%rbx), %edi
        mov     F_RDX(%rbx), %rsi
        shl     $32, %rsi
        mov     F_RAX(%rbx), %eax
        or      %rax, %rsi              # EDX:EAX
        call    tdx_wrmsr
        jmp     .Lve_check

# --- EPT violation: MMIO (Linux handle_mmio) ---
# Register use: %r12 form, %r13 access size, %r14 address of the register
# operand's saved slot (or the immediate), %r15 operand size (66/REX.W),
# %rsi instruction cursor, %r8 REX, %r9 effective address.
.Lve_ept:
        lea     msg_ve_user_mmio(%rip), %rdi
        testb   $3, F_CS(%rbx)
        jnz     .Lve_fatal                      # only in-kernel MMIO
        call    tdx_shared_mask
        test    %rax, VE_GPA(%rbx)
        jz      .Lve_private
        lea     msg_ve_user_gla(%rip), %rdi
        cmpq    $0, VE_GLA(%rbx)
        jge     .Lve_fatal                      # only to kernel addresses
        mov     F_RIP(%rbx), %rsi
        xor     %r8d, %r8d                      # no REX
        mov     $4, %r15d                       # operand size
        movzbl  (%rsi), %eax
        cmp     $0x66, %al
        jne     .Lmm_rex
        mov     $2, %r15d
        inc     %rsi
        movzbl  (%rsi), %eax
.Lmm_rex:
        mov     %eax, %ecx
        and     $0xF0, %ecx
        cmp     $0x40, %ecx
        jne     .Lmm_opcode
        mov     %eax, %r8d
        inc     %rsi
        test    $8, %al
        jz      1f
        mov     $8, %r15d                       # REX.W
1:      movzbl  (%rsi), %eax
.Lmm_opcode:
        inc     %rsi                            # at ModRM, or 0F's second byte
        mov     %r15, %r13                      # size: the operand size ...
        cmp     $0x88, %al
        je      .Lmm_store8
        cmp     $0x89, %al
        je      .Lmm_store
        cmp     $0x8A, %al
        je      .Lmm_load8
        cmp     $0x8B, %al
        je      .Lmm_load
        cmp     $0xC6, %al
        je      .Lmm_imm8
        cmp     $0xC7, %al
        je      .Lmm_imm
        cmp     $0x0F, %al
        jne     .Lmm_unsupported
        movzbl  (%rsi), %eax
        inc     %rsi
        mov     $MMIO_LOAD_ZX, %r12d
        cmp     $0xB6, %al
        je      .Lmm_from8
        cmp     $0xB7, %al
        je      .Lmm_from16
        mov     $MMIO_LOAD_SX, %r12d
        cmp     $0xBE, %al
        je      .Lmm_from8
        cmp     $0xBF, %al
        je      .Lmm_from16
        jmp     .Lmm_unsupported
.Lmm_from8:
        mov     $1, %r13d                       # ... or 1/2 bytes from memory
        jmp     .Lmm_modrm
.Lmm_from16:
        mov     $2, %r13d
        jmp     .Lmm_modrm
.Lmm_store8:
        mov     $1, %r13d
.Lmm_store:
        mov     $MMIO_STORE, %r12d
        jmp     .Lmm_modrm
.Lmm_load8:
        mov     $1, %r13d
.Lmm_load:
        mov     $MMIO_LOAD, %r12d
        mov     %r13, %r15                      # the destination is as wide as the access
        jmp     .Lmm_modrm
.Lmm_imm8:
        mov     $1, %r13d
.Lmm_imm:
        mov     $MMIO_STORE_IMM, %r12d

.Lmm_modrm:
        movzbl  (%rsi), %ecx
        inc     %rsi
        cmp     $0xC0, %ecx
        jae     .Lmm_unsupported                # mod 3: no memory operand
        mov     %ecx, %eax                      # reg field, REX.R -> %r14
        shr     $3, %eax
        and     $7, %eax
        cmp     $MMIO_STORE_IMM, %r12d
        jne     1f
        test    %eax, %eax                      # C6/C7 need /0
        jnz     .Lmm_unsupported
        jmp     2f
1:      cmp     $1, %r13d                       # 8-bit register operand without
        jne     3f                              # REX: 4..7 are AH, CH, DH, BH
        cmp     $MMIO_STORE, %r12d
        je      4f
        cmp     $MMIO_LOAD, %r12d
        jne     3f
4:      test    %r8d, %r8d
        jnz     3f
        cmp     $4, %eax
        jae     .Lmm_unsupported
3:      mov     %r8d, %edx
        and     $4, %edx                        # REX.R
        lea     (%rax, %rdx, 2), %eax
        call    .Lmm_slot
        mov     %rax, %r14
2:
        # Effective address in %r9 (only to check for a page split).
        mov     %ecx, %edx                      # ModRM
        and     $7, %edx                        # r/m
        xor     %r9d, %r9d
        cmp     $4, %edx
        je      .Lmm_sib
        cmp     $5, %edx
        jne     .Lmm_base_rm
        test    $0xC0, %ecx
        jz      .Lmm_riprel                     # mod 0, r/m 5: RIP + disp32
.Lmm_base_rm:
        mov     %r8d, %eax
        and     $1, %eax                        # REX.B
        lea     (%rdx, %rax, 8), %eax
        call    .Lmm_slot
        mov     (%rax), %r9
        jmp     .Lmm_disp
.Lmm_sib:
        movzbl  (%rsi), %edi
        inc     %rsi
        mov     %edi, %eax                      # index, REX.X
        shr     $3, %eax
        and     $7, %eax
        mov     %r8d, %edx
        and     $2, %edx
        lea     (%rax, %rdx, 4), %eax
        cmp     $4, %eax
        je      1f                              # no index
        call    .Lmm_slot
        mov     (%rax), %r9
        mov     %edi, %eax
        shr     $6, %eax                        # scale
        xchg    %eax, %ecx
        shl     %cl, %r9
        xchg    %eax, %ecx
1:      mov     %edi, %edx                      # base
        and     $7, %edx
        cmp     $5, %edx
        jne     2f
        test    $0xC0, %ecx
        jz      .Lmm_disp32                     # mod 0, base 5: disp32, no base
2:      mov     %r8d, %eax
        and     $1, %eax
        lea     (%rdx, %rax, 8), %eax
        call    .Lmm_slot
        add     (%rax), %r9
.Lmm_disp:
        mov     %ecx, %eax
        shr     $6, %eax                        # mod: 0 none, 1 disp8, 2 disp32
        jz      .Lmm_immediate
        cmp     $1, %eax
        jne     .Lmm_disp32
        movsbq  (%rsi), %rax
        add     %rax, %r9
        inc     %rsi
        jmp     .Lmm_immediate
.Lmm_disp32:
        movslq  (%rsi), %rax
        add     %rax, %r9
        add     $4, %rsi
        jmp     .Lmm_immediate
.Lmm_riprel:
        movslq  (%rsi), %r9
        add     $4, %rsi
.Lmm_immediate:
        cmp     $MMIO_STORE_IMM, %r12d
        jne     .Lmm_length
        cmp     $1, %r13d
        jne     1f
        movzbl  (%rsi), %r14d
        inc     %rsi
        jmp     .Lmm_length
1:      cmp     $2, %r13d
        jne     2f
        movzwl  (%rsi), %r14d
        add     $2, %rsi
        jmp     .Lmm_length
2:      movslq  (%rsi), %r14                    # imm32, sign-extended for REX.W
        add     $4, %rsi
.Lmm_length:
        sub     F_RIP(%rbx), %rsi
        mov     %rsi, VE_LEN(%rbx)              # RIP advance: the decoded length
        mov     %ecx, %eax
        and     $0xC7, %eax
        cmp     $5, %eax
        jne     1f
        add     F_RIP(%rbx), %r9                # RIP-relative: from the next instruction
        add     %rsi, %r9
1:      mov     %r9d, %eax
        and     $0xFFF, %eax
        add     %r13d, %eax
        lea     msg_ve_mmio_split(%rip), %rdi
        cmp     $0x1000, %eax
        ja      .Lve_fatal                      # crosses a page

        mov     VE_GPA(%rbx), %rdi
        mov     %r13, %rsi
        cmp     $MMIO_STORE, %r12d
        jb      .Lmm_read
        mov     %r14, %rdx                      # the immediate ...
        jne     1f
        mov     (%r14), %rdx                    # ... or the register; cut to size
1:      call    tdx_mmio_write
        jmp     .Lve_check
.Lmm_read:
        lea     SCRATCH(%rbx), %rdx
        call    tdx_mmio_read
        test    %rax, %rax
        jnz     .Lve_failed
        mov     SCRATCH(%rbx), %rax
        cmp     $MMIO_LOAD_SX, %r12d
        jne     2f
        cmp     $1, %r13d
        jne     1f
        movsbq  %al, %rax
        jmp     2f
1:      movswq  %ax, %rax
2:      cmp     $1, %r15d                       # write the destination register
        jne     1f
        mov     %al, (%r14)
        jmp     .Lve_done
1:      cmp     $2, %r15d
        jne     2f
        mov     %ax, (%r14)
        jmp     .Lve_done
2:      cmp     $4, %r15d
        jne     3f
        mov     %eax, %eax                      # a 32-bit write clears 63:32
3:      mov     %rax, (%r14)
        jmp     .Lve_done

.Lve_private:
        mov     $FATAL_GPA_VALID, %rdi
        mov     VE_GPA(%rbx), %rsi
        lea     msg_ve_private(%rip), %rdx
        call    tdx_report_fatal_error_code     # never returns
.Lmm_unsupported:
        lea     msg_ve_mmio_insn(%rip), %rdi
        jmp     .Lve_fatal

.Lve_check:
        test    %rax, %rax
        jnz     .Lve_failed
.Lve_done:
        mov     VE_LEN(%rbx), %eax      # instruction length, bits 31:0
        add     %rax, F_RIP(%rbx)
        mov     %rbx, %rsp
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %r11
        pop     %r10
        pop     %r9
        pop     %r8
        pop     %rdi
        pop     %rsi
        pop     %rbp
        pop     %rbx
        pop     %rdx
        pop     %rcx
        pop     %rax
        iretq

.Lve_string_io:
        lea     msg_ve_string(%rip), %rdi
        jmp     .Lve_fatal
.Lve_failed:
        lea     msg_ve_failed(%rip), %rdi
.Lve_fatal:
        call    tdx_report_fatal_error  # never returns
.Lve_broken_module:
        ud2

# %rax = address of the saved slot of GPR %eax (0..15, spec 0.1 order);
# RSP is the interrupted one, in the interrupt frame.  Clobbers %r10.
.Lmm_slot:
        lea     gpr_slot(%rip), %r10
        movzbl  (%r10, %rax), %eax
        add     %rbx, %rax
        ret
        .size   tdx_ve_entry, . - tdx_ve_entry

        .section .rodata
msg_ve_unexpected:      .asciz "tdx_ve: unexpected #VE exit reason"
msg_ve_string:          .asciz "tdx_ve: string I/O is not supported"
msg_ve_failed:          .asciz "tdx_ve: the VMM refused the request"
msg_ve_private:         .asciz "tdx_ve: unexpected EPT violation on private memory"
msg_ve_user_mmio:       .asciz "tdx_ve: MMIO from user mode"
msg_ve_user_gla:        .asciz "tdx_ve: MMIO to a user-space address"
msg_ve_mmio_insn:       .asciz "tdx_ve: MMIO through an unsupported instruction"
msg_ve_mmio_split:      .asciz "tdx_ve: MMIO access crosses a page"
# Offsets from %rbx of the saved RAX, RCX, ..., R15
gpr_slot:       .byte F_RAX, F_RCX, F_RDX, F_RBX, F_RSP, F_RBP, F_RSI, F_RDI
                .byte F_R8, F_R9, F_R10, F_R11, F_R12, F_R13, F_R14, F_R15

# No executable stack.
        .section .note.GNU-stack, "", @progbits
