# idle.S - tdxsim bundled guest: a timer-driven idle loop.
#
# Sets up an IDT with a timer handler, arms the x2APIC TSC-deadline timer
# through WRMSR hypercalls, and idles in tdx_safe_halt (`sti; tdcall` with
# HLT, the seed's lost-wakeup-free pattern) until TICKS timer interrupts
# have arrived.  Each tick prints its virtual TSC (1 tick = 1 ns).

.set TICKS,             5
.set TIMER_VECTOR,      0xEC
.set PERIOD_NS,         1000000         # 1 ms of virtual time
.set MSR_TSC_DEADLINE,  0x6E0
.set MSR_LVT_TIMER,     0x832
.set MSR_EOI,           0x80B
.set LVT_TSC_DEADLINE,  2 << 17         # timer mode bits 18:17 = 2

        .text
        .globl  _start
_start:
        lea     idt(%rip), %rdi         # NMIs and unexpected vectors (irq.S)
        call    tdx_default_gates
        lea     idt(%rip), %rdi
        mov     $TIMER_VECTOR, %esi
        lea     timer_irq(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)

        lea     msg_hello(%rip), %rdi
        call    tdx_puts

        mov     $MSR_LVT_TIMER, %edi
        mov     $(LVT_TSC_DEADLINE | TIMER_VECTOR), %esi
        call    tdx_wrmsr
        call    arm_timer

idle:   cmpq    $TICKS, ticks(%rip)
        jae     done
        call    tdx_safe_halt           # IF = 0 in, IF = 1 out
        cli                             # the tick (if any) was taken after the tdcall
        jmp     idle

done:   lea     msg_done(%rip), %rdi
        call    tdx_puts
        xor     %edi, %edi
        call    tdx_debug_exit

# Timer interrupt: count the tick, print it, re-arm, EOI.
timer_irq:
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
        incq    ticks(%rip)
        lea     msg_tick(%rip), %rdi
        call    tdx_puts
        mov     ticks(%rip), %rdi
        call    tdx_put_dec
        lea     msg_at(%rip), %rdi
        call    tdx_puts
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, %rdi
        call    tdx_put_dec
        lea     msg_ns(%rip), %rdi
        call    tdx_puts
        call    arm_timer
        mov     $MSR_EOI, %edi
        xor     %esi, %esi
        call    tdx_wrmsr
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
msg_hello:  .asciz "idle: timer every 1 ms of virtual time\n"
msg_tick:   .asciz "tick "
msg_at:     .asciz " at tsc="
msg_ns:     .asciz " ns\n"
msg_done:   .asciz "idle: done\n"
idt_ptr:    .word 256 * 16 - 1
            .quad idt

        .data
        .balign 16
idt:        .fill 256 * 16, 1, 0
ticks:      .quad 0
