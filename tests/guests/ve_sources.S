# Every instruction the TDX module intercepts (spec 8.1), one per label,
# each followed by `ret`, so a test runs exactly one with td.call_result and
# preset registers.  ve_setup loads an IDT whose #VE, #GP and #DF gates stop
# on distinct UD2 markers, so the test can inspect the exception frame and
# then read VE info itself with tdx_veinfo_get.


        .text
        .globl  ve_setup, ve_setup_nested, ve_stop, gp_stop, df_stop
        .globl  at_out_dx, at_in_dx_eax, at_out_imm, at_in_imm, at_rep_insb, at_outsw
        .globl  at_cpuid, at_rdmsr, at_wrmsr, irq_stub

# void ve_setup(void): #VE -> ve_stop, #GP -> gp_stop, #DF -> df_stop,
# vector 0xEC -> irq_stub (iretq)
ve_setup:
        lea     ve_stop(%rip), %rdx
        jmp     setup

# void ve_setup_nested(void): the #VE handler itself executes `out`
ve_setup_nested:
        lea     ve_nested(%rip), %rdx
setup:
        mov     $20, %esi
        call    gate
        lea     gp_stop(%rip), %rdx
        mov     $13, %esi
        call    gate
        lea     df_stop(%rip), %rdx
        mov     $8, %esi
        call    gate
        lea     irq_stub(%rip), %rdx
        mov     $0xEC, %esi
        call    gate
        lidt    idt_ptr(%rip)
        ret

# gate(vector = esi, handler = rdx): tdx_set_gate on this guest's idt
gate:
        lea     idt(%rip), %rdi
        jmp     tdx_set_gate

at_out_dx:      out     %al, %dx
                ret
at_in_dx_eax:   in      %dx, %eax
                ret
at_out_imm:     out     %al, $0x80
                ret
at_in_imm:      in      $0x71, %al
                ret
at_rep_insb:    rep insb
                ret
at_outsw:       outsw
                ret
at_cpuid:       cpuid
                ret
at_rdmsr:       rdmsr
                ret
at_wrmsr:       wrmsr
                ret

ve_stop:        ud2
gp_stop:        ud2
df_stop:        ud2
ve_nested:      out     %al, %dx        # without VEINFO.GET first: #DF
                ud2
irq_stub:       iretq

        .section .rodata
idt_ptr:
        .word   256 * 16 - 1
        .quad   idt

        .data
        .balign 16
idt:    .fill   256 * 16, 1, 0
        .globl  buffer
buffer: .quad   0x1122334455667788
