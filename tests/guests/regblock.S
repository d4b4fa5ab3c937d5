# regblock_tdcall(block): load RAX..R15 (RSP excepted) from the 16-qword
# block at RDI, execute one TDCALL, store RAX..R15 back into the block.
# The native/Python differential tests drive every register through it.
        .text
        .globl  regblock_tdcall
        .type   regblock_tdcall, @function
regblock_tdcall:
        push    %rbx
        push    %rbp
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        push    %rdi
        mov     0x00(%rdi), %rax
        mov     0x08(%rdi), %rcx
        mov     0x10(%rdi), %rdx
        mov     0x18(%rdi), %rbx
        mov     0x28(%rdi), %rbp
        mov     0x30(%rdi), %rsi
        mov     0x40(%rdi), %r8
        mov     0x48(%rdi), %r9
        mov     0x50(%rdi), %r10
        mov     0x58(%rdi), %r11
        mov     0x60(%rdi), %r12
        mov     0x68(%rdi), %r13
        mov     0x70(%rdi), %r14
        mov     0x78(%rdi), %r15
        mov     0x38(%rdi), %rdi
        tdcall
        xchg    %rdi, (%rsp)            # the block pointer back, guest RDI saved
        mov     %rax, 0x00(%rdi)
        mov     %rcx, 0x08(%rdi)
        mov     %rdx, 0x10(%rdi)
        mov     %rbx, 0x18(%rdi)
        mov     %rbp, 0x28(%rdi)
        mov     %rsi, 0x30(%rdi)
        mov     %r8, 0x40(%rdi)
        mov     %r9, 0x48(%rdi)
        mov     %r10, 0x50(%rdi)
        mov     %r11, 0x58(%rdi)
        mov     %r12, 0x60(%rdi)
        mov     %r13, 0x68(%rdi)
        mov     %r14, 0x70(%rdi)
        mov     %r15, 0x78(%rdi)
        pop     %rax
        mov     %rax, 0x38(%rdi)
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %rbp
        pop     %rbx
        ret
        .size   regblock_tdcall, . - regblock_tdcall

        .data
        .p2align 4
        .globl  regblock
regblock:       .fill 128, 1, 0
