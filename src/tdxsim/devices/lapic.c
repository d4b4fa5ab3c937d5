/*
 * The local APIC's registers in C: the same rules as devices/lapic.py
 * (ApicTimer, LocalApic.eoi), on the one native state both use.  The timer
 * stores no count: one-shot and periodic counts are derived from the time
 * of the next expiry, as in Python.  Times are u64 nanoseconds of the TD's
 * clock; the initial count is 32 bits (the MSR store refuses bits 63:32),
 * so now + count * tick fits.
 */
#include "../native.h"

static unsigned mode(const struct tdxsim_lapic *a)
{
    return a->lvt >> LVT_MODE_SHIFT & 3;
}

/* ApicTimer.tick_ns: bits 3, 1, 0 of the divide configuration. */
static uint64_t tick_ns(const struct tdxsim_lapic *a)
{
    uint64_t code = (a->divide & 3) | (a->divide >> 1 & 4);

    return APIC_BUS_CYCLE_NS * (code == 7 ? 1 : 2ull << code);
}

static uint64_t period_ns(const struct tdxsim_lapic *a)
{
    return a->initial * tick_ns(a);
}

static void stop_count(struct tdxsim_lapic *a)
{
    a->counting = 0;
    a->expiry = 0;
}

/* ApicTimer._skip_to: past the expiries due by now. */
static void skip_to(struct tdxsim_lapic *a, uint64_t now)
{
    uint64_t period;

    if (!a->counting || a->expiry > now)
        return;
    if (mode(a) != LVT_MODE_PERIODIC) {
        stop_count(a);
        return;
    }
    period = period_ns(a);
    a->expiry += (now - a->expiry) / period * period + period;
}

/* ApicTimer.current_count (Python's floor division and modulo). */
static uint64_t current_count(const struct tdxsim_lapic *a, uint64_t now)
{
    __int128 left, period, tick = tick_ns(a);

    if (!a->counting || mode(a) == LVT_MODE_TSC_DEADLINE)
        return 0;
    left = (__int128)a->expiry - now;
    if (mode(a) == LVT_MODE_PERIODIC) {
        period = period_ns(a);
        left %= period;
        if (left < 0)
            left += period;
        if (!left)
            left = period;
    }
    return left > 0 ? (uint64_t)((left + tick - 1) / tick) : 0;
}

static void write_lvt(struct tdxsim_lapic *a, uint64_t value, uint64_t now)
{
    bool old_deadline_mode = mode(a) == LVT_MODE_TSC_DEADLINE;
    bool unmasking = (a->lvt & LVT_MASKED) && !(value & LVT_MASKED);

    a->lvt = value & LVT_TIMER_WRITABLE;
    if (old_deadline_mode != (mode(a) == LVT_MODE_TSC_DEADLINE)) {
        a->initial = 0;
        a->tsc_deadline = 0;
        stop_count(a);
    } else if (unmasking) {
        skip_to(a, now);
    }
}

static void write_initial(struct tdxsim_lapic *a, uint64_t value, uint64_t now)
{
    if (mode(a) == LVT_MODE_TSC_DEADLINE)
        return;
    a->initial = value;
    if (!value) {
        stop_count(a);
        return;
    }
    a->counting = 1;
    a->expiry = now + period_ns(a);
}

static void write_divide(struct tdxsim_lapic *a, uint64_t value, uint64_t now)
{
    uint64_t left = current_count(a, now);

    a->divide = value & DIVIDE_CONFIG_WRITABLE;
    if (a->counting && left)
        a->expiry = now + left * tick_ns(a);
}

static int highest(const uint64_t words[4]);

/* LocalApic.eoi: the highest in-service vector is done. */
static void eoi(struct tdxsim_lapic *a)
{
    int vector = highest(a->isr);

    if (vector >= 0)
        a->isr[vector >> 6] &= ~(1ull << (vector & 63));
}

