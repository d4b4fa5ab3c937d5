/*
 * KVM hypercalls in C, as host/kvm.py answers them (spec 5): the ones that
 * need no Python state.  A SEND_IPI that reaches the vCPU schedules an
 * interrupt in Python's APIC, so it is declined.
 */
#include "../native.h"

/* host/kvm.py pv_has: every feature counts unless PV CPUID is enforced. */
static int pv_has(const struct tdxsim_host *h, unsigned feature)
{
    if (!h->enforce_pv_cpuid)
        return 1;
    if (!h->cpuid_table)
        return -1; /* the table is Python's: decline */
    return tdxsim_cpuid_lookup(h->cpuid_table, KVM_CPUID_FEATURES, 0)[0] >> feature & 1;
}

/* The answer for a PV call that needs `feature` and then succeeds. */
static bool pv_call(const struct tdxsim_host *h, unsigned feature, struct tdxsim_reply *reply)
{
    int has = pv_has(h, feature);

    return has >= 0 && tdxsim_status(reply, has ? 0 : KVM_ENOSYS_STATUS);
}

static bool send_ipi(const struct tdxsim_host *h, const uint64_t view[16],
                     struct tdxsim_reply *reply)
{
    uint64_t low = view[REG_R11], high = view[REG_R12], first = view[REG_R13] & 0xFFFFFFFF;
    int has = pv_has(h, KVM_FEATURE_PV_SEND_IPI);

    if (has <= 0)
        return has == 0 && tdxsim_status(reply, KVM_ENOSYS_STATUS);
    if (view[REG_R14] & (ICR_DEST_LOGICAL | ICR_SHORTHAND))
        return tdxsim_status(reply, KVM_EINVAL_STATUS);
    if (h->vcpu_apic_id < first || h->vcpu_apic_id - first >= 128)
        return tdxsim_status(reply, 0);
    uint64_t offset = h->vcpu_apic_id - first;
    uint64_t word = offset < 64 ? low : high;
    if (!(word >> (offset & 63) & 1))
        return tdxsim_status(reply, 0);
    return false; /* it reaches this vCPU: Python's APIC takes it */
}

bool tdxsim_kvm(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply)
{
    uint64_t nr = view[REG_R10];

    if (nr >= 64 || !(h->kvm_table >> nr & 1))
        return h->kvm_unknown && tdxsim_status(reply, KVM_ENOSYS_STATUS);
    if (!(h->kvm >> nr & 1))
        return false;
    switch (nr) {
    case KVM_HC_VAPIC_POLL_IRQ:
        return tdxsim_status(reply, 0);
    case KVM_HC_KICK_CPU:
        return pv_call(h, KVM_FEATURE_PV_UNHALT, reply);
    case KVM_HC_SCHED_YIELD:
        return pv_call(h, KVM_FEATURE_PV_SCHED_YIELD, reply);
    case KVM_HC_CLOCK_PAIRING:
        return tdxsim_status(reply, KVM_EOPNOTSUPP_STATUS);
    case KVM_HC_SEND_IPI:
        return send_ipi(h, view, reply);
    default:
        return false;
    }
}
