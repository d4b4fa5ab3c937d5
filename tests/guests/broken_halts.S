# Deliberately broken halt routines for the lost-wakeup explorer tests.
# broken_safe_halt: `sti; nop; tdcall(HLT)`, the window of spec 7.3 row 3.
    .text
    .globl broken_safe_halt
broken_safe_halt:            # sti; nop; tdcall(HLT): the window is open
    push %rbp
    mov %rsp, %rbp
    push %r12
    xor %eax, %eax
    mov $0xFC00, %ecx
    xor %r10d, %r10d
    mov $12, %r11d
    xor %r12d, %r12d
    sti
    nop
    tdcall
    pop %r12
    pop %rbp
    ret

# sti_then_call: IF = 1 long before the halt TDCALL (the "IF = 1 already"
# row of spec 7.3): any boundary before the TDCALL loses the wakeup.
    .globl early_sti_halt
early_sti_halt:
    sti
    push %rbp
    mov %rsp, %rbp
    xor %edi, %edi
    call tdx_halt
    pop %rbp
    ret