bool tdxsim_apic_read(const struct tdxsim_lapic *a, uint64_t index, uint64_t *value)
{
    switch (index) {
    case MSR_X2APIC_LVT_TIMER:
        *value = a->lvt;
        return true;
    case MSR_X2APIC_TIMER_INITIAL_COUNT:
        *value = a->initial;
        return true;
    case MSR_X2APIC_TIMER_CURRENT_COUNT:
        *value = current_count(a, tdxsim_now_ns(a->clock));
        return true;
    case MSR_X2APIC_TIMER_DIVIDE_CONFIG:
        *value = a->divide;
        return true;
    case MSR_IA32_TSC_DEADLINE:
        *value = mode(a) == LVT_MODE_TSC_DEADLINE ? a->tsc_deadline : 0;
        return true;
    case MSR_X2APIC_EOI:
        *value = 0;
        return true;
    default:
        return false;
    }
}

bool tdxsim_apic_write(struct tdxsim_lapic *a, uint64_t index, uint64_t value)
{
    uint64_t now = tdxsim_now_ns(a->clock);

    switch (index) {
    case MSR_X2APIC_LVT_TIMER:
        write_lvt(a, value, now);
        return true;
    case MSR_X2APIC_TIMER_INITIAL_COUNT:
        write_initial(a, value, now);
        return true;
    case MSR_X2APIC_TIMER_DIVIDE_CONFIG:
        write_divide(a, value, now);
        return true;
    case MSR_IA32_TSC_DEADLINE:
        if (mode(a) == LVT_MODE_TSC_DEADLINE)
            a->tsc_deadline = value;
        return true;
    case MSR_X2APIC_EOI:
        eoi(a);
        return true;
    default:
        return false;
    }
}

static int highest(const uint64_t words[4])
{
    for (int i = 3; i >= 0; i--)
        if (words[i])
            return i << 6 | (63 - __builtin_clzll(words[i]));
    return -1;
}

int tdxsim_apic_deliverable(const struct tdxsim_lapic *a)
{
    int vector = highest(a->irr), in_service = highest(a->isr);

    if (vector < 0 || (in_service >= 0 && vector >> 4 <= in_service >> 4))
        return -1;
    return vector;
}

/* ApicTimer.next_expiry: none for a masked periodic timer. */
static uint64_t next_expiry(const struct tdxsim_lapic *a)
{
    if (mode(a) == LVT_MODE_TSC_DEADLINE)
        return a->tsc_deadline ? a->tsc_deadline : NO_DEADLINE;
    if (mode(a) == LVT_MODE_PERIODIC && (a->lvt & LVT_MASKED))
        return NO_DEADLINE;
    return a->counting ? a->expiry : NO_DEADLINE;
}

uint64_t tdxsim_apic_next_deadline(const struct tdxsim_lapic *a)
{
    uint64_t timer = next_expiry(a), event = a->clock->next_event_ns;

    return timer < event ? timer : event;
}

/* Execution.run's questions before a slice in one call, for an APIC with
 * nothing to say: no NMI pending, no vector deliverable, no deadline due.
 * Then the slice's end (Execution._slice_limit): the budget's end, or the
 * instruction at which the next deadline falls.  0: something is pending
 * or due (or C cannot tell time here): the run loop asks in full. */
EXPORT uint64_t tdxsim_apic_quiet_limit(const struct tdxsim_lapic *a, const uint64_t *budget_end)
{
    const struct tdxsim_clock *clock = a->clock;
    uint64_t due, now, count, insns;

    if (!clock || !clock->counter || a->nmi_pending || tdxsim_apic_deliverable(a) >= 0)
        return 0;
    due = tdxsim_apic_next_deadline(a); /* NO_DEADLINE: none, or at the end of time */
    now = tdxsim_now_ns(clock);
    if (due <= now)
        return 0;
    count = clock->counter->count;
    insns = (due - now - 1) / clock->ns_per_insn + 1; /* Clock.insns_until */
    if (count >= *budget_end || insns >= *budget_end - count)
        return *budget_end;
    return due == NO_DEADLINE ? 0 : count + insns; /* (Python tells the two NO_DEADLINEs apart) */
}
