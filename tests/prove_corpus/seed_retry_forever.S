# Seed-contract stub for --prove: it issues the call again for as long as the VMM answers
# TDG.VP.VMCALL_RETRY (R10 = 1), a loop without a bound, which a proof must leave unknown.
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
        mov     $3, %ebx               # tries left
.Lagain:
        xor     %eax, %eax              # leaf 0: TDG.VP.VMCALL
        mov     0(%rdi), %r10
        mov     8(%rdi), %r11
        mov     16(%rdi), %r12
        mov     24(%rdi), %r13
        mov     32(%rdi), %r14
        mov     40(%rdi), %r15
        mov     $0xfc00, %ecx
        test    $2, %esi               # ISSUE_STI
        jz      1f
        sti
1:      tdcall
        test    %rax, %rax
        jnz     .Lfailed
        cmp     $1, %r10               # TDG.VP.VMCALL_RETRY
        je      .Lagain                 # no bound: RBX is never counted down
        mov     %r10, %rax              # GHCI status
        test    $1, %esi               # HAS_OUTPUT
        jz      2f
        mov     %r10, 0(%rdi)
        mov     %r11, 8(%rdi)
        mov     %r12, 16(%rdi)
        mov     %r13, 24(%rdi)
        mov     %r14, 32(%rdi)
        mov     %r15, 40(%rdi)
2:      xor     %r10d, %r10d
        xor     %r11d, %r11d
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
