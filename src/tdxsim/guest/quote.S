# quote.S - tdxsim bundled guest: an attestation quote through shared memory.
#
#   1. registers an event-notify vector      (SetupEventNotifyInterrupt)
#   2. converts an 8 KiB buffer to shared    (MapGPA, tdx_map_gpa's retry loop)
#   3. writes the GetQuote header and a TDREPORT-shaped request through the
#      shared window (linear SHARED_WINDOW + GPA, tdxsim's default page tables)
#   4. asks for a quote                      (GetQuote; SUCCESS = queued)
#   5. halts until the notify interrupt or a 50 ms timeout timer, polling
#      the header's status, then prints the header and checks the quote
#
# Everything the host wrote is untrusted: the header is copied into private
# memory before use, out_len is bounded by the buffer, and the quote's
# REPORTDATA must match the request.  Any failure prints the reason and the
# status, then reports a fatal error.
#
# A real guest gets its TDREPORT from TDG.MR.REPORT; this one builds a
# TDREPORT-shaped request itself (REPORTDATA at offset 128, spec 1.3).

.set SHARED_WINDOW,     0xFFFF800000000000
.set BUF_SIZE,          0x2000
.set HDR_VERSION,       0               # GetQuote header (spec 4.5)
.set HDR_STATUS,        8
.set HDR_IN_LEN,        16
.set HDR_OUT_LEN,       20
.set HDR_SIZE,          24
.set STATUS_IN_FLIGHT,  -1
.set TDREPORT_SIZE,     1024
.set REPORTDATA,        128             # within the TDREPORT
.set QUOTE_MAGIC_LEN,   48              # tdxsim's simulated quote layout
.set QUOTE_REPORTDATA,  64
.set QUOTE_MIN_LEN,     QUOTE_REPORTDATA + 64
.set RETRY,             1
.set GET_QUOTE_TRIES,   5
.set NOTIFY_VECTOR,     0x50
.set TIMER_VECTOR,      0xEC
.set TIMEOUT_NS,        50000000
.set MSR_TSC_DEADLINE,  0x6E0
.set MSR_LVT_TIMER,     0x832
.set MSR_EOI,           0x80B
.set LVT_TSC_DEADLINE,  2 << 17

        .text
        .globl  _start
_start:
        lea     idt(%rip), %rdi         # NMIs and unexpected vectors (irq.S)
        call    tdx_default_gates
        lea     idt(%rip), %rdi
        mov     $NOTIFY_VECTOR, %esi
        lea     irq_eoi(%rip), %rdx
        call    tdx_set_gate
        lea     idt(%rip), %rdi
        mov     $TIMER_VECTOR, %esi
        lea     irq_eoi(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)

        lea     msg_hello(%rip), %rdi
        call    tdx_puts

        # 1. Event notification is optional: without it the timer wakes us.
        mov     $NOTIFY_VECTOR, %edi
        call    tdx_setup_event_notify
        test    %rax, %rax
        jz      2f
        mov     %rax, %rbx
        lea     msg_no_notify(%rip), %rdi
        call    tdx_puts
        mov     %rbx, %rdi
        call    tdx_put_hex
        lea     msg_no_notify_end(%rip), %rdi
        call    tdx_puts

        # 2. The buffer becomes shared; its old contents are gone.
2:      lea     buffer(%rip), %rdi
        lea     BUF_SIZE(%rdi), %rsi
        mov     $1, %edx
        call    tdx_map_gpa
        lea     msg_map_failed(%rip), %rdi
        test    %rax, %rax
        jnz     fail

        # 3. Header and request, written through the shared alias.
        call    shared_buffer
        mov     %rax, %rdi
        movq    $1, HDR_VERSION(%rdi)
        movq    $0, HDR_STATUS(%rdi)
        movl    $TDREPORT_SIZE, HDR_IN_LEN(%rdi)
        movl    $0, HDR_OUT_LEN(%rdi)
        lea     HDR_SIZE(%rdi), %rdi
        xor     %eax, %eax
        mov     $TDREPORT_SIZE, %ecx
        rep stosb
        call    shared_buffer
        lea     HDR_SIZE+REPORTDATA(%rax), %rdi
        lea     reportdata(%rip), %rsi
        mov     $64, %ecx
        rep movsb

        # 4. Ask, retrying a busy service a few times.
        mov     $GET_QUOTE_TRIES, %ebx
3:      lea     buffer(%rip), %rdi
        mov     $BUF_SIZE, %esi
        call    tdx_get_quote
        cmp     $RETRY, %rax
        jne     4f
        dec     %ebx
        jnz     3b
4:      lea     msg_quote_failed(%rip), %rdi
        test    %rax, %rax
        jnz     fail

        # 5. Wait: halt until an interrupt, with a timeout timer armed.
        mov     $MSR_LVT_TIMER, %edi
        mov     $(LVT_TSC_DEADLINE | TIMER_VECTOR), %esi
        call    tdx_wrmsr
        lea     msg_timer_failed(%rip), %rdi
        test    %rax, %rax
        jnz     fail
        call    now
        lea     TIMEOUT_NS(%rax), %rsi
        mov     %rsi, deadline(%rip)
        mov     $MSR_TSC_DEADLINE, %edi
        call    tdx_wrmsr
        lea     msg_timer_failed(%rip), %rdi
        test    %rax, %rax
        jnz     fail
5:      call    shared_buffer
        mov     HDR_STATUS(%rax), %rax
        cmp     $STATUS_IN_FLIGHT, %rax
        jne     6f
        call    now
        cmp     deadline(%rip), %rax
        jb      7f
        mov     $STATUS_IN_FLIGHT, %rax
        lea     msg_timeout(%rip), %rdi
        jmp     fail
