# A correct stub for the linux-6.4 contract (spec 9.2, as fixed for
# CVE-2023-52874), written for the checker's corpus:
#   u64 __tdx_hypercall(struct tdx_hypercall_args *args /* RDI */)
#   struct: r8 0, r9 8, r10 16, r11 24, r12 32, r13 40, r14 48, r15 56,
#           rdi 64, rsi 72, rbx 80, rdx 88;  mask 0xFFCC;  no flags
# Outputs are not written back; returns R10; every host-written register
# that no pop restores is zeroed, RSI included.
# Every l64_*.S variant differs from this file in one place, marked DEFECT.
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
        .size   __tdx_hypercall, . - __tdx_hypercall
