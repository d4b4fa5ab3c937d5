# Every instruction the TDX module intercepts (spec 8.1), one per label,
# each followed by `ret`, so a test runs exactly one with td.call_result and
# preset registers.  ve_setup loads an IDT whose #VE, #GP and #DF gates stop
# on distinct UD2 markers, so the test can inspect the exception frame and
# then read VE info itself with veinfo_get.

.set KERNEL_CS, 0x08

        .text
        .globl  ve_setup, ve_setup_nested, ve_stop, gp_stop, df_stop, veinfo_get
        .globl  at_out_dx, at_in_dx_eax, at_out_imm, at_in_imm, at_rep_insb, at_outsw
        .globl  at_cpuid, at_rdmsr, at_wrmsr, irq_stub

# void ve_setup(void): #VE -> ve_stop, #GP -> gp_stop, #DF -> df_stop,
# vector 0xEC -> irq_stub (iretq)
ve_setup:
        lea     ve_stop(%rip), %rsi
        jmp     setup

# void ve_setup_nested(void): the #VE handler itself executes `out`
ve_setup_nested:
        lea     ve_nested(%rip), %rsi
setup:
        mov     $20, %edi
        call    set_gate
        lea     gp_stop(%rip), %rsi
        mov     $13, %edi
        call    set_gate
        lea     df_stop(%rip), %rsi
        mov     $8, %edi
        call    set_gate
        lea     irq_stub(%rip), %rsi
        mov     $0xEC, %edi
        call    set_gate
        lidt    idt_ptr(%rip)
        ret

# u64 veinfo_get(u64 out[6]): TDG.VP.VEINFO.GET via __tdx_module_call
veinfo_get:
        mov     %rdi, %r9
        mov     $3, %edi
        xor     %esi, %esi
        xor     %edx, %edx
        xor     %ecx, %ecx
        xor     %r8d, %r8d
        jmp     __tdx_module_call

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

# set_gate(vector = edi, handler = rsi): 64-bit interrupt gate
set_gate:
        shl     $4, %edi
        lea     idt(%rip), %rax
        add     %rdi, %rax
        mov     %si, 0(%rax)
        movw    $KERNEL_CS, 2(%rax)
        movw    $0x8E00, 4(%rax)
        shr     $16, %rsi
        mov     %si, 6(%rax)
        shr     $16, %rsi
        mov     %esi, 8(%rax)
        movl    $0, 12(%rax)
        ret

        .section .rodata
idt_ptr:
        .word   256 * 16 - 1
        .quad   idt

        .data
        .balign 16
idt:    .fill   256 * 16, 1, 0
        .globl  buffer
buffer: .quad   0x1122334455667788
