# crt0.S - tdxsim's C runtime: what runs before and after a C guest's main().
#
# GNU as, AT&T syntax, no C preprocessor (assembled with plain `as --64`).
# Linked (after tdcall.S and ve_handler.S) into every guest built from C.
# All of it is weak: a guest that defines _start, memcpy, ... keeps its own.
#
#   _start   clears .bss (linker-script symbols __bss_start/__bss_end),
#            switches to the runtime's own 64 KiB stack, loads tdx_idt with
#            the library's default gates (NMI, vectors 32-255: irq.S) and
#            its #VE handler at vector 20, calls main() and turns
#            its return value into a debug exit (tdx_debug_exit).
#   tdx_set_interrupt(vector, handler)   a gate in tdx_idt
#   memcpy, memmove, memset, memcmp      what a C compiler may call by itself

.set VE_VECTOR,         20
.set IDT_ENTRIES,       256
.set GATE_SIZE,         16
.set STACK_SIZE,        0x10000

        .text

        .globl  _start
        .type   _start, @function
_start:
        cld
        lea     __bss_start(%rip), %rdi
        lea     __bss_end(%rip), %rcx
        sub     %rdi, %rcx
        xor     %eax, %eax
        rep stosb                       # no stack yet: it is in .bss too
        lea     tdx_stack_top(%rip), %rsp
        xor     %ebp, %ebp              # the frame-pointer chain ends here
        lea     tdx_idt(%rip), %rdi     # NMIs and any vector a host injects (irq.S)
        call    tdx_default_gates
        mov     $VE_VECTOR, %edi
        lea     tdx_ve_entry(%rip), %rsi
        call    tdx_set_interrupt
        lidt    tdx_idt_ptr(%rip)
        call    main
        movslq  %eax, %rdi
        call    tdx_debug_exit          # does not return
        ud2
        .size   _start, . - _start

# void tdx_set_interrupt(u64 vector, void *handler)
        .globl  tdx_set_interrupt
        .type   tdx_set_interrupt, @function
tdx_set_interrupt:
        mov     %rsi, %rdx
        mov     %rdi, %rsi
        lea     tdx_idt(%rip), %rdi
        jmp     tdx_set_gate
        .size   tdx_set_interrupt, . - tdx_set_interrupt

# void *memcpy(void *dst, const void *src, u64 n)
        .globl  memcpy
        .type   memcpy, @function
memcpy:
        mov     %rdi, %rax
        mov     %rdx, %rcx
        rep movsb
        ret
        .size   memcpy, . - memcpy

# void *memmove(void *dst, const void *src, u64 n): backwards when dst > src
        .globl  memmove
        .type   memmove, @function
memmove:
        mov     %rdi, %rax
        mov     %rdx, %rcx
        cmp     %rsi, %rdi
        jbe     1f
        lea     -1(%rdi, %rdx), %rdi
        lea     -1(%rsi, %rdx), %rsi
        std
        rep movsb
        cld
        ret
1:      rep movsb
        ret
        .size   memmove, . - memmove

# void *memset(void *dst, int c, u64 n)
        .globl  memset
        .type   memset, @function
memset:
        mov     %rdi, %r8
        mov     %esi, %eax
        mov     %rdx, %rcx
        rep stosb
        mov     %r8, %rax
        ret
        .size   memset, . - memset

# int memcmp(const void *a, const void *b, u64 n)
        .globl  memcmp
        .type   memcmp, @function
memcmp:
        xor     %eax, %eax
1:      test    %rdx, %rdx
        jz      2f
        movzbl  (%rdi), %eax
        movzbl  (%rsi), %ecx
        sub     %ecx, %eax
        jnz     2f
        inc     %rdi
        inc     %rsi
        dec     %rdx
        jmp     1b
2:      ret
        .size   memcmp, . - memcmp

        .section .rodata
tdx_idt_ptr:
        .word   IDT_ENTRIES * GATE_SIZE - 1
        .quad   tdx_idt

        .bss
        .balign 16
        .globl  tdx_idt
tdx_idt:
        .skip   IDT_ENTRIES * GATE_SIZE
        .balign 16
tdx_stack:
        .skip   STACK_SIZE
tdx_stack_top:

        .section .note.GNU-stack, "", @progbits
