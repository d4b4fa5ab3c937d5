# linux-6.3 corpus variant: the flags are kept in RBP across the TDCALL, which breaks the frame-pointer chain (the v6.3 bug fixed by 1e70c680375a).
# Identical to l63_good.S except for the line(s) marked DEFECT.
        .text
        .globl  __tdx_hypercall
        .type   __tdx_hypercall, @function
__tdx_hypercall:
        push    %rbp
        mov     %rsp, %rbp
        push    %r15
        push    %r14
        push    %r13
        push    %r12
        push    %rbx
        push    %rsi                    # the flags
        mov     %rsi, %rbp              # DEFECT: flags in RBP
        push    %rdi                    # the args pointer: RDI is exposed
        mov     0(%rdi), %r8
        mov     8(%rdi), %r9
        mov     16(%rdi), %r10
        mov     24(%rdi), %r11
        mov     32(%rdi), %r12
        mov     40(%rdi), %r13
        mov     48(%rdi), %r14
        mov     56(%rdi), %r15
        mov     72(%rdi), %rsi
        mov     80(%rdi), %rbx
        mov     88(%rdi), %rdx
        mov     64(%rdi), %rdi          # last: this overwrites the pointer
        mov     $0xffcc, %ecx
        xor     %eax, %eax
        tdcall
        test    %rax, %rax
        jnz     .Lfailed
        pop     %rax                    # the args pointer
        test    $1, %ebp                # DEFECT (its use)
        jz      1f
        mov     %r8, 0(%rax)
        mov     %r9, 8(%rax)
        mov     %r10, 16(%rax)
        mov     %r11, 24(%rax)
        mov     %r12, 32(%rax)
        mov     %r13, 40(%rax)
        mov     %r14, 48(%rax)
        mov     %r15, 56(%rax)
        mov     %rdi, 64(%rax)
        mov     %rsi, 72(%rax)
        mov     %rbx, 80(%rax)
        mov     %rdx, 88(%rax)
1:      mov     %r10, %rax
        xor     %r8d, %r8d
        xor     %r9d, %r9d
        xor     %r10d, %r10d
        xor     %r11d, %r11d
        xor     %edi, %edi
        xor     %edx, %edx
        pop     %rsi                    # the flags again: a guest value
        pop     %rbx
        pop     %r12
        pop     %r13
        pop     %r14
        pop     %r15
        pop     %rbp
        ret
.Lfailed:
        ud2
        .size   __tdx_hypercall, . - __tdx_hypercall
