# A correct stub for the edk2-tdvmcall contract, written for the checker's
# corpus from the public ABI of EDK2's TdVmCall (MdePkg BaseLib):
#   UINT64 EFIAPI TdVmCall(UINT64 Leaf /* RCX */, UINT64 P1 /* RDX */,
#                          UINT64 P2 /* R8 */, UINT64 P3 /* R9 */,
#                          UINT64 P4 /* [RSP+0x28] */, UINT64 *Val /* [RSP+0x30] */)
# R10 = 0 (standard call), R11 = Leaf, R12..R15 = P1..P4, mask 0xFFCC with
# the other exposed registers zeroed.  Returns R10, or the module's status
# when TDCALL fails; *Val = R11 when R10 = 0.  RBP is zeroed on purpose.
# Microsoft x64: RBX, RBP, RDI, RSI, R12-R15 are callee-saved.
# Every edk2_*.S variant differs from this file in one place, marked DEFECT.
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
        mov     $0xffcc, %ecx
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
