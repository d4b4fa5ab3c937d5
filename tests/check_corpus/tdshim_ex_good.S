# A correct stub for the td-shim-vmcall-ex contract, written for the
# checker's corpus from td-shim's public ABI (tdx-tdcall, extern "win64"):
#   u64 asm_td_vmcall_ex(TdVmcallArgsEx *args /* RCX */, u64 do_sti /* RDX */)
#   TdVmcallArgsEx: rdx, rbx, rsi, rdi, r8 .. r15 at offsets 0..0x58
# Mask 0xFFCC, STI right before TDCALL when do_sti, outputs always copied
# back, returns R10, ud2 when TDCALL fails.
# Every tdshim_ex_*.S variant differs from this file in one place, marked DEFECT.
        .text
        .globl  asm_td_vmcall_ex
        .type   asm_td_vmcall_ex, @function
asm_td_vmcall_ex:
        push    %rbp
        mov     %rsp, %rbp
        push    %r15
        push    %r14
        push    %r13
        push    %r12
        push    %rbx
        push    %rsi
        push    %rdi
        mov     0x08(%rcx), %rbx
        mov     0x10(%rcx), %rsi
        mov     0x18(%rcx), %rdi
        mov     0x20(%rcx), %r8
        mov     0x28(%rcx), %r9
        mov     0x30(%rcx), %r10
        mov     0x38(%rcx), %r11
        mov     0x40(%rcx), %r12
        mov     0x48(%rcx), %r13
        mov     0x50(%rcx), %r14
        mov     0x58(%rcx), %r15
        xor     %eax, %eax
        push    %rcx                    # every free register is exposed: keep it on the stack
        test    %rdx, %rdx              # do_sti
        mov     0x00(%rcx), %rdx        # MOV leaves the flags alone
        mov     $0xffcc, %ecx
        jz      1f
        sti                             # its shadow covers the TDCALL
1:      tdcall
        test    %rax, %rax
        jnz     2f
        pop     %rcx
        mov     %rdx, 0x00(%rcx)
        mov     %rbx, 0x08(%rcx)
        mov     %rsi, 0x10(%rcx)
        mov     %rdi, 0x18(%rcx)
        mov     %r8, 0x20(%rcx)
        mov     %r9, 0x28(%rcx)
        mov     %r10, 0x30(%rcx)
        mov     %r11, 0x38(%rcx)
        mov     %r12, 0x40(%rcx)
        mov     %r13, 0x48(%rcx)
        mov     %r14, 0x50(%rcx)
        mov     %r15, 0x58(%rcx)
        mov     %r10, %rax
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
2:      ud2
        .size   asm_td_vmcall_ex, . - asm_td_vmcall_ex
