# ve_mmio.S - tdxsim guest library: the #VE handler's EPT-violation path,
# MMIO emulated as Linux's handle_mmio does, and the handler's way out.
#
# GNU as, AT&T syntax, x86-64, CPL0.  Not called: tdx_ve_entry
# (ve_handler.S) jumps to __tdx_ve_mmio with its frame in %rbx (ve.inc).
#
# EPT violation 48, kernel mode (CPL 0) and a kernel-half linear address
# only (spec 13.3, CVE-2024-47727: a user-half GLA is refused); a private
# GPA is fatal (Linux panics); a shared one is MMIO, emulated like Linux's
# handle_mmio: the handler decodes the instruction itself (VE info has no
# length for EPT violations) and issues #VE.RequestMMIO for the GPA in VE
# info.  Forms:
#   mov r/m8,r8 (88)   mov r/m,r (89)   mov r8,r/m8 (8A)
#   mov r,r/m (8B)     mov r/m8,imm8 (C6 /0)
#   mov r/m,imm16/32 (C7 /0, sign-extended with REX.W)
#   movzx (0F B6/B7)   movsx (0F BE/BF)
# with an optional 66 and REX prefix and any ModRM/SIB addressing,
# RIP-relative included.  Register writes follow the architecture: a 32-bit
# destination clears bits 63:32, 8/16-bit ones keep the rest.  Rejected, as
# in Linux: MOVS, other instructions, other prefixes (segment overrides
# too), an access that crosses a page, and AH/CH/DH/BH operands.
#
# The way out of the whole handler follows (__tdx_ve_check, __tdx_ve_done:
# advance RIP by the instruction length, iretq; __tdx_ve_failed,
# __tdx_ve_fatal: ReportFatalError).  It sits here, after the MMIO code,
# because that is where it is in the image: the MMIO code reaches it with
# short jumps, and the link order keeps every address of the library.

        .include "ve.inc"

        .text

# --- EPT violation: MMIO (Linux handle_mmio) ---
# Register use: %r12 form, %r13 access size, %r14 address of the register
# operand's saved slot (or the immediate), %r15 operand size (66/REX.W),
# %rsi instruction cursor, %r8 REX, %r9 effective address.
        .type   __tdx_ve_mmio, @function
VE_LABEL __tdx_ve_mmio
        lea     msg_ve_user_mmio(%rip), %rdi
        testb   $3, F_CS(%rbx)
        jnz     __tdx_ve_fatal                  # only in-kernel MMIO
        call    tdx_shared_mask
        test    %rax, VE_GPA(%rbx)
        jz      .Lve_private
        lea     msg_ve_user_gla(%rip), %rdi
        cmpq    $0, VE_GLA(%rbx)
        jge     __tdx_ve_fatal                  # only to kernel addresses
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
        ja      __tdx_ve_fatal                  # crosses a page

        mov     VE_GPA(%rbx), %rdi
        mov     %r13, %rsi
        cmp     $MMIO_STORE, %r12d
        jb      .Lmm_read
        mov     %r14, %rdx                      # the immediate ...
        jne     1f
        mov     (%r14), %rdx                    # ... or the register; cut to size
1:      call    tdx_mmio_write
        jmp     __tdx_ve_check
.Lmm_read:
        lea     SCRATCH(%rbx), %rdx
        call    tdx_mmio_read
        test    %rax, %rax
        jnz     __tdx_ve_failed
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
        jmp     __tdx_ve_done
1:      cmp     $2, %r15d
        jne     2f
        mov     %ax, (%r14)
        jmp     __tdx_ve_done
2:      cmp     $4, %r15d
        jne     3f
        mov     %eax, %eax                      # a 32-bit write clears 63:32
3:      mov     %rax, (%r14)
        jmp     __tdx_ve_done

.Lve_private:
        mov     $FATAL_GPA_VALID, %rdi
        mov     VE_GPA(%rbx), %rsi
        lea     msg_ve_private(%rip), %rdx
        call    tdx_report_fatal_error_code     # never returns
.Lmm_unsupported:
        lea     msg_ve_mmio_insn(%rip), %rdi
        jmp     __tdx_ve_fatal

VE_LABEL __tdx_ve_check
        test    %rax, %rax
        jnz     __tdx_ve_failed
VE_LABEL __tdx_ve_done
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

VE_LABEL __tdx_ve_string_io
        lea     msg_ve_string(%rip), %rdi
        jmp     __tdx_ve_fatal
VE_LABEL __tdx_ve_failed
        lea     msg_ve_failed(%rip), %rdi
VE_LABEL __tdx_ve_fatal
        call    tdx_report_fatal_error  # never returns
VE_LABEL __tdx_ve_broken_module
        ud2

# %rax = address of the saved slot of GPR %eax (0..15, spec 0.1 order);
# RSP is the interrupted one, in the interrupt frame.  Clobbers %r10.
.Lmm_slot:
        lea     gpr_slot(%rip), %r10
        movzbl  (%r10, %rax), %eax
        add     %rbx, %rax
        ret
        .size   __tdx_ve_mmio, . - __tdx_ve_mmio

        .section .rodata
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
