/*
 * RDMSR/WRMSR in C (host/msr.py): the MSR store's values live in struct
 * tdxsim_msrs.  An unknown MSR, or a write to a read-only one, is
 * INVALID_OPERAND; an MSR with Python callbacks (the APIC timer's
 * registers, TSC deadline, EOI: they change timer and interrupt state the
 * run loop reads) is declined and served by Python.
 */
#include "../native.h"

/* The slot of MSR `index` (msr.py MsrStore._slot probes the same way). */
static struct tdxsim_msr *find(struct tdxsim_msrs *t, uint64_t index)
{
    uint64_t key = index + 1;

    for (unsigned n = 0, slot = (index ^ index >> 9) % MSR_SLOTS; n < MSR_SLOTS;
         n++, slot = (slot + 1) % MSR_SLOTS) {
        if (t->slots[slot].key == key)
            return &t->slots[slot];
        if (!t->slots[slot].key)
            break;
    }
    return NULL;
}

static uint64_t read_msr(const struct tdxsim_msr *msr)
{
    return msr->clock ? tdxsim_now_ns(msr->clock) : msr->value;
}

bool tdxsim_rdmsr(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply)
{
    struct tdxsim_msr *msr = find(h->msrs, view[REG_R12] & 0xFFFFFFFF);

    if (!msr)
        return tdxsim_status(reply, VMCALL_INVALID_OPERAND);
    if (msr->flags & MSR_PYTHON)
        return false;
    tdxsim_set(reply, REG_R11, read_msr(msr));
    return tdxsim_status(reply, VMCALL_SUCCESS);
}

bool tdxsim_wrmsr(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply)
{
    struct tdxsim_msr *msr = find(h->msrs, view[REG_R12] & 0xFFFFFFFF);

    if (!msr || !(msr->flags & MSR_WRITABLE))
        return tdxsim_status(reply, VMCALL_INVALID_OPERAND);
    if (msr->flags & MSR_PYTHON)
        return false;
    msr->value = view[REG_R13];
    return tdxsim_status(reply, VMCALL_SUCCESS);
}
