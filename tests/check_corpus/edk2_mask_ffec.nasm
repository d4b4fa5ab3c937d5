; edk2_good.nasm with the historical mask 0xFFEC (EDK2 PR #5479): the module
; refuses it under NO_RBP_MOD. Identical to edk2_good.nasm except the DEFECT.
DEFAULT REL
SECTION .text

%define TDVMCALL_MASK 0xffec  ; DEFECT: selects RBP (bit 5)

global TdVmCall
TdVmCall:
        push    rbp
        mov     rbp, rsp
        push    r15
        push    r14
        push    r13
        push    r12
        push    rbx
        push    rsi
        push    rdi                     ; 8 pushes: entry RSP = RSP + 0x40

        mov     r11, rcx                ; Leaf
        mov     r12, rdx                ; P1
        mov     r13, r8                 ; P2
        mov     r14, r9                 ; P3
        mov     r15, [rsp + 0x68]       ; P4: entry RSP + 0x28

        xor     eax, eax                ; TDG.VP.VMCALL
        mov     ecx, TDVMCALL_MASK
        xor     r10d, r10d
        xor     ebx, ebx
        xor     esi, esi
        xor     edi, edi
        xor     edx, edx
        xor     ebp, ebp
        xor     r8d, r8d
        xor     r9d, r9d
        db      0x66, 0x0f, 0x01, 0xcc  ; tdcall
        test    rax, rax                ; the module failed: return its status
        jnz     .done

        mov     rax, r10
        mov     r9, [rsp + 0x70]        ; Val: entry RSP + 0x30
        test    r9, r9
        jz      .done
        test    rax, rax
        jnz     .done
        mov     [r9], r11
.done:
        xor     ebx, ebx
        xor     esi, esi
        xor     edi, edi
        xor     ecx, ecx
        xor     edx, edx
        xor     r8d, r8d
        xor     r9d, r9d
        xor     r10d, r10d
        xor     r11d, r11d
        pop     rdi
        pop     rsi
        pop     rbx
        pop     r12
        pop     r13
        pop     r14
        pop     r15
        pop     rbp
        ret
