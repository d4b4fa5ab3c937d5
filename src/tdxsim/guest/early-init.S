# early-init.S - the TDCALLs current Linux makes at boot (tdx_early_init ->
# tdx_setup, spec 13.2; [LX-tdx] arch/x86/coco/tdx/tdx.c), in its order:
#
#   1. TDG.VP.INFO: GPAW (the shared bit) and the TD ATTRIBUTES
#   2. TDG.VM.WR NOTIFY_ENABLES = 0 (mask all ones): no zero-step notify #VEs
#   3. disable_sept_ve(): read CONFIG_FLAGS; without FLEXIBLE_PENDING_VE the
#      SEPT_VE_DISABLE attribute must be set, else a non-debug TD panics with
#      "TD misconfiguration: SEPT_VE_DISABLE attribute must be set."; with it,
#      read TD_CTLS and set PENDING_VE_DISABLE unless already set (or debug)
#   4. reduce_unnecessary_ve(), as spec 13.2 states it: read
#      TOPOLOGY_ENUM_CONFIGURED; if set, write TD_CTLS.REDUCE_VE and, if that
#      fails, ENUM_TOPOLOGY; otherwise log "VMM did not configure X2APIC_IDs
#      properly"
#
# It prints what it configured (TD_CTLS read back, as Linux's boot log does),
# then CPUID 0xB, which the module now answers itself (the library's
# default IDT sends #VE to tdx_ve_entry, which would answer zeros through a
# hypercall instead), and exits with 0.  A TDCALL that must succeed and does
# not is reported as a fatal error, as Linux panics ("Buggy TDX module!").

# TDCALL leaves and TD-scope field IDs as Linux spells them ([LX-sh])
.set TDG_VP_INFO,               1
.set TDG_VM_RD,                 7
.set TDG_VM_WR,                 8
.set TDCS_CONFIG_FLAGS,         0x1110000300000016
.set TDCS_TD_CTLS,              0x1110000300000017
.set TDCS_NOTIFY_ENABLES,       0x9100000000000010
.set TDCS_TOPOLOGY_ENUM_CONFIGURED, 0x9100000000000019
.set CONFIG_FLEXIBLE_PENDING_VE, 1 << 1
.set CTLS_PENDING_VE_DISABLE,   1 << 0
.set CTLS_ENUM_TOPOLOGY,        1 << 1
.set CTLS_REDUCE_VE,            1 << 3
.set ATTR_DEBUG,                1 << 0
.set ATTR_SEPT_VE_DISABLE,      1 << 28

# main's locals, relative to %rbp: a struct tdx_module_output (RCX, RDX, R8,
# R9, R10, R11 at 0..40) and the attributes
.set OUT,       -48
.set OUT_RCX,   OUT + 0
.set OUT_RDX,   OUT + 8
.set OUT_R8,    OUT + 16
.set ATTR,      -56
.set LOCALS,    64

        .text

        .globl  _start
        .type   _start, @function
_start:
        call    tdx_default_idt         # a host may inject NMIs (irq.S)
        call    early_init_main
        mov     %rax, %rdi
        call    tdx_debug_exit
        ud2
        .size   _start, . - _start

# module_call fn, rdx, r8, r9: __tdx_module_call(fn, 0, rdx, r8, r9, &OUT);
# RAX = the module status
.macro MODULE_CALL fn, rdx, r8=$0, r9=$0
        mov     \fn, %edi
        xor     %esi, %esi
        movabs  \rdx, %rdx
        movabs  \r8, %rcx
        movabs  \r9, %r8
        lea     OUT(%rbp), %r9
        call    __tdx_module_call
.endm

# Print a string, then a hex value from memory (tdx_puts clobbers the
# caller-saved registers), then a newline.
.macro SAY msg, value
        lea     \msg(%rip), %rdi
        call    tdx_puts
        mov     \value, %rdi
        call    tdx_put_hex
        lea     msg_newline(%rip), %rdi
        call    tdx_puts
.endm

        .type   early_init_main, @function
early_init_main:
        push    %rbp
        mov     %rsp, %rbp
        sub     $LOCALS, %rsp

        # 1. TDG.VP.INFO
        MODULE_CALL $TDG_VP_INFO, $0
        test    %rax, %rax
        jnz     .Lbuggy_module
        mov     OUT_RDX(%rbp), %rax
        mov     %rax, ATTR(%rbp)
        andq    $0x3F, OUT_RCX(%rbp)            # GPAW in RCX[5:0]
        lea     msg_gpaw(%rip), %rdi
        call    tdx_puts
        mov     OUT_RCX(%rbp), %rdi
        call    tdx_put_dec
        lea     msg_newline(%rip), %rdi
        call    tdx_puts
        SAY     msg_attr, ATTR(%rbp)

        # 2. NOTIFY_ENABLES = 0, mask all ones
        MODULE_CALL $TDG_VM_WR, $TDCS_NOTIFY_ENABLES, $0, $-1
        test    %rax, %rax
        jnz     .Lbuggy_module
        lea     msg_notify(%rip), %rdi
        call    tdx_puts

        # 3. disable_sept_ve()
        MODULE_CALL $TDG_VM_RD, $TDCS_CONFIG_FLAGS
        test    %rax, %rax
        jnz     .Lbuggy_module
        SAY     msg_config, OUT_R8(%rbp)
        testq   $CONFIG_FLEXIBLE_PENDING_VE, OUT_R8(%rbp)
        jnz     .Lflexible
        testl   $ATTR_SEPT_VE_DISABLE, ATTR(%rbp)
        jnz     .Lsept_done                     # the attribute already disables it
        testq   $ATTR_DEBUG, ATTR(%rbp)
        jz      .Lmisconfigured
        lea     msg_misconfigured_nl(%rip), %rdi  # a debug TD only warns
        call    tdx_puts
        jmp     .Lsept_done
