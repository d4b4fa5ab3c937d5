# mp.S - tdxsim guest library: several vCPUs.
#
# GNU as, AT&T syntax, x86-64, 64-bit mode, CPL0, no C preprocessor.
#
# Every vCPU of a TD starts at the image's entry point with its vCPU index
# (= its x2APIC ID) in RSI, as TDVF reads it (spec 14); vCPU 0 is the
# bootstrap processor (BSP).  An application processor (AP) parks in
# tdx_mp_ap_wait until the BSP wakes it through the ACPI multiprocessor
# wakeup mailbox (ACPI 6.4, 5.2.12.19): one 4 KiB page holding
#     +0  u16 command (0 noop, 1 wakeup)   +4  u32 APIC ID
#     +8  u64 wakeup vector                +16 OS-defined (here: the AP's stack)
# The BSP fills APIC ID, vector and stack, then sets command = 1; the AP
# with that APIC ID reads them, clears command (its acknowledgement) and
# jumps to the vector with RDI = its index and RSP = the stack.
#
# Where the mailbox is: a firmware publishes it in the MADT's
# multiprocessor-wakeup structure; tdxsim, which has no ACPI tables, keeps
# it at the fixed private GPA TDX_MP_MAILBOX (layout.py MP_MAILBOX, in the
# pages every TD reserves), reached through tdxsim's default page tables at
# the same linear address.

.set TDX_MP_MAILBOX,            0x5000
.set MB_COMMAND,                0
.set MB_APIC_ID,                4
.set MB_VECTOR,                 8
.set MB_STACK,                  16
.set MB_NOOP,                   0
.set MB_WAKEUP,                 1
.set MSR_X2APIC_ICR,            0x830

.macro FUNC name
        .globl  \name
        .type   \name, @function
        .p2align 4
\name:
.endm

.macro ENDFUNC name
        .size   \name, . - \name
.endm

        .text

# ---------------------------------------------------------------------------
# void tdx_mp_wake(u64 apic_id, void *vector, void *stack)
#
# BSP side of the mailbox: waits until the mailbox is free, posts a wakeup
# for `apic_id`, and returns once that AP has acknowledged it (cleared the
# command), so the mailbox can serve the next AP.
# ---------------------------------------------------------------------------
FUNC tdx_mp_wake
        mov     $TDX_MP_MAILBOX, %eax
1:      cmpw    $MB_NOOP, MB_COMMAND(%rax)      # an earlier wakeup still unread
        je      2f
        pause
        jmp     1b
2:      mov     %edi, MB_APIC_ID(%rax)
        mov     %rsi, MB_VECTOR(%rax)
        mov     %rdx, MB_STACK(%rax)
        movw    $MB_WAKEUP, MB_COMMAND(%rax)    # last: x86 stores stay in order
3:      cmpw    $MB_NOOP, MB_COMMAND(%rax)
        je      4f
        pause
        jmp     3b
4:      ret
ENDFUNC tdx_mp_wake

# ---------------------------------------------------------------------------
# void tdx_mp_ap_wait(u64 index)      does not return; needs no stack
#
# AP side of the mailbox: spins until a wakeup names this AP, then jumps to
# its vector with RDI = index and RSP = the stack the BSP gave.
# ---------------------------------------------------------------------------
FUNC tdx_mp_ap_wait
        mov     $TDX_MP_MAILBOX, %eax
1:      pause
        cmpw    $MB_WAKEUP, MB_COMMAND(%rax)
        jne     1b
        cmp     MB_APIC_ID(%rax), %edi
        jne     1b
        mov     MB_VECTOR(%rax), %rcx
        mov     MB_STACK(%rax), %rsp
        movw    $MB_NOOP, MB_COMMAND(%rax)      # acknowledged: the BSP may go on
        xor     %ebp, %ebp                      # a new frame-pointer chain
        jmp     *%rcx
ENDFUNC tdx_mp_ap_wait

# ---------------------------------------------------------------------------
# u64 tdx_send_ipi(u64 apic_id, u64 vector)
#
# A fixed IPI through the x2APIC ICR (MSR 0x830: destination in bits 63:32,
# vector in 7:0), written with a TDVMCALL<Instruction.WRMSR> (a plain WRMSR
# of the ICR raises #VE in a TD, which tdx_ve_entry turns into the same
# call).  Returns the GHCI status.
# ---------------------------------------------------------------------------
FUNC tdx_send_ipi
        shl     $32, %rdi
        movzbl  %sil, %esi
        or      %rdi, %rsi
        mov     $MSR_X2APIC_ICR, %edi
        jmp     tdx_wrmsr
ENDFUNC tdx_send_ipi

# ---------------------------------------------------------------------------
# void tdx_spin_lock(u64 *lock)
#
# A test-and-set lock shared by the vCPUs (0 = free).
# ---------------------------------------------------------------------------
FUNC tdx_spin_lock
1:      mov     $1, %eax
        xchg    %rax, (%rdi)                    # locked by definition
        test    %rax, %rax
        jz      2f
        pause
        jmp     1b
2:      ret
ENDFUNC tdx_spin_lock

# ---------------------------------------------------------------------------
# void tdx_spin_unlock(u64 *lock)
# ---------------------------------------------------------------------------
FUNC tdx_spin_unlock
        movq    $0, (%rdi)
        ret
ENDFUNC tdx_spin_unlock
