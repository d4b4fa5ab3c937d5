# The project's hypercall stub: the seed ABI (spec 9.1), R10..R15 from the
# struct in RDI, flags in RSI (HAS_OUTPUT = 1, ISSUE_STI = 2), mask 0xFC00.
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

        xor     %eax, %eax              # leaf 0: TDG.VP.VMCALL
        mov     0(%rdi), %r10
        mov     8(%rdi), %r11
        mov     16(%rdi), %r12
        mov     24(%rdi), %r13
        mov     32(%rdi), %r14
        mov     40(%rdi), %r15
        mov     $0xfc00, %ecx           # expose R10..R15; set before any STI

        test    $2, %esi                # ISSUE_STI
        jz      1f
        sti                             # its shadow covers the TDCALL
1:      tdcall
        test    %rax, %rax              # the module failed: R10 means nothing
        jnz     .Lfailed

        mov     %r10, %rax              # GHCI status
        test    $1, %esi                # HAS_OUTPUT
        jz      2f
        mov     %r10, 0(%rdi)
        mov     %r11, 8(%rdi)
        mov     %r12, 16(%rdi)
        mov     %r13, 24(%rdi)
        mov     %r14, 32(%rdi)
        mov     %r15, 40(%rdi)
2:      xor     %r10d, %r10d            # host values, not restored by a pop
        xor     %r11d, %r11d
        pop     %r12
        pop     %r13
        pop     %r14
        pop     %r15
        pop     %rbp
        ret
.Lfailed:
        ud2
        .size   __tdx_hypercall, . - __tdx_hypercall
