# linux-6.4-ret corpus variant: RDX is not written back.
# Identical to l64ret_good.S except for the line(s) marked DEFECT.
        .text
        .globl  __tdx_hypercall_ret
        .type   __tdx_hypercall_ret, @function
__tdx_hypercall_ret:
        push    %rbp
        mov     %rsp, %rbp
        push    %r15
        push    %r14
        push    %r13
        push    %r12
        push    %rbx
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
        mov     64(%rdi), %rdi
        mov     $0xffcc, %ecx
        xor     %eax, %eax
        tdcall
        test    %rax, %rax
        jnz     .Lfailed
        pop     %rax                    # the args pointer
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
                                        # DEFECT: args->rdx not written
        mov     %r10, %rax
        xor     %r8d, %r8d
        xor     %r9d, %r9d
        xor     %r10d, %r10d
        xor     %r11d, %r11d
        xor     %edi, %edi
        xor     %esi, %esi              # CVE-2023-52874: RSI too
        xor     %edx, %edx
        pop     %rbx
        pop     %r12
        pop     %r13
        pop     %r14
        pop     %r15
        pop     %rbp
        ret
.Lfailed:
        ud2
        .size   __tdx_hypercall_ret, . - __tdx_hypercall_ret
