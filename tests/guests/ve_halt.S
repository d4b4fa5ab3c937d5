# A Linux v5.19-style #VE handler for HLT, and the `sti; hlt` idle pattern
# that loses wakeups through it (spec 7.3 row 5, 8.4).
#
# ve_sti_hlt: loads an IDT (#VE gate + an iretq stub for vector 0xEC), then
# executes `sti; hlt`.  HLT raises #VE; the handler reads VE info with
# TDG.VP.VEINFO.GET, re-enables interrupts because the interrupted context
# had them on (as Linux's exc_virtualization_exception does), then issues
# the HLT TDVMCALL with R12 = irqs_disabled() = 0 and skips the HLT.

.set VE_VECTOR,    20
.set IRQ_VECTOR,   0xEC
.set EXIT_HLT,     12

        .text
        .globl  ve_sti_hlt, ve_cli_hlt
ve_sti_hlt:
        push    %rbp
        mov     %rsp, %rbp
        call    setup_idt
        sti
        hlt
        pop     %rbp
        ret

# With IRQs off the handler reports them blocked (R12 = 1): no wakeup.
ve_cli_hlt:
        push    %rbp
        mov     %rsp, %rbp
        call    setup_idt
        hlt
        pop     %rbp
        ret

setup_idt:
        push    %rbp
        mov     %rsp, %rbp
        lea     idt(%rip), %rdi
        mov     $VE_VECTOR, %esi
        lea     ve_entry(%rip), %rdx
        call    tdx_set_gate
        lea     idt(%rip), %rdi
        mov     $IRQ_VECTOR, %esi
        lea     irq_entry(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)
        pop     %rbp
        ret

irq_entry:
        iretq

# #VE entry.  Frame: 8(%rbp) = RIP of the HLT, 24(%rbp) = saved RFLAGS.
ve_entry:
        push    %rbp
        mov     %rsp, %rbp
        push    %rax
        push    %rcx
        push    %rdx
        push    %rsi
        push    %rdi
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        sub     $56, %rsp                       # struct tdx_module_output
        mov     $3, %edi                        # TDG.VP.VEINFO.GET
        xor     %esi, %esi
        xor     %edx, %edx
        xor     %ecx, %ecx
        xor     %r8d, %r8d
        mov     %rsp, %r9
        call    __tdx_module_call
        test    %rax, %rax
        jnz     ve_fail
        cmpq    $EXIT_HLT, 0(%rsp)              # out.rcx = exit reason
        jne     ve_fail
        mov     32(%rsp), %eax                  # out.r10[31:0] = instruction length
        add     %rax, 8(%rbp)                   # resume after the HLT
        mov     $1, %edi                        # irq_disabled
        testq   $0x200, 24(%rbp)                # interrupted context had IF = 1?
        jz      1f
        sti                                     # Linux re-enables IRQs here...
        xor     %edi, %edi                      # ...so irqs_disabled() = 0
1:      call    tdx_halt
        add     $56, %rsp
        pop     %r11
        pop     %r10
        pop     %r9
        pop     %r8
        pop     %rdi
        pop     %rsi
        pop     %rdx
        pop     %rcx
        pop     %rax
        pop     %rbp
        iretq
ve_fail:
        ud2

        .section .rodata
idt_ptr:
        .word   256 * 16 - 1
        .quad   idt

        .data
        .balign 16
idt:    .fill   256 * 16, 1, 0
