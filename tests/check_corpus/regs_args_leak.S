# regs_args.toml variant: R10 is never set, so the caller's R10 reaches the host.
# Identical to regs_args.S except for the line marked DEFECT.
# u64 tdvmcall_regs(u64 subfn, u64 a1, u64 a2, u64 a3, u64 a4, u64 *result)
# A correct stub for regs_args.toml.
        .text
        .globl  tdvmcall_regs
        .type   tdvmcall_regs, @function
tdvmcall_regs:
        push    %rbp
        mov     %rsp, %rbp
        push    %r15
        push    %r14
        push    %r13
        push    %r12
                                        # DEFECT: R10 not set to 0
        mov     %rdi, %r11
        mov     %rsi, %r12
        mov     %rdx, %r13
        mov     %rcx, %r14
        mov     %r8, %r15
        mov     $0xfc00, %ecx
        xor     %eax, %eax
        tdcall
        test    %rax, %rax
        jnz     1f
        mov     %r11, (%r9)             # R9 was never exposed: still trusted
        mov     %r10, %rax
        xor     %r10d, %r10d
        xor     %r11d, %r11d
        pop     %r12
        pop     %r13
        pop     %r14
        pop     %r15
        pop     %rbp
        ret
1:      ud2
        .size   tdvmcall_regs, . - tdvmcall_regs
