# legacy.S - the tdxsim demo written with plain instructions.
#
# The same three steps as demo.S, but the way an unmodified OS would write
# them: `out` to the serial port, `cpuid`, `rdmsr`, `wrmsr`, `hlt`.  Inside a
# TD the TDX module intercepts these (spec 8.1): `out`, `rdmsr` and `hlt`
# raise #VE, and the library's #VE handler (ve_handler.S) turns each into
# the TDVMCALL that demo.S issues directly.  `cpuid` with leaf 0 does not
# raise #VE: the module answers it from the TD's CPUID configuration, which
# the VMM set from its own table, so it matches the demo's CPUID TDVMCALL.
#
#   1. prints a greeting on COM1              (`out` -> #VE -> Instruction.IO)
#   2. reads CPUID leaf 0                     (answered by the module)
#   3. reads IA32_APIC_BASE                   (`rdmsr` -> #VE -> Instruction.RDMSR)
#   4. idles once: arms the TSC-deadline timer (`wrmsr` -> #VE), `sti; hlt`
#      (-> #VE -> Instruction.HLT) until the tick, EOIs it natively
#   5. ends the run through the debug-exit port 0xF4 (`out` -> #VE)
#
# The console output is identical to demo.S.

.set VE_VECTOR,         20
.set TIMER_VECTOR,      0xEC
.set COM1_THR,          0x3F8
.set DEBUG_EXIT_PORT,   0xF4
.set MSR_IA32_APIC_BASE, 0x1B
.set MSR_TSC_DEADLINE,  0x6E0
.set MSR_LVT_TIMER,     0x832
.set MSR_EOI,           0x80B
.set LVT_TSC_DEADLINE,  2 << 17
.set IDLE_NS,           10000           # one tick 10 us of virtual time ahead

        .text
        .globl  _start
_start:
        lea     idt(%rip), %rdi         # NMIs and unexpected vectors (irq.S)
        call    tdx_default_gates
        lea     idt(%rip), %rdi
        mov     $VE_VECTOR, %esi
        lea     tdx_ve_entry(%rip), %rdx
        call    tdx_set_gate
        lea     idt(%rip), %rdi
        mov     $TIMER_VECTOR, %esi
        lea     timer_irq(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)
        call    legacy_main
        out     %al, $DEBUG_EXIT_PORT   # exit code 0; ends the run
        ud2

legacy_main:
        push    %rbp
        mov     %rsp, %rbp
        push    %rbx
        sub     $24, %rsp               # vendor string at 0(%rsp)

        lea     msg_hello(%rip), %rdi
        call    puts

        xor     %eax, %eax              # CPUID leaf 0
        xor     %ecx, %ecx
        cpuid
        mov     %eax, %r8d              # max basic leaf
        mov     %ebx, 0(%rsp)           # "Genu"
        mov     %edx, 4(%rsp)           # "ineI"
        mov     %ecx, 8(%rsp)           # "ntel"
        movb    $0, 12(%rsp)
        mov     %r8, %rbx
        lea     msg_cpuid(%rip), %rdi
        call    puts
        mov     %rbx, %rdi
        call    put_hex
        lea     msg_vendor(%rip), %rdi
        call    puts
        mov     %rsp, %rdi
        call    puts
        lea     msg_newline(%rip), %rdi
        call    puts

        mov     $MSR_IA32_APIC_BASE, %ecx
        rdmsr
        shl     $32, %rdx
        or      %rax, %rdx
        mov     %rdx, %rbx
        lea     msg_rdmsr(%rip), %rdi
        call    puts
        mov     %rbx, %rdi
        call    put_hex
        lea     msg_newline(%rip), %rdi
        call    puts

        call    idle_once
        xor     %eax, %eax
        mov     -8(%rbp), %rbx
        leave
        ret

# idle_once: wait for one timer tick with `sti; hlt`.  Called and returns
# with IF = 0.
idle_once:
        mov     $MSR_LVT_TIMER, %ecx
        mov     $(LVT_TSC_DEADLINE | TIMER_VECTOR), %eax
        xor     %edx, %edx
        wrmsr
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        add     $IDLE_NS, %rax
        mov     %rax, %rdx
        shr     $32, %rdx
        mov     $MSR_TSC_DEADLINE, %ecx
        wrmsr
        sti
        hlt                             # the tick is taken right after it
        cli
        ret

# Timer interrupt: EOI (an x2APIC register the CPU virtualizes, no exit).
timer_irq:
        push    %rax
        push    %rcx
        push    %rdx
        mov     $MSR_EOI, %ecx
        xor     %eax, %eax
        xor     %edx, %edx
        wrmsr
        pop     %rdx
        pop     %rcx
        pop     %rax
        iretq

# puts(const char *s): each byte with `out` to COM1.
puts:
        mov     $COM1_THR, %edx
1:      movzbl  (%rdi), %eax
        test    %al, %al
        jz      2f
        out     %al, %dx
        inc     %rdi
        jmp     1b
2:      ret

# put_hex(u64 v): "0x" and 16 lowercase hex digits, as tdx_put_hex prints.
put_hex:
        mov     $COM1_THR, %edx
        mov     $'0', %al
        out     %al, %dx
        mov     $'x', %al
        out     %al, %dx
        mov     $16, %ecx
1:      rol     $4, %rdi
        mov     %edi, %eax
        and     $0xf, %eax
        cmp     $10, %eax
        jb      2f
        add     $('a' - '0' - 10), %eax
2:      add     $'0', %eax
        out     %al, %dx
        dec     %ecx
        jnz     1b
        ret

        .section .rodata
msg_hello:      .asciz "Hello from a TD guest\n"
msg_cpuid:      .asciz "CPUID leaf 0: max leaf "
msg_vendor:     .asciz ", vendor "
msg_rdmsr:      .asciz "RDMSR 0x1b (IA32_APIC_BASE) = "
msg_newline:    .asciz "\n"
idt_ptr:        .word 256 * 16 - 1
                .quad idt

        .data
        .balign 16
idt:    .fill 256 * 16, 1, 0

# No executable stack.
        .section .note.GNU-stack, "", @progbits
