/*
 * TDG.VP.VMCALL in C: the same rules as module/vmcall.py (spec 3.2-3.4),
 * for the calls that need nothing but registers.
 *
 * The module checks RCX, shows the host only the selected GPRs (RAX = exit
 * reason, RCX = the exit qualification, every other unselected GPR 0),
 * takes back only the selected ones and completes with RAX = SUCCESS.  A
 * call this path does not take (an invalid control word, which Python
 * answers with a status; XMMs; a hypercall the host does not serve here; a
 * full exit log) is declined before anything changes.
 */
#include <string.h>

#include "../native.h"

/* module/vmcall.py control_error, the rule's one statement; exported so
 * that a test holds the two to the same answer for every select. */
EXPORT bool tdxsim_invalid_control(uint64_t rcx, bool no_rbp_mod)
{
    uint64_t select = rcx & GPR_SELECT_MASK;

    return (rcx & RCX_RESERVED_MASK) || (select & NEVER_SELECTABLE) ||
           (no_rbp_mod && (select & RBP_SELECT));
}

static void record(struct tdxsim_module *m, uint64_t time_ns, uint64_t rip, uint64_t rcx,
                   const uint64_t view[16], uint64_t taken, const uint64_t gprs[16],
                   uint64_t woke)
{
    const struct tdxsim_exit_record *first = &m->records[0];
    struct tdxsim_exit_record *r = &m->records[m->recorded++];

    if (r != first && (view[REG_R10] != first->exposed[REG_R10]
                       || (!view[REG_R10] && view[REG_R11] != first->exposed[REG_R11])))
        m->recorded_mixed = 1;
    m->recorded_woke += woke != 0;

    r->time_ns = time_ns;
    r->rip = rip;
    r->rcx = rcx;
    memcpy(r->exposed, view, sizeof(r->exposed));
    r->returned_mask = taken;
    for (int i = 0; i < 16; i++)
        r->returned[i] = taken >> i & 1 ? gprs[i] : 0;
    r->woke = woke;
    r->woke_ns = woke ? tdxsim_now_ns(m->clock) : 0; /* after the exit's cost */
}

/* Python answers an exit the host's compiled rules declined (module/bridge.py). */
static unsigned bridge(struct tdxsim_module *m, const uint64_t view[16], uint64_t time_ns,
                       uint64_t rip, struct tdxsim_reply *reply)
{
    unsigned outcome;

    m->bridge_time_ns = time_ns;
    m->bridge_rip = rip;
    memcpy(m->bridge_view, view, sizeof(m->bridge_view));
    m->bridge_reply.mask = 0;
    m->bridge_reply.woke = 0;
    outcome = m->bridge();
    *reply = m->bridge_reply;
    m->bridged += outcome != 0;
    return outcome;
}

/* Complete the TDG.VP.VMCALL in gprs (RAX = 0) at rip; *written: the GPRs
 * changed.  0: declined, nothing changed; else VMCALL_* flags. */
unsigned tdxsim_vmcall(struct tdxsim_module *m, uint64_t gprs[16], uint64_t rip,
                       uint64_t *written)
{
    uint64_t rcx = gprs[REG_RCX], select = rcx & GPR_SELECT_MASK, view[16], time_ns, taken = 0;
    struct tdxsim_reply reply = {0};
    unsigned outcome = VMCALL_COMPLETE | VMCALL_RECORD;

    if (m->failure && !tdxsim_invalid_control(rcx, m->no_rbp_mod)) {
        /* injected (vmcall.py): only RAX is written, nothing reaches the host */
        gprs[REG_RAX] = m->failure;
        *written = 1u << REG_RAX;
        m->failed++;
        return VMCALL_COMPLETE | VMCALL_HANDLED;
    }
    if (!m->enabled || m->recorded == m->capacity || tdxsim_invalid_control(rcx, m->no_rbp_mod)
        || (rcx >> XMM_SELECT_SHIFT & XMM_SELECT_MASK))
        return 0;
    for (int i = 0; i < 16; i++)
        view[i] = select >> i & 1 ? gprs[i] : 0;
    view[REG_RAX] = EXIT_REASON_TDCALL;
    view[REG_RCX] = rcx & 0xFFFFFFFF; /* GPR/XMM select; VM index (33:32) is 0 */
    time_ns = tdxsim_now_ns(m->clock); /* the exit's time: before its cost */
    m->clock->added_ns += m->clock->exit_ns; /* as clock.py exit_to_host, before the host runs */
    if (tdxsim_host_serve(m->host, view, &reply)) {
        m->served++;
    } else if (m->bridge && (outcome = bridge(m, view, time_ns, rip, &reply))) {
        /* answered by Python (0 only if the bridge itself failed: the full path then) */
    } else {
        m->clock->added_ns -= m->clock->exit_ns; /* declined: nothing changed */
        return 0;
    }
    *written = 0;
    if (outcome & VMCALL_COMPLETE) {
        taken = reply.mask & select;
        for (int i = 0; i < 16; i++)
            if (taken >> i & 1)
                gprs[i] = reply.gprs[i];
        gprs[REG_RAX] = STATUS_SUCCESS;
        *written = taken | 1u << REG_RAX;
    }
    if (outcome & VMCALL_RECORD)
        record(m, time_ns, rip, rcx, view, taken, gprs, reply.woke);
    return outcome | VMCALL_HANDLED | (reply.woke ? VMCALL_WOKE : 0);
}
