# A correct linux-6.7 stub that builds RAX as newer TDX_MODULE_CALL does:
# the leaf (0, TDG.VP.VMCALL) with the struct's u8 version at offset 104
# in RAX[23:16] (spec 1.2: version 0 for leaf 0).  Otherwise l67_good.S.
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
        push    %rdi                    # RDI is exposed: keep the pointer private

        movzbl  104(%rdi), %eax         # the u8 version ...
        shl     $16, %eax               # ... in RAX[23:16]; leaf 0
        mov     8(%rdi), %rdx
        mov     16(%rdi), %r8
        mov     24(%rdi), %r9
        mov     32(%rdi), %r10
        mov     40(%rdi), %r11
        mov     48(%rdi), %r12
        mov     56(%rdi), %r13
        mov     64(%rdi), %r14
        mov     72(%rdi), %r15
        mov     80(%rdi), %rbx
        mov     96(%rdi), %rsi
        mov     88(%rdi), %rdi          # last: this overwrites the pointer
        mov     $0xffcc, %ecx
        tdcall
        test    %rax, %rax
        jnz     .Lfailed

        pop     %rax                    # the args pointer, from private memory
        mov     %rcx, 0(%rax)
        mov     %rdx, 8(%rax)
        mov     %r8, 16(%rax)
        mov     %r9, 24(%rax)
        mov     %r10, 32(%rax)
        mov     %r11, 40(%rax)
        mov     %r12, 48(%rax)
        mov     %r13, 56(%rax)
        mov     %r14, 64(%rax)
        mov     %r15, 72(%rax)
        mov     %rbx, 80(%rax)
        mov     %rdi, 88(%rax)
        mov     %rsi, 96(%rax)
        mov     %r10, %rax              # return args->r10

        # Zero every host-written register before the pops (spec 9.2).
        xor     %ecx, %ecx
        xor     %edx, %edx
        xor     %r8d, %r8d
        xor     %r9d, %r9d
        xor     %r10d, %r10d
        xor     %r11d, %r11d
        xor     %r12d, %r12d
        xor     %r13d, %r13d
        xor     %r14d, %r14d
        xor     %r15d, %r15d
        xor     %ebx, %ebx
        xor     %esi, %esi
        xor     %edi, %edi

        pop     %rbx
        pop     %r12
        pop     %r13
        pop     %r14
        pop     %r15
        pop     %rbp
        ret
.Lfailed:
        call    __tdx_hypercall_failed  # a panic: never returns
        .size   __tdx_hypercall, . - __tdx_hypercall

        .globl  __tdx_hypercall_failed
        .type   __tdx_hypercall_failed, @function
__tdx_hypercall_failed:
1:      pause
        jmp     1b
        .size   __tdx_hypercall_failed, . - __tdx_hypercall_failed
