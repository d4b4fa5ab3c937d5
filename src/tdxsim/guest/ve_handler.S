# ve_handler.S - tdxsim guest library: a #VE handler that turns plain
# instructions back into TDVMCALLs, as a TD kernel's handler does.
#
# GNU as, AT&T syntax, x86-64, CPL0.  Linked into every tdxsim guest image
# next to tdcall.S, whose wrappers it uses.  A guest points IDT vector 20
# (an interrupt gate) at tdx_ve_entry.
#
# What it does (spec 8.4, the Linux reference behaviour):
#   1. saves every GPR, then reads VE info with TDG.VP.VEINFO.GET; a failing
#      TDCALL means a broken module: ud2;
#   2. by exit reason:
#        HLT 12     Instruction.HLT, R12 = 1 if the interrupted context had
#                   IF = 0 (irqs_disabled);
#        IO 30      Instruction.IO; string I/O (qualification bit 4) is
#                   rejected.  IN writes the data as the instruction would
#                   (spec 13.3, Linux's 2026 port-I/O fixes): sizes 1 and 2
#                   replace exactly the low 8/16 bits of RAX, size 4 writes
#                   EAX and so zero-extends RAX[63:32]; OUT sends RAX cut to
#                   `size`;
#        CPUID 10   leaves 0x40000000-0x4FFFFFFF go to the VMM, every other
#                   leaf reads as zeros (what Linux does);
#        RDMSR 31   EDX:EAX = the VMM's value;   WRMSR 32  sends EDX:EAX;
#        EPT violation 48: MMIO, in ve_mmio.S;
#   3. on success advances the saved RIP by the instruction length and
#      returns with iretq; any failure or other exit reason ends the run
#      with ReportFatalError ("tdx_ve: ...").  That way out is in ve_mmio.S
#      too, right after the MMIO code, where it always was in the image.
#
# Unlike Linux before v6.15 it never re-enables interrupts: the HLT TDVMCALL
# is issued with IF = 0 and R12 = 0, so a wakeup arriving after `sti; hlt`
# stays pending, wakes the vCPU and is delivered after the iretq (spec 7.3).

        .include "ve.inc"

        .text

# void tdx_ve_entry(void) - IDT vector 20.  Not called; returns with iretq.
        .globl  tdx_ve_entry
        .type   tdx_ve_entry, @function
tdx_ve_entry:
        push    %rax
        push    %rcx
        push    %rdx
        push    %rbx
        push    %rbp
        push    %rsi
        push    %rdi
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        mov     %rsp, %rbx
        sub     $LOCALS, %rsp

        mov     $TDG_VP_VEINFO_GET, %edi
        xor     %esi, %esi
        xor     %edx, %edx
        xor     %ecx, %ecx
        xor     %r8d, %r8d
        lea     VE_REASON(%rbx), %r9
        call    __tdx_module_call
        test    %rax, %rax
        jnz     __tdx_ve_broken_module

        mov     VE_REASON(%rbx), %eax
        cmp     $EXIT_REASON_HLT, %eax
        je      .Lve_hlt
        cmp     $EXIT_REASON_IO, %eax
        je      .Lve_io
        cmp     $EXIT_REASON_CPUID, %eax
        je      .Lve_cpuid
        cmp     $EXIT_REASON_MSR_READ, %eax
        je      .Lve_rdmsr
        cmp     $EXIT_REASON_MSR_WRITE, %eax
        je      .Lve_wrmsr
        cmp     $EXIT_REASON_EPT_VIOLATION, %eax
        je      __tdx_ve_mmio
        lea     msg_ve_unexpected(%rip), %rdi
        jmp     __tdx_ve_fatal

.Lve_hlt:
        mov     F_RFLAGS(%rbx), %rdi
        not     %rdi
        shr     $9, %rdi                # irqs_disabled = !RFLAGS.IF
        and     $1, %edi
        call    tdx_halt
        jmp     __tdx_ve_check

.Lve_io:
        mov     VE_QUAL(%rbx), %rax
        test    $IO_QUAL_STRING, %eax
        jnz     __tdx_ve_string_io
        mov     %eax, %esi
        and     $7, %esi
        inc     %esi                    # size
        mov     %rax, %rdi
        shr     $16, %rdi               # port
        test    $IO_QUAL_IN, %eax
        jnz     .Lve_in
        mov     F_RAX(%rbx), %rdx       # tdx_io_write cuts it to `size`
        call    tdx_io_write
        jmp     __tdx_ve_check
.Lve_in:
        mov     %rsi, %r12              # size, kept across the call
        lea     SCRATCH(%rbx), %rdx
        call    tdx_io_read
        test    %rax, %rax
        jnz     __tdx_ve_failed
        mov     SCRATCH(%rbx), %rax     # already cut to `size`
        cmp     $4, %r12d
        je      .Lve_in32               # a 32-bit register write
        lea     0(, %r12, 8), %ecx
        mov     $1, %rdx
        shl     %cl, %rdx
        dec     %rdx                    # GENMASK(size * 8 - 1, 0)
        not     %rdx
        and     %rdx, F_RAX(%rbx)
        or      %rax, F_RAX(%rbx)
        jmp     __tdx_ve_done
.Lve_in32:
        mov     %eax, %eax              # zero-extends RAX[63:32]
        mov     %rax, F_RAX(%rbx)
        jmp     __tdx_ve_done

.Lve_cpuid:
        mov     F_RAX(%rbx), %edi       # leaf
        mov     F_RCX(%rbx), %esi       # sub-leaf
        movq    $0, SCRATCH(%rbx)
        movq    $0, SCRATCH+8(%rbx)
        mov     %edi, %eax
        sub     $CPUID_HV_FIRST, %eax
        cmp     $0x0FFFFFFF, %eax
        ja      .Lve_cpuid_store        # not the hypervisor range: zeros
        lea     SCRATCH(%rbx), %rdx
        call    tdx_cpuid
        test    %rax, %rax
        jnz     __tdx_ve_failed
.Lve_cpuid_store:
        mov     SCRATCH(%rbx), %eax
        mov     %rax, F_RAX(%rbx)
        mov     SCRATCH+4(%rbx), %eax
        mov     %rax, F_RBX(%rbx)
        mov     SCRATCH+8(%rbx), %eax
        mov     %rax, F_RCX(%rbx)
        mov     SCRATCH+12(%rbx), %eax
        mov     %rax, F_RDX(%rbx)
        jmp     __tdx_ve_done

.Lve_rdmsr:
        mov     F_RCX(%rbx), %edi
        lea     SCRATCH(%rbx), %rsi
        call    tdx_rdmsr
        test    %rax, %rax
        jnz     __tdx_ve_failed
        mov     SCRATCH(%rbx), %rax
        mov     %eax, %edx
        mov     %rdx, F_RAX(%rbx)       # EAX, zero-extended as RDMSR does
        shr     $32, %rax
        mov     %rax, F_RDX(%rbx)
        jmp     __tdx_ve_done

.Lve_wrmsr:
        mov     F_RCX(%rbx), %edi
        mov     F_RDX(%rbx), %rsi
        shl     $32, %rsi
        mov     F_RAX(%rbx), %eax
        or      %rax, %rsi              # EDX:EAX
        call    tdx_wrmsr
        jmp     __tdx_ve_check
        .size   tdx_ve_entry, . - tdx_ve_entry

        .section .rodata
msg_ve_unexpected:      .asciz "tdx_ve: unexpected #VE exit reason"

# No executable stack.
        .section .note.GNU-stack, "", @progbits