7:      call    tdx_safe_halt                   # IF = 0 in, IF = 1 out
        cli
        jmp     5b

        # Done: copy the header out of shared memory, then use the copy.
6:      call    shared_buffer
        mov     %rax, %rsi
        lea     header(%rip), %rdi
        mov     $HDR_SIZE, %ecx
        rep movsb
        call    print_header
        mov     header+HDR_STATUS(%rip), %rax
        lea     msg_status_error(%rip), %rdi
        test    %rax, %rax
        jnz     fail
        mov     header+HDR_OUT_LEN(%rip), %eax
        lea     msg_bad_length(%rip), %rdi
        cmp     $QUOTE_MIN_LEN, %rax
        jb      fail
        cmp     $(BUF_SIZE - HDR_SIZE), %rax
        ja      fail

        # The quote's magic and REPORTDATA, copied out as well.
        call    shared_buffer
        lea     HDR_SIZE(%rax), %rsi
        lea     quote(%rip), %rdi
        mov     $QUOTE_MIN_LEN, %ecx
        rep movsb
        movb    $0, quote+QUOTE_MAGIC_LEN-1(%rip)
        lea     msg_magic(%rip), %rdi
        call    tdx_puts
        lea     quote(%rip), %rdi
        call    tdx_puts
        lea     msg_newline(%rip), %rdi
        call    tdx_puts
        lea     quote+QUOTE_REPORTDATA(%rip), %rsi
        lea     reportdata(%rip), %rdi
        mov     $64, %ecx
        repe cmpsb
        lea     msg_mismatch(%rip), %rdi
        mov     header+HDR_STATUS(%rip), %rax
        jne     fail
        lea     msg_done(%rip), %rdi
        call    tdx_puts
        xor     %edi, %edi
        call    tdx_debug_exit

# fail(msg in RDI, status in RAX): print both, then ReportFatalError.
fail:
        mov     %rdi, %rbx
        mov     %rax, %r12
        lea     msg_failed(%rip), %rdi
        call    tdx_puts
        mov     %rbx, %rdi
        call    tdx_puts
        lea     msg_status(%rip), %rdi
        call    tdx_puts
        mov     %r12, %rdi
        call    tdx_put_hex
        lea     msg_newline(%rip), %rdi
        call    tdx_puts
        mov     %rbx, %rdi
        call    tdx_report_fatal_error

# u64 shared_buffer(void): the linear address of the buffer's shared alias.
shared_buffer:
        lea     buffer(%rip), %rax
        mov     $SHARED_WINDOW, %rcx
        add     %rcx, %rax
        ret

# u64 now(void): the TSC (virtual nanoseconds).
now:
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
        ret

# print_header(): the private copy of the GetQuote header.
print_header:
        push    %rbp
        mov     %rsp, %rbp
        lea     msg_version(%rip), %rdi
        call    tdx_puts
        mov     header+HDR_VERSION(%rip), %rdi
        call    tdx_put_dec
        lea     msg_hstatus(%rip), %rdi
        call    tdx_puts
        mov     header+HDR_STATUS(%rip), %rdi
        call    tdx_put_hex
        lea     msg_in_len(%rip), %rdi
        call    tdx_puts
        mov     header+HDR_IN_LEN(%rip), %edi
        call    tdx_put_dec
        lea     msg_out_len(%rip), %rdi
        call    tdx_puts
        mov     header+HDR_OUT_LEN(%rip), %edi
        call    tdx_put_dec
        lea     msg_newline(%rip), %rdi
        call    tdx_puts
        pop     %rbp
        ret

# Both vectors only wake the vCPU: acknowledge and return.
irq_eoi:
        push    %rax
        push    %rcx
        push    %rdx
        push    %rsi
        push    %rdi
        push    %r8
        push    %r9
        push    %r10
        push    %r11
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
        iretq

        .section .rodata
msg_hello:        .asciz "quote: converting a buffer to shared and asking for a quote\n"
msg_no_notify:    .asciz "quote: no event-notify interrupt (status "
msg_no_notify_end: .asciz "); the timeout timer will wake us\n"
msg_version:      .asciz "quote header: version "
msg_hstatus:      .asciz ", status "
msg_in_len:       .asciz ", in_len "
msg_out_len:      .asciz ", out_len "
msg_magic:        .asciz "quote: "
msg_done:         .asciz "quote: REPORTDATA matches; done\n"
msg_failed:       .asciz "quote: failed: "
msg_status:       .asciz ", status "
msg_newline:      .asciz "\n"
msg_map_failed:   .asciz "MapGPA to shared failed"
msg_quote_failed: .asciz "GetQuote was not queued"
msg_timer_failed: .asciz "cannot arm the timeout timer"
msg_timeout:      .asciz "no quote within 50 ms"
msg_status_error: .asciz "the quote service reported an error"
msg_bad_length:   .asciz "out_len is outside the buffer"
msg_mismatch:     .asciz "the quote does not carry our REPORTDATA"
reportdata:       .ascii "tdxsim quote guest: REPORTDATA bound into the simulated quote..."
idt_ptr:          .word 256 * 16 - 1
                  .quad idt

        .data
        .balign 16
idt:    .fill 256 * 16, 1, 0
deadline: .quad 0
header: .fill HDR_SIZE, 1, 0
quote:  .fill QUOTE_MIN_LEN, 1, 0

        .bss
        .balign 4096
buffer: .skip BUF_SIZE

        .section .note.GNU-stack, "", @progbits
