# edk2-tdvmcall corpus variant: the historical mask 0xFFEC selects RBP, which the module refuses under NO_RBP_MOD (spec 10 B5, EDK2 PR #5479).
# Identical to edk2_good.S except for the line(s) marked DEFECT.
        .text
        .globl  TdVmCall
        .type   TdVmCall, @function
TdVmCall:
        push    %rbp
        mov     %rsp, %rbp
        push    %r15
        push    %r14
        push    %r13
        push    %r12
        push    %rbx
        push    %rsi
        push    %rdi                    # 8 pushes: entry RSP = RSP + 0x40

        mov     %rcx, %r11              # Leaf
        mov     %rdx, %r12              # P1
        mov     %r8, %r13               # P2
        mov     %r9, %r14               # P3
        mov     0x68(%rsp), %r15        # P4: entry RSP + 0x28 (past the shadow space)

        xor     %eax, %eax              # TDG.VP.VMCALL
        mov     $0xffec, %ecx           # DEFECT: selects RBP
        xor     %r10d, %r10d            # a standard GHCI call
        xor     %ebx, %ebx              # exposed but unused: no caller value may leak
        xor     %esi, %esi
        xor     %edi, %edi
        xor     %edx, %edx
        xor     %ebp, %ebp
        xor     %r8d, %r8d
        xor     %r9d, %r9d
        tdcall
        test    %rax, %rax              # the module failed: return its status
        jnz     1f

        mov     %r10, %rax              # the GHCI status
        mov     0x70(%rsp), %r9         # Val: entry RSP + 0x30
        test    %r9, %r9
        jz      1f
        test    %rax, %rax
        jnz     1f
        mov     %r11, (%r9)
1:      xor     %ebx, %ebx              # no host value survives in a register
        xor     %esi, %esi
        xor     %edi, %edi
        xor     %ecx, %ecx
        xor     %edx, %edx
        xor     %r8d, %r8d
        xor     %r9d, %r9d
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
        .size   TdVmCall, . - TdVmCall
