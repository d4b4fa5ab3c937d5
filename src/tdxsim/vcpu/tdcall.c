/*
 * The compiled TDCALL hook (UC_HOOK_INSN_INVALID; vcpu/cpu.py installs it).
 *
 * TDCALL is an invalid instruction to Unicorn.  This hook recognises it,
 * reads the register file once and lets the module's compiled
 * TDG.VP.VMCALL path (module/vmcall.c) or TDG.VP.VEINFO.GET (veinfo.c)
 * complete it.  Everything else, and
 * every call that path declines, goes to Python's full TDCALL path, which
 * stays the reference: the compiled path only serves calls it can finish
 * exactly as Python would, and decides that before changing any state.
 *
 * An observer (the checker) gets the registers before and after each
 * TDCALL, whichever path serves it, and the stack window at the TDCALL.
 */
#include <string.h>

#include "../native.h"

#define ALL_GPRS 0xFFFFu

/* Unicorn's ids of the GPRs in mask, and where each one's value is: how
 * many.  Unicorn reads and writes each register through a switch, so the
 * compiled path moves only the registers the module looks at or wrote. */
static int batch(const struct tdxsim_vcpu *v, uint64_t gprs[16], uint64_t mask, int ids[16],
                 void *vals[16])
{
    int n = 0;

    for (int i = 0; i < 16; i++) {
        if (mask >> i & 1) {
            ids[n] = v->uc.gpr_ids[i];
            vals[n++] = &gprs[i];
        }
    }
    return n;
}

static void write_gprs(struct tdxsim_vcpu *v, void *uc, uint64_t gprs[16], uint64_t mask)
{
    int ids[16];
    void *vals[16];

    v->uc.reg_write_batch(uc, ids, vals, batch(v, gprs, mask, ids, vals));
}

static void read_gprs(struct tdxsim_vcpu *v, void *uc, uint64_t gprs[16], uint64_t mask)
{
    int ids[16];
    void *vals[16];

    v->uc.reg_read_batch(uc, ids, vals, batch(v, gprs, mask, ids, vals));
}

/* The observer's record for this TDCALL, its "before" half filled in; NULL
 * when nobody observes, or the records are full (Python reports that). */
static struct tdxsim_tdcall_seen *observe(struct tdxsim_vcpu *v, void *uc, uint64_t rip,
                                          const uint64_t gprs[16])
{
    struct tdxsim_observer *o = v->observer;
    struct tdxsim_module *m = v->module;
    struct tdxsim_tdcall_seen *seen;

    if (!o)
        return NULL;
    if (o->count == o->capacity) {
        o->overflow = 1;
        v->uc.emu_stop(uc); /* the observer's TDCALL budget per run: the run ends */
        return NULL;
    }
    seen = &o->seen[o->count++];
    seen->rip = rip;
    v->uc.reg_read(uc, v->uc.rflags_id, &seen->rflags);
    seen->count = m->clock->counter->count;
    seen->time_ns = tdxsim_now_ns(m->clock);
    memcpy(seen->before, gprs, sizeof(seen->before));
    if (v->uc.mem_read(uc, o->stack_base, seen->stack, o->stack_len) != 0)
        memset(seen->stack, 0, sizeof(seen->stack));
    return seen;
}

/* Execution.end_slice_if_due after a TDCALL served here: a timer armed, or
 * the exit's cost, brought the APIC's next deadline before the running
 * slice's end (the counter's limit), so the slice ends after the TDCALL and
 * the next one stops at the deadline's instruction boundary. */
static bool due_in_slice(const struct tdxsim_vcpu *v)
{
    const struct tdxsim_clock *clock = v->module->clock;
    const struct tdxsim_counter *counter = clock->counter;
    uint64_t due, now, insns;

    if (!v->apic || (due = tdxsim_apic_next_deadline(v->apic)) == NO_DEADLINE)
        return false;
    now = tdxsim_now_ns(clock);
    insns = due > now ? (due - now - 1) / clock->ns_per_insn + 1 : 1; /* Clock.insns_until */
    return counter->limit > counter->count && insns < counter->limit - counter->count;
}

