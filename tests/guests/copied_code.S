# Code copied at run time, then run: with exact traps its RDMSR raises #VE.
.set VE_VECTOR,         20
.set DEBUG_EXIT_PORT,   0xF4
        .text
        .globl  _start
_start:
        lea     idt(%rip), %rdi
        call    tdx_default_gates
        lea     idt(%rip), %rdi
        mov     $VE_VECTOR, %esi
        lea     tdx_ve_entry(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)
        lea     snippet(%rip), %rsi
        lea     buffer(%rip), %rdi
        mov     $(snippet_end - snippet), %ecx
        rep movsb
        call    buffer
        mov     %eax, %ebx
        out     %al, $DEBUG_EXIT_PORT
        ud2
snippet:
        mov     $0x1B, %ecx             # IA32_APIC_BASE
        rdmsr
        ret
snippet_end:

        .section .rwx, "awx"
        .align  4096
buffer: .fill   64, 1, 0xCC

        .data
        .align  16
idt_ptr:
        .word   256 * 16 - 1
        .quad   idt
        .bss
        .align  4096
idt:    .skip   256 * 16
