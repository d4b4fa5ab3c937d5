# void tdvmcall_rbx(struct { u64 subfn, a1, a2, a3, a4, status; } *RBX)
# A correct stub for rbx_struct.toml: no frame pointer (RBP untouched),
# struct through RBX, which the 0xFC00 mask never exposes.
        .text
        .globl  tdvmcall_rbx
        .type   tdvmcall_rbx, @function
tdvmcall_rbx:
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        xor     %r10d, %r10d            # standard GHCI sub-function
        mov     0(%rbx), %r11
        mov     8(%rbx), %r12
        mov     16(%rbx), %r13
        mov     24(%rbx), %r14
        mov     32(%rbx), %r15
        mov     $0xfc00, %ecx
        xor     %eax, %eax
        tdcall
        test    %rax, %rax
        jnz     1f
        mov     %r11, 0(%rbx)
        mov     %r12, 8(%rbx)
        mov     %r13, 16(%rbx)
        mov     %r14, 24(%rbx)
        mov     %r15, 32(%rbx)
        mov     %r10, 40(%rbx)
        xor     %r10d, %r10d
        xor     %r11d, %r11d
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        ret
1:      ud2
        .size   tdvmcall_rbx, . - tdvmcall_rbx
