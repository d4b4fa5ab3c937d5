# td-shim-vmcall corpus variant: returns R11 instead of R10.
# Identical to tdshim_good.S except for the line(s) marked DEFECT.
        .text
        .globl  asm_td_vmcall
        .type   asm_td_vmcall, @function
asm_td_vmcall:
        push    %rbp
        mov     %rsp, %rbp
        push    %r15
        push    %r14
        push    %r13
        push    %r12
        push    %rbx
        push    %rsi
        push    %rdi
        mov     %rcx, %rdi              # RDI is never exposed: the pointer stays private
        mov     0x00(%rdi), %r10
        mov     0x08(%rdi), %r11
        mov     0x10(%rdi), %r12
        mov     0x18(%rdi), %r13
        mov     0x20(%rdi), %r14
        mov     0x28(%rdi), %r15
        xor     %eax, %eax
        mov     $0xfc00, %ecx
        tdcall
        test    %rax, %rax
        jnz     2f
        mov     %r10, 0x00(%rdi)
        mov     %r11, 0x08(%rdi)
        mov     %r12, 0x10(%rdi)
        mov     %r13, 0x18(%rdi)
        mov     %r14, 0x20(%rdi)
        mov     %r15, 0x28(%rdi)
        mov     %r11, %rax              # DEFECT: R11 is not the status
        xor     %r10d, %r10d
        xor     %r11d, %r11d
        pop     %rdi
        pop     %rsi
        pop     %rbx
        pop     %r12
        pop     %r13
        pop     %r14
        pop     %r15
        pop     %rbp
        ret
2:      ud2
        .size   asm_td_vmcall, . - asm_td_vmcall
