# linux-6.4 corpus variant: RSI is not zeroed, so the host's RSI stays live after return (CVE-2023-52874, Linux v6.4-v6.6).
# Identical to l64_good.S except for the line(s) marked DEFECT.
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
        mov     %r10, %rax
        xor     %r8d, %r8d
        xor     %r9d, %r9d
        xor     %r10d, %r10d
        xor     %r11d, %r11d
        xor     %edi, %edi
                                        # DEFECT: RSI not zeroed
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
        .size   __tdx_hypercall, . - __tdx_hypercall
