# Guest code for the EPT-violation tests (test_ept_ve.py): one memory
# access per label, each followed by `ret`, so a test runs exactly one with
# td.call_result and preset registers (address in RDI, value in RSI).
#
# The *_gates functions load an IDT: #VE goes to ve_stop (a UD2 marker, so
# the test sees the exception frame and reads VE info itself), to the
# library handler tdx_ve_entry, to ve_nested or to as_user; #DF always goes
# to df_stop.

.set MMIO_WINDOW, 0x40000000            # linear page own_tables maps by one PTE
# own_tables maps the same PTE at the kernel-half address 0xFFFFFFFF80200000
# (in reach of RIP-relative code at 1 MiB): MMIO emulation needs a kernel
# address (spec 13.3).  window_riprel needs it as a link-time symbol
# `mmio_window` (an assembly-time constant would become a plain
# displacement): the test links a second source that defines it.

        .text
        .globl  stop_gates, library_gates, nested_gates, user_gates
        .globl  ve_stop, df_stop, own_tables
        .globl  at_load, at_store, at_fetch, window_load, window_riprel
        .globl  mmio_load8, mmio_load16, mmio_load32, mmio_load64, mmio_load_sib
        .globl  mmio_load_sil, mmio_load_ah, mmio_store8, mmio_store16, mmio_store32
        .globl  mmio_store64, mmio_store_r12, mmio_store_imm8, mmio_store_imm16
        .globl  mmio_store_imm32, mmio_store_imm64, mmio_movzbl, mmio_movzwq
        .globl  mmio_movsbl, mmio_movswq, mmio_movsbw, mmio_moffs, mmio_split, mmio_add

stop_gates:
        lea     ve_stop(%rip), %rdx
        jmp     gates
library_gates:
        lea     tdx_ve_entry(%rip), %rdx
        jmp     gates
nested_gates:
        lea     ve_nested(%rip), %rdx
        jmp     gates
user_gates:
        lea     as_user(%rip), %rdx
gates:                                  # #VE -> %rdx, #DF -> df_stop
        push    %rbp
        mov     %rsp, %rbp
        lea     idt(%rip), %rdi
        mov     $20, %esi
        call    tdx_set_gate
        lea     idt(%rip), %rdi
        mov     $8, %esi
        lea     df_stop(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)
        pop     %rbp
        ret

ve_stop:        ud2
df_stop:        ud2
ve_nested:      mov     (%rdi), %rax    # the access again, before VEINFO.GET: #DF
                ud2
as_user:        orq     $3, 8(%rsp)     # the saved CS now says CPL 3
                jmp     tdx_ve_entry

at_load:        mov     (%rdi), %rax
                ret
at_store:       mov     %rsi, (%rdi)
                ret
at_fetch:       jmp     *%rdi

# void own_tables(u64 pte): page tables in .bss that map the first GiB
# identically (one 1 GiB page) and linear MMIO_WINDOW through one 4 KiB
# PTE = pte; loads them into CR3.
own_tables:
        lea     pml4(%rip), %rax
        lea     pdpt(%rip), %rcx
        or      $3, %rcx
        mov     %rcx, (%rax)
        lea     pdpt(%rip), %rax
        movq    $0x83, (%rax)
        lea     pd(%rip), %rcx
        or      $3, %rcx
        mov     %rcx, 8(%rax)
        lea     pml4(%rip), %rax                # the same PDPT at PML4[511] ...
        lea     pdpt(%rip), %rcx
        or      $3, %rcx
        mov     %rcx, 511*8(%rax)
        lea     pdpt(%rip), %rax                # ... whose PDPT[510] is the PD too:
        lea     pd(%rip), %rcx                  # kernel window 0xFFFFFFFF80200000
        or      $3, %rcx
        mov     %rcx, 510*8(%rax)
        lea     pd(%rip), %rax
        lea     pt(%rip), %rcx
        or      $3, %rcx
        mov     %rcx, (%rax)
        mov     %rcx, 8(%rax)                   # PD[1]: the same PT
        lea     pt(%rip), %rax
        mov     %rdi, (%rax)
        lea     pml4(%rip), %rax
        mov     %rax, %cr3
        ret

window_load:    mov     MMIO_WINDOW, %rax               # absolute disp32
                ret
window_riprel:  mov     mmio_window(%rip), %eax         # RIP-relative: 8B 05 disp32
                ret

mmio_load8:     mov     (%rdi), %al                     # 8A 07
                ret
mmio_load16:    mov     (%rdi), %ax                     # 66 8B 07
                ret
mmio_load32:    mov     (%rdi), %eax                    # 8B 07
                ret
mmio_load64:    mov     (%rdi), %rax                    # 48 8B 07
                ret
mmio_load_sib:  mov     8(%rdi, %rsi, 4), %r9           # 4C 8B 4C B7 08
                mov     %r9, %rax
                ret
mmio_load_sil:  mov     (%rdi), %sil                    # 40 8A 37
                mov     %rsi, %rax
                ret
mmio_load_ah:   mov     (%rdi), %ah                     # 8A 27
                ret
mmio_store8:    mov     %sil, (%rdi)                    # 40 88 37
                ret
mmio_store16:   mov     %si, (%rdi)
                ret
mmio_store32:   mov     %esi, (%rdi)
                ret
mmio_store64:   mov     %rsi, (%rdi)
                ret
mmio_store_r12: mov     %r12, 0x100(%rdi)               # 4C 89 A7 disp32
                ret
mmio_store_imm8:  movb  $0xAB, (%rdi)                   # C6 07 ib
                  ret
mmio_store_imm16: movw  $0xBEEF, (%rdi)                 # 66 C7 07 iw
                  ret
mmio_store_imm32: movl  $0x12345678, 16(%rdi)           # C7 47 10 id
                  ret
mmio_store_imm64: movq  $-2, (%rdi)                     # 48 C7 07 id, sign-extended
                  ret
mmio_movzbl:    movzbl  (%rdi), %eax
                ret
mmio_movzwq:    movzwq  (%rdi), %rax
                ret
mmio_movsbl:    movsbl  (%rdi), %eax
                ret
mmio_movswq:    movswq  (%rdi), %rax
                ret
mmio_movsbw:    movsbw  (%rdi), %ax                     # 66 0F BE 07
                ret
mmio_moffs:     movabs  0xFFFF8000FEB00000, %eax        # A1: not a form Linux decodes
                ret
mmio_split:     mov     0xFFE(%rdi), %eax               # crosses into the next page
                ret
mmio_add:       add     (%rdi), %eax
                ret

        .section .rodata
idt_ptr:
        .word   256 * 16 - 1
        .quad   idt

        .data
        .balign 16
idt:    .fill   256 * 16, 1, 0

        .bss
        .balign 4096
pml4:   .skip   4096
pdpt:   .skip   4096
pd:     .skip   4096
        .globl  pt
pt:     .skip   4096
