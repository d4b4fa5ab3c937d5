# demo.S - the tdxsim demo guest.
#
# A tiny TD guest that talks to its host only through TDG.VP.VMCALL, using
# the guest library in tdcall.S:
#
#   1. prints a greeting on COM1              (Instruction.IO, OUT)
#   2. asks the host for CPUID leaf 0         (Instruction.CPUID)
#   3. reads IA32_APIC_BASE                   (Instruction.RDMSR)
#   4. ends the run through the debug-exit port 0xF4
#
# If any hypercall returns a non-zero GHCI status it prints the status and
# reports a fatal error to the host (ReportFatalError), which never returns.
#
# Build:  as --64 -o demo.o demo.S && as --64 -o tdcall.o tdcall.S
#         ld -m elf_x86_64 -nostdlib -static -Ttext=0x100000 \
#            -o demo.elf demo.o tdcall.o
#
# Entry state (set by tdxsim): CPL0, 64-bit mode, RSP = top of RAM
# (16-byte aligned), no IDT.  IF stays 0, so only an NMI could arrive; the
# library's default IDT takes it (and anything else a host injects).

.set MSR_IA32_APIC_BASE, 0x1B

# demo_main's locals, relative to %rbp
.set CPUID_REGS, -16            # u32[4]: EAX, EBX, ECX, EDX
.set VENDOR,     -32            # 12-char vendor string + NUL
.set APIC_BASE,  -40            # u64 MSR value
.set STATUS,     -48            # u64 failing GHCI status
.set LOCALS,      48            # keeps RSP 16-byte aligned at calls

        .text

# void _start(void) - image entry point.  Never returns.
        .globl  _start
        .type   _start, @function
_start:
        # RSP is 16-byte aligned here, as the ABI wants at a call.  RBP is
        # left as the simulator set it (the end of the frame chain).
        call    tdx_default_idt         # a host may inject NMIs (irq.S)
        call    demo_main
        mov     %rax, %rdi
        call    tdx_debug_exit          # ends the run
        ud2                             # not reached
        .size   _start, . - _start

# u64 demo_main(void) - returns the exit code (0) on success; on a failed
# hypercall it does not return (ReportFatalError).
        .type   demo_main, @function
demo_main:
        push    %rbp
        mov     %rsp, %rbp
        sub     $LOCALS, %rsp

        # 1. Greeting.
        lea     msg_hello(%rip), %rdi
        call    tdx_puts

        # 2. CPUID leaf 0: EAX = max basic leaf, EBX:EDX:ECX = vendor.
        xor     %edi, %edi                      # leaf 0
        xor     %esi, %esi                      # sub-leaf 0
        lea     CPUID_REGS(%rbp), %rdx
        call    tdx_cpuid
        test    %rax, %rax
        jnz     .Lfailed

        mov     CPUID_REGS+4(%rbp), %eax        # EBX: "Genu"
        mov     %eax, VENDOR+0(%rbp)
        mov     CPUID_REGS+12(%rbp), %eax       # EDX: "ineI"
        mov     %eax, VENDOR+4(%rbp)
        mov     CPUID_REGS+8(%rbp), %eax        # ECX: "ntel"
        mov     %eax, VENDOR+8(%rbp)
        movb    $0, VENDOR+12(%rbp)

        lea     msg_cpuid(%rip), %rdi           # "CPUID leaf 0: max leaf "
        call    tdx_puts
        mov     CPUID_REGS+0(%rbp), %edi        # EAX
        call    tdx_put_hex
        lea     msg_vendor(%rip), %rdi          # ", vendor "
        call    tdx_puts
        lea     VENDOR(%rbp), %rdi
        call    tdx_puts
        lea     msg_newline(%rip), %rdi
        call    tdx_puts

        # 3. RDMSR IA32_APIC_BASE.
        mov     $MSR_IA32_APIC_BASE, %edi
        lea     APIC_BASE(%rbp), %rsi
        call    tdx_rdmsr
        test    %rax, %rax
        jnz     .Lfailed

        lea     msg_rdmsr(%rip), %rdi
        call    tdx_puts
        mov     APIC_BASE(%rbp), %rdi
        call    tdx_put_hex
        lea     msg_newline(%rip), %rdi
        call    tdx_puts

        # 4. Done: exit code 0.
        xor     %eax, %eax
        leave
        ret

.Lfailed:
        # RAX = the non-zero GHCI status of the failed call.
        mov     %rax, STATUS(%rbp)
        lea     msg_failed(%rip), %rdi          # "demo: hypercall failed, status "
        call    tdx_puts
        mov     STATUS(%rbp), %rdi
        call    tdx_put_hex
        lea     msg_newline(%rip), %rdi
        call    tdx_puts
        lea     msg_fatal(%rip), %rdi
        call    tdx_report_fatal_error          # never returns
        ud2
        .size   demo_main, . - demo_main

        .section .rodata
msg_hello:      .asciz "Hello from a TD guest\n"
msg_cpuid:      .asciz "CPUID leaf 0: max leaf "
msg_vendor:     .asciz ", vendor "
msg_rdmsr:      .asciz "RDMSR 0x1b (IA32_APIC_BASE) = "
msg_failed:     .asciz "demo: hypercall failed, status "
msg_fatal:      .asciz "demo: hypercall failed"
msg_newline:    .asciz "\n"

# No executable stack.
        .section .note.GNU-stack, "", @progbits
