# irq.S - tdxsim guest library: interrupt gates that survive a host that
# injects what it likes (spec 13.1, 13.4 B14).
#
# A TDX host can make any vector 32-255 pending and inject NMIs; it cannot
# inject exceptions 0-31.  A guest that leaves IDT entries empty crashes on
# the first vector it did not expect (a #GP/triple fault on hardware), and
# a handler that assumes it was reached by software (`int $0x80`, the
# Heckler attack, CVE-2024-25744) runs with attacker-chosen timing and
# registers.  These routines give every vector a safe default and show the
# defence:
#
#   void tdx_default_gates(void *idt)  IDT[2] -> tdx_nmi_entry, IDT[32..255]
#                                      -> tdx_spurious_entry (the guest then
#                                      sets its own gates over them)
#   void *tdx_default_idt(void)        loads a library IDT with those gates
#                                      and #VE -> tdx_ve_entry; returns it
#   tdx_nmi_entry                      counts NMIs, iretq
#   tdx_spurious_entry                 counts, EOI, iretq
#   tdx_int80_entry                    the defended int 0x80 gate: if the
#                                      x2APIC in-service register has bit 0x80
#                                      set, the vector came from outside (an
#                                      external interrupt is in service; `int`
#                                      never sets ISR): count it, EOI, iretq,
#                                      nothing else.  Otherwise call the
#                                      function set with
#                                      tdx_set_int80_handler (if any) with the
#                                      caller's RDI, RSI, RDX; its RAX is
#                                      returned in RAX.
#   u64 tdx_nmi_count(void), u64 tdx_spurious_count(void),
#   u64 tdx_int80_refused(void)        the counters
#
# x2APIC registers are MSRs (Intel SDM vol. 3, 11.12.1): ISR bits 255:0 at
# 0x810-0x817, 32 per MSR; EOI at 0x80B.  In a TD both are virtualized by
# the CPU (APICv) without a TD exit.

.set IDT_VECTORS,       256
.set VE_VECTOR,         20
.set NMI_VECTOR,        2
.set FIRST_EXTERNAL,    32
.set MSR_X2APIC_EOI,    0x80B
.set MSR_X2APIC_ISR0,   0x810
.set INT80,             0x80

        .text

# void tdx_default_gates(void *idt)
        .globl  tdx_default_gates
        .type   tdx_default_gates, @function
tdx_default_gates:
        push    %rbx
        push    %r12
        push    %r13
        mov     %rdi, %r12
        mov     $NMI_VECTOR, %esi
        lea     tdx_nmi_entry(%rip), %rdx
        call    tdx_set_gate
        mov     $FIRST_EXTERNAL, %ebx
1:      mov     %r12, %rdi
        mov     %ebx, %esi
        lea     tdx_spurious_entry(%rip), %rdx
        call    tdx_set_gate
        inc     %ebx
        cmp     $IDT_VECTORS, %ebx
        jb      1b
        pop     %r13
        pop     %r12
        pop     %rbx
        ret
        .size   tdx_default_gates, . - tdx_default_gates

# void *tdx_default_idt(void)
        .globl  tdx_default_idt
        .type   tdx_default_idt, @function
tdx_default_idt:
        push    %rbp
        mov     %rsp, %rbp
        lea     tdx_idt(%rip), %rdi
        call    tdx_default_gates
        lea     tdx_idt(%rip), %rdi
        mov     $VE_VECTOR, %esi
        lea     tdx_ve_entry(%rip), %rdx
        call    tdx_set_gate
        lidt    tdx_idt_ptr(%rip)
        lea     tdx_idt(%rip), %rax
        pop     %rbp
        ret
        .size   tdx_default_idt, . - tdx_default_idt

# void tdx_nmi_entry(void) - IDT vector 2.  Not called; returns with iretq.
        .globl  tdx_nmi_entry
        .type   tdx_nmi_entry, @function
tdx_nmi_entry:
        lock incq nmi_count(%rip)
        iretq
        .size   tdx_nmi_entry, . - tdx_nmi_entry

# void tdx_spurious_entry(void) - IDT vectors 32-255 by default.  Not called.
        .globl  tdx_spurious_entry
        .type   tdx_spurious_entry, @function
tdx_spurious_entry:
        lock incq spurious_count(%rip)
        push    %rax
        push    %rcx
        push    %rdx
        call    eoi
        pop     %rdx
        pop     %rcx
        pop     %rax
        iretq
        .size   tdx_spurious_entry, . - tdx_spurious_entry

# void tdx_int80_entry(void) - the defended int 0x80 gate (see the header).
# Not called.  Caller-saved registers other than RAX are preserved across
# the handler call, as a syscall entry does.
        .globl  tdx_int80_entry
        .type   tdx_int80_entry, @function
tdx_int80_entry:
        push    %rcx
        push    %rdx
        push    %rax
        mov     $MSR_X2APIC_ISR0 + INT80 / 32, %ecx
        rdmsr
        test    $1 << (INT80 % 32), %eax
        jnz     .Lint80_external
        pop     %rax
        pop     %rdx
        pop     %rcx
        push    %rcx
        push    %rsi
        push    %rdi
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        push    %rdx
        mov     int80_handler(%rip), %rax
        test    %rax, %rax
        jz      1f
        call    *%rax
1:      pop     %rdx
        pop     %r11
        pop     %r10
        pop     %r9
        pop     %r8
        pop     %rdi
        pop     %rsi
        pop     %rcx
        iretq
.Lint80_external:
        lock incq int80_refused(%rip)
        call    eoi
        pop     %rax
        pop     %rdx
        pop     %rcx
        iretq
        .size   tdx_int80_entry, . - tdx_int80_entry

# void tdx_set_int80_handler(void *fn)
        .globl  tdx_set_int80_handler
        .type   tdx_set_int80_handler, @function
tdx_set_int80_handler:
        mov     %rdi, int80_handler(%rip)
        ret
        .size   tdx_set_int80_handler, . - tdx_set_int80_handler

# u64 tdx_nmi_count(void)
        .globl  tdx_nmi_count
        .type   tdx_nmi_count, @function
tdx_nmi_count:
        mov     nmi_count(%rip), %rax
        ret
        .size   tdx_nmi_count, . - tdx_nmi_count

# u64 tdx_spurious_count(void)
        .globl  tdx_spurious_count
        .type   tdx_spurious_count, @function
tdx_spurious_count:
        mov     spurious_count(%rip), %rax
        ret
        .size   tdx_spurious_count, . - tdx_spurious_count

# u64 tdx_int80_refused(void)
        .globl  tdx_int80_refused
        .type   tdx_int80_refused, @function
tdx_int80_refused:
        mov     int80_refused(%rip), %rax
        ret
        .size   tdx_int80_refused, . - tdx_int80_refused

# EOI to the x2APIC; clobbers RAX, RCX, RDX.
        .type   eoi, @function
eoi:    mov     $MSR_X2APIC_EOI, %ecx
        xor     %eax, %eax
        xor     %edx, %edx
        wrmsr
        ret
        .size   eoi, . - eoi

        .section .rodata
        .balign 8
tdx_idt_ptr:
        .word   IDT_VECTORS * 16 - 1
        .quad   tdx_idt

        .data
        .balign 8
nmi_count:              .quad 0
spurious_count:         .quad 0
int80_refused:          .quad 0
int80_handler:          .quad 0
        .balign 16
tdx_idt:                .fill IDT_VECTORS * 16, 1, 0

        .section .note.GNU-stack, "", @progbits