.Lflexible:
        MODULE_CALL $TDG_VM_RD, $TDCS_TD_CTLS
        test    %rax, %rax
        jnz     .Lbuggy_module
        testq   $CTLS_PENDING_VE_DISABLE, OUT_R8(%rbp)
        jnz     .Lsept_done                     # disabled before us
        testq   $ATTR_DEBUG, ATTR(%rbp)
        jnz     .Lsept_done                     # debug TDs keep SEPT #VEs
        MODULE_CALL $TDG_VM_WR, $TDCS_TD_CTLS, $CTLS_PENDING_VE_DISABLE, $CTLS_PENDING_VE_DISABLE
        test    %rax, %rax
        jnz     .Lbuggy_module
        lea     msg_pending_ve(%rip), %rdi
        call    tdx_puts
.Lsept_done:

        # 4. reduce_unnecessary_ve()
        MODULE_CALL $TDG_VM_RD, $TDCS_TOPOLOGY_ENUM_CONFIGURED
        test    %rax, %rax
        jnz     .Lbuggy_module
        cmpq    $0, OUT_R8(%rbp)
        jne     .Ltopology
        lea     msg_no_x2apic(%rip), %rdi
        call    tdx_puts
        jmp     .Lreport
.Ltopology:
        MODULE_CALL $TDG_VM_WR, $TDCS_TD_CTLS, $CTLS_REDUCE_VE, $CTLS_REDUCE_VE
        test    %rax, %rax
        jz      .Lreport
        MODULE_CALL $TDG_VM_WR, $TDCS_TD_CTLS, $CTLS_ENUM_TOPOLOGY, $CTLS_ENUM_TOPOLOGY

.Lreport:
        MODULE_CALL $TDG_VM_RD, $TDCS_TD_CTLS
        test    %rax, %rax
        jnz     .Lbuggy_module
        SAY     msg_td_ctls, OUT_R8(%rbp)

        # The effect: CPUID(0xB, 0) without a #VE when ENUM_TOPOLOGY is on.
        testq   $CTLS_ENUM_TOPOLOGY, OUT_R8(%rbp)
        jz      .Ldone
        push    %rbx
        push    %rbx
        mov     $0xB, %eax
        xor     %ecx, %ecx
        cpuid
        pop     %rbx
        pop     %rbx
        mov     %edx, %edx
        mov     %rdx, OUT_RDX(%rbp)
        SAY     msg_x2apic, OUT_RDX(%rbp)
.Ldone:
        xor     %eax, %eax
        leave
        ret

.Lmisconfigured:
        lea     msg_misconfigured_nl(%rip), %rdi
        call    tdx_puts
        lea     msg_misconfigured(%rip), %rdi
        call    tdx_report_fatal_error          # never returns
.Lbuggy_module:
        mov     %rax, OUT_RCX(%rbp)
        SAY     msg_tdcall_failed, OUT_RCX(%rbp)
        lea     msg_buggy(%rip), %rdi
        call    tdx_report_fatal_error          # never returns
        ud2
        .size   early_init_main, . - early_init_main

        .section .rodata
msg_gpaw:       .asciz "tdx: Guest detected, GPAW "
msg_attr:       .asciz "tdx: Attributes: "
msg_notify:     .asciz "tdx: NOTIFY_ENABLES cleared\n"
msg_config:     .asciz "tdx: CONFIG_FLAGS: "
msg_pending_ve: .asciz "tdx: TD_CTLS.PENDING_VE_DISABLE set: SEPT #VEs disabled\n"
msg_no_x2apic:  .asciz "tdx: VMM did not configure X2APIC_IDs properly\n"
msg_td_ctls:    .asciz "tdx: TD_CTLS: "
msg_x2apic:     .asciz "tdx: CPUID(0xB) answered by the TDX module, x2APIC ID "
msg_tdcall_failed: .asciz "tdx: TDCALL failed, status "
msg_misconfigured: .asciz "TD misconfiguration: SEPT_VE_DISABLE attribute must be set."
msg_misconfigured_nl: .asciz "TD misconfiguration: SEPT_VE_DISABLE attribute must be set.\n"
msg_buggy:      .asciz "TDCALL failed (Buggy TDX module!)"
msg_newline:    .asciz "\n"

        .section .note.GNU-stack, "", @progbits