/* A vector the running slice does not stop for is deliverable after a
 * TDCALL served here (an EOI ended a higher vector's service, a HLT found
 * one pending): IF = 1, or IF = 0 while the slice does not watch for IF to
 * become 1 (Execution.end_slice_if_due).  The run loop then delivers it,
 * or plans a slice that watches. */
static bool vector_unwatched(const struct tdxsim_vcpu *v, void *uc)
{
    uint64_t rflags;

    if (!v->apic || tdxsim_apic_deliverable(v->apic) < 0)
        return false;
    if (!v->if_watch || !v->if_watch->armed)
        return true;
    v->uc.reg_read(uc, v->uc.rflags_id, &rflags);
    return (rflags & RFLAGS_IF) != 0;
}

/* Must the slice end after this TDCALL served here?  As the run loop would
 * after the Python path: at a deadline before the slice's end, at a vector
 * it does not stop for, and after a HLT that ended at once (which the
 * Python path takes to the run loop) also at a deadline due now. */
static bool ends_slice(const struct tdxsim_vcpu *v, void *uc, unsigned outcome)
{
    return due_in_slice(v) || vector_unwatched(v, uc)
        || ((outcome & VMCALL_WOKE)
            && (!v->apic || tdxsim_apic_next_deadline(v->apic) <= tdxsim_now_ns(v->module->clock)));
}

/* The module's compiled leaves: RAX is exactly leaf 0 version 0, or leaf 3
 * version 0 or 1 (RAX >> 16 takes the reserved bits in too); any other
 * leaf, version or reserved bit is Python's. */
static unsigned leaf(struct tdxsim_module *m, uint64_t gprs[16], uint64_t rip,
                     uint64_t *written)
{
    uint64_t rax = gprs[REG_RAX];

    if (rax == LEAF_VP_VMCALL)
        return tdxsim_vmcall(m, gprs, rip, written);
    if ((uint16_t)rax == LEAF_VP_VEINFO_GET && rax >> RAX_VERSION_SHIFT <= VEINFO_MAX_VERSION
        && tdxsim_veinfo(m, gprs, written))
        return VMCALL_HANDLED;
    return 0;
}

/* Complete the TDCALL in C if the module's compiled path takes it. */
static bool serve(struct tdxsim_vcpu *v, void *uc, uint64_t rip, uint64_t gprs[16])
{
    uint64_t written;
    unsigned outcome;

    if (!v->module || !(outcome = leaf(v->module, gprs, rip, &written)))
        return false;
    write_gprs(v, uc, gprs, written);
    rip += TDCALL_LEN;
    v->uc.reg_write(uc, v->uc.rip_id, &rip);
    if (outcome & VMCALL_STOP_TDCALL)
        v->stop_tdcall = 1;
    else if (ends_slice(v, uc, outcome))
        v->end_slice = 1;
    if ((outcome & (VMCALL_STOP | VMCALL_STOP_TDCALL)) || v->end_slice)
        v->uc.emu_stop(uc);
    return true;
}

EXPORT bool tdxsim_tdcall(void *uc, void *user)
{
    struct tdxsim_vcpu *v = user;
    static const uint8_t tdcall[4] = TDCALL_BYTES;
    struct tdxsim_tdcall_seen *seen;
    uint64_t rip, gprs[16];
    uint8_t code[4];
    bool go_on;

    v->uc.reg_read(uc, v->uc.rip_id, &rip);
    if (!tdxsim_code_at(v, uc, rip, code, 4) || memcmp(code, tdcall, 4) != 0)
        return v->fallback(uc, user);
    /* RAX and RCX, then the GPRs RCX selects: TDG.VP.VMCALL shows the
     * host nothing else (an observer sees them all). */
    memset(gprs, 0, sizeof(gprs));
    read_gprs(v, uc, gprs, v->observer ? ALL_GPRS : 1u << REG_RAX | 1u << REG_RCX);
    if (!v->observer)
        read_gprs(v, uc, gprs, gprs[REG_RCX] & GPR_SELECT_MASK & ~(1u << REG_RAX | 1u << REG_RCX));
    seen = observe(v, uc, rip, gprs);
    go_on = serve(v, uc, rip, gprs) || v->fallback(uc, user);
    if (seen)
        read_gprs(v, uc, seen->after, ALL_GPRS);
    return go_on;
}
