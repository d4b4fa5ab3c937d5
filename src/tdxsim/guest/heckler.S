# heckler.S - tdxsim bundled guest: the Heckler pattern (CVE-2024-25744,
# spec 13.4 B14) and its defence.
#
# A TDX host cannot inject exceptions, but it can make any vector 32-255
# pending, including 0x80, the 32-bit syscall gate.  A handler for a
# software interrupt that trusts it was reached by `int $0x80` runs whenever
# the host likes.  This guest idles twice, each time making one real
# `int $0x80` call of its own:
#
#   1. with the guest library's defended gate (tdx_int80_entry, irq.S): it
#      reads the x2APIC in-service register, and an external 0x80 (ISR bit
#      set; `int` never sets it) is refused and EOIed; the syscall body runs
#      only for the guest's own call;
#   2. with a naive gate that runs the syscall body for every entry.
#
# It prints how often each body ran.  Under `--host kvm` both run once.
# Under `--host hostile` the host injects 0x80 (and other vectors, and NMIs)
# while the guest idles: the naive body runs more often than the guest
# asked, the defended body never does.  Exit code 0 either way.

.set TICKS,             10              # timer ticks per phase
.set TIMER_VECTOR,      0xEC
.set INT80,             0x80
.set PERIOD_NS,         100000          # 100 us of virtual time
.set MSR_TSC_DEADLINE,  0x6E0
.set MSR_LVT_TIMER,     0x832
.set MSR_EOI,           0x80B
.set LVT_TSC_DEADLINE,  2 << 17

        .text
        .globl  _start, naive_int80, syscall_body
_start:
        call    tdx_default_idt         # NMIs, unexpected vectors, #VE
        mov     %rax, idt_base(%rip)
        mov     %rax, %rdi
        mov     $TIMER_VECTOR, %esi
        lea     timer_irq(%rip), %rdx
        call    tdx_set_gate
        mov     $MSR_LVT_TIMER, %edi
        mov     $(LVT_TSC_DEADLINE | TIMER_VECTOR), %esi
        call    tdx_wrmsr

        # 1. the defended gate
        mov     idt_base(%rip), %rdi
        mov     $INT80, %esi
        lea     tdx_int80_entry(%rip), %rdx
        call    tdx_set_gate
        lea     defended_body(%rip), %rdi
        call    tdx_set_int80_handler
        int     $INT80                  # the guest's own syscall
        call    idle_phase
        lea     msg_defended(%rip), %rdi
        call    tdx_puts
        mov     defended_calls(%rip), %rdi
        call    tdx_put_dec
        lea     msg_refused(%rip), %rdi
        call    tdx_puts
        call    tdx_int80_refused
        mov     %rax, %rdi
        call    tdx_put_dec
        lea     msg_newline(%rip), %rdi
        call    tdx_puts

        # 2. the naive gate
        mov     idt_base(%rip), %rdi
        mov     $INT80, %esi
        lea     naive_int80(%rip), %rdx
        call    tdx_set_gate
        int     $INT80
        call    idle_phase
        lea     msg_naive(%rip), %rdi
        call    tdx_puts
        mov     naive_calls(%rip), %rdi
        call    tdx_put_dec
        lea     msg_asked(%rip), %rdi
        call    tdx_puts

        xor     %edi, %edi
        call    tdx_debug_exit

# The naive gate: it assumes `int $0x80` from its own code and runs the
# syscall; it never EOIs, as nothing told it an interrupt is in service.
naive_int80:
        push    %rax
        call    syscall_body
        incq    naive_calls(%rip)
        pop     %rax
        iretq

# The "syscall": an effect with global reach (here a counter).
syscall_body:
        incq    syscalls(%rip)
        ret

defended_body:
        incq    defended_calls(%rip)
        jmp     syscall_body

# idle_phase: TICKS timer ticks of tdx_safe_halt.
idle_phase:
        push    %rbp
        mov     %rsp, %rbp
        movq    $0, ticks(%rip)
        call    arm_timer
1:      cmpq    $TICKS, ticks(%rip)
        jae     2f
        call    tdx_safe_halt           # IF = 0 in, IF = 1 out
        cli
        jmp     1b
2:      pop     %rbp
        ret

timer_irq:
        push    %rax
        push    %rcx
        push    %rdx
        push    %rsi
        push    %rdi
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        incq    ticks(%rip)
        call    arm_timer
        mov     $MSR_EOI, %ecx          # x2APIC EOI: virtualized, no exit
        xor     %eax, %eax
        xor     %edx, %edx
        wrmsr
        pop     %r11
        pop     %r10
        pop     %r9
        pop     %r8
        pop     %rdi
        pop     %rsi
        pop     %rdx
        pop     %rcx
        pop     %rax
        iretq

# arm_timer: IA32_TSC_DEADLINE = now + PERIOD_NS
arm_timer:
        push    %rbp
        mov     %rsp, %rbp
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        lea     PERIOD_NS(%rax), %rsi
        mov     $MSR_TSC_DEADLINE, %edi
        call    tdx_wrmsr
        pop     %rbp
        ret

        .section .rodata
msg_defended:   .asciz "heckler: defended int 0x80 gate: syscall ran "
msg_refused:    .asciz " time(s) (the guest called once); external 0x80 refused: "
msg_naive:      .asciz "heckler: naive int 0x80 gate: syscall ran "
msg_asked:      .asciz " time(s) (the guest called once)\n"
msg_newline:    .asciz "\n"

        .data
        .balign 8
        .globl  naive_calls, defended_calls, syscalls
idt_base:       .quad 0
ticks:          .quad 0
naive_calls:    .quad 0
defended_calls: .quad 0
syscalls:       .quad 0

        .section .note.GNU-stack, "", @progbits
