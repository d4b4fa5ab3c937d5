/* quote.c - GetQuote through a shared buffer, woken by the notify interrupt.
 *
 *   tdxsim run --trace examples/quote.c
 *
 * The C twin of the bundled `quote` guest: SetupEventNotifyInterrupt, MapGPA
 * of the buffer to shared, GetQuote (spec 4.5), then halts until the
 * notify interrupt (or a 50 ms timer) and checks the quote's REPORTDATA.
 * Everything the host wrote is copied to private memory before use. */
#include <tdx.h>

#define NOTIFY_VECTOR 0x50
#define TIMER_VECTOR 0xEC
#define TIMEOUT_NS 50000000ull
#define LVT_TSC_DEADLINE (2ull << 17)  /* x2APIC LVT timer mode */
#define QUOTE_REPORTDATA 64            /* tdxsim's simulated quote layout */
#define QUOTE_MAGIC_LEN 48

struct interrupt_frame;

static uint8_t buffer[0x2000] __attribute__((aligned(4096)));
static const char reportdata[64] = "C guest: REPORTDATA bound into the simulated quote";
static volatile int notified;

__attribute__((interrupt)) static void on_notify(struct interrupt_frame *frame)
{
    (void)frame;
    notified = 1;
    tdx_wrmsr(TDX_MSR_X2APIC_EOI, 0);
}

__attribute__((interrupt)) static void on_timer(struct interrupt_frame *frame)
{
    (void)frame;
    tdx_wrmsr(TDX_MSR_X2APIC_EOI, 0);
}

static uint64_t now(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static int fail(const char *what, uint64_t status)
{
    tdx_puts("quote: failed: ");
    tdx_puts(what);
    tdx_puts(", status ");
    tdx_put_hex(status);
    tdx_puts("\n");
    return 1;
}

int main(void)
{
    struct tdx_quote_header *shared = tdx_shared(buffer), header;
    char quote[QUOTE_REPORTDATA + 64];
    uint64_t status, deadline;

    tdx_set_interrupt(NOTIFY_VECTOR, on_notify);
    tdx_set_interrupt(TIMER_VECTOR, on_timer);
    status = tdx_setup_event_notify(NOTIFY_VECTOR);
    if (status)
        return fail("SetupEventNotifyInterrupt", status);
    status = tdx_map_gpa((uint64_t)buffer, (uint64_t)buffer + sizeof buffer, 1);
    if (status)
        return fail("MapGPA", status);

    shared->version = TDX_QUOTE_VERSION;
    shared->status = 0;
    shared->in_len = TDX_TDREPORT_SIZE;
    shared->out_len = 0;
    memset(shared + 1, 0, TDX_TDREPORT_SIZE);
    memcpy((uint8_t *)(shared + 1) + TDX_REPORTDATA_OFFSET, reportdata, sizeof reportdata);
    do
        status = tdx_get_quote((uint64_t)buffer, sizeof buffer);
    while (status == TDVMCALL_STATUS_RETRY);
    if (status)
        return fail("GetQuote", status);

    tdx_wrmsr(TDX_MSR_X2APIC_LVT_TIMER, LVT_TSC_DEADLINE | TIMER_VECTOR);
    deadline = now() + TIMEOUT_NS;
    tdx_wrmsr(TDX_MSR_IA32_TSC_DEADLINE, deadline);
    while (shared->status == TDX_QUOTE_STATUS_IN_FLIGHT) {
        if (now() >= deadline)
            return fail("no quote within 50 ms", TDX_QUOTE_STATUS_IN_FLIGHT);
        tdx_safe_halt();  /* IF = 0 in, IF = 1 out */
        tdx_cli();
    }

    memcpy(&header, shared, sizeof header);
    if (header.status != TDX_QUOTE_STATUS_SUCCESS)
        return fail("the quote service", header.status);
    if (header.out_len < sizeof quote || header.out_len > sizeof buffer - sizeof header)
        return fail("out_len outside the buffer", header.out_len);
    memcpy(quote, shared + 1, sizeof quote);
    quote[QUOTE_MAGIC_LEN - 1] = 0;
    tdx_puts("quote: ");
    tdx_puts(quote);
    tdx_puts(notified ? "\nquote: woken by the notify interrupt\n" : "\nquote: woken by the timer\n");
    if (memcmp(quote + QUOTE_REPORTDATA, reportdata, sizeof reportdata))
        return fail("REPORTDATA mismatch", 0);
    tdx_puts("quote: REPORTDATA matches; done\n");
    return 0;
}
