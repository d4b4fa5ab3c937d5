# smp.S - tdxsim bundled guest: several vCPUs (run with --vcpus N).
#
# Every vCPU starts at _start with its index in RSI.  The BSP (vCPU 0) sets
# up the IDT (NMIs and stray vectors: irq.S; #VE: tdx_ve_entry; IPI_VECTOR:
# ap_reported), learns the number of vCPUs from TDG.VP.INFO and wakes each
# AP in turn through the ACPI multiprocessor wakeup mailbox (mp.S).  Each
# AP loads the same IDT, does CPUID leaf 0 through a TDVMCALL, prints its
# index and the vendor, counts itself in, and sends the BSP an IPI with a
# plain WRMSR of the x2APIC ICR (#VE -> tdx_ve_entry -> TDVMCALL WRMSR).
# The BSP sleeps in tdx_safe_halt (`sti; tdcall`, no lost wakeup) until
# every AP has reported, then exits with code 0.  The APs' lines come in an
# order that depends on the interleaving (tdxsim run --seed).

.set IPI_VECTOR,        0xF0
.set VE_VECTOR,         20
.set TDG_VP_INFO,       1
.set MSR_X2APIC_ICR,    0x830
.set AP_STACK_SIZE,     0x2000
.set MAX_APS,           63

        .text
        .globl  _start
_start:
        test    %rsi, %rsi
        jz      bsp
        mov     %rsi, %rdi
        jmp     tdx_mp_ap_wait          # APs: no stack until the BSP gives one

bsp:    lea     idt(%rip), %rdi
        call    tdx_default_gates
        lea     idt(%rip), %rdi
        mov     $VE_VECTOR, %esi
        lea     tdx_ve_entry(%rip), %rdx
        call    tdx_set_gate
        lea     idt(%rip), %rdi
        mov     $IPI_VECTOR, %esi
        lea     ap_reported(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)

        mov     $TDG_VP_INFO, %edi
        xor     %esi, %esi
        xor     %edx, %edx
        xor     %ecx, %ecx
        xor     %r8d, %r8d
        lea     info(%rip), %r9
        call    __tdx_module_call
        mov     info+16(%rip), %r12d    # R8[31:0] = NUM_VCPUS
        lea     -1(%r12), %r13          # APs to come
        cmp     $MAX_APS, %r13
        jbe     1f
        mov     $MAX_APS, %r13d
1:      lea     msg_bsp(%rip), %rdi
        call    tdx_puts
        mov     %r12, %rdi
        call    tdx_put_dec
        lea     msg_vcpus(%rip), %rdi
        call    tdx_puts

        mov     $1, %ebx                # wake APs 1 .. N-1, one at a time
wake:   cmp     %r13, %rbx
        ja      wait
        mov     %rbx, %rdi
        lea     ap_main(%rip), %rsi
        mov     %rbx, %rdx
        shl     $13, %rdx               # AP_STACK_SIZE per AP
        lea     ap_stacks(%rip), %rax
        add     %rax, %rdx              # the top of AP rbx's stack
        call    tdx_mp_wake
        inc     %rbx
        jmp     wake

wait:   cli
1:      cmp     %r13, reported(%rip)
        jae     done
        call    tdx_safe_halt           # IF = 0 in, 1 out: the IPI is taken here
        cli
        jmp     1b

done:   lea     msg_done(%rip), %rdi
        call    tdx_puts
        xor     %edi, %edi
        call    tdx_debug_exit

# The BSP's IPI handler: each AP's IPI; the count is in `arrived`.
ap_reported:
        push    %rax
        push    %rcx
        push    %rdx
        push    %rsi
        push    %rdi
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        mov     arrived(%rip), %rax
        mov     %rax, reported(%rip)
        mov     $0x80B, %edi            # EOI
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
        iretq

# An AP, woken with RDI = its index and its own stack.
ap_main:
        push    %rbp
        mov     %rsp, %rbp
        sub     $32, %rsp               # CPUID out[4] at -16(%rbp), index at -24
        mov     %rdi, -24(%rbp)
        lidt    idt_ptr(%rip)           # IDTR is per vCPU
        xor     %edi, %edi              # CPUID leaf 0 through a TDVMCALL
        xor     %esi, %esi
        lea     -16(%rbp), %rdx
        call    tdx_cpuid
        test    %rax, %rax
        jnz     ap_failed

        lea     console_lock(%rip), %rdi
        call    tdx_spin_lock
        lea     msg_ap(%rip), %rdi
        call    tdx_puts
        mov     -24(%rbp), %rdi
        call    tdx_put_dec
        lea     msg_up(%rip), %rdi
        call    tdx_puts
        mov     -16+4(%rbp), %eax       # the vendor string: EBX, EDX, ECX
        mov     %eax, vendor(%rip)
        mov     -16+12(%rbp), %eax
        mov     %eax, vendor+4(%rip)
        mov     -16+8(%rbp), %eax       # ECX
        mov     %eax, vendor+8(%rip)
        lea     vendor(%rip), %rdi
        call    tdx_puts
        lea     msg_nl(%rip), %rdi
        call    tdx_puts
        lock incq arrived(%rip)
        lea     console_lock(%rip), %rdi
        call    tdx_spin_unlock

        mov     $MSR_X2APIC_ICR, %ecx   # IPI to APIC ID 0: #VE, then TDVMCALL WRMSR
        mov     $IPI_VECTOR, %eax
        xor     %edx, %edx
        wrmsr
park:   cli
        mov     $1, %edi                # interrupts blocked: only an NMI wakes it
        call    tdx_halt
        jmp     park

ap_failed:
        ud2

        .section .rodata
msg_bsp:    .asciz "smp: BSP up, "
msg_vcpus:  .asciz " vCPUs\n"
msg_ap:     .asciz "smp: AP "
msg_up:     .asciz " up, CPUID vendor "
msg_nl:     .asciz "\n"
msg_done:   .asciz "smp: every AP reported\n"
idt_ptr:    .word 256 * 16 - 1
            .quad idt

        .data
        .balign 16
idt:        .fill 256 * 16, 1, 0
info:       .fill 6, 8, 0               # struct tdx_module_output
arrived:    .quad 0
reported:   .quad 0
console_lock: .quad 0
vendor:     .fill 16, 1, 0

        .bss
        .balign 16
ap_stacks:  .fill (MAX_APS + 1) * AP_STACK_SIZE, 1, 0
