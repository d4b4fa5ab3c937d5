/*
 * RDMSR/WRMSR in C (host/msr.py): the MSR store's values live in struct
 * tdxsim_msrs.  An unknown MSR, or a write to a read-only one or with a
 * reserved bit set, is INVALID_OPERAND; a local APIC register (the timer's,
 * TSC deadline, EOI) is served by devices/lapic.c on the APIC's state; any
 * other MSR with Python callbacks is declined and served by Python.
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
    uint64_t index = view[REG_R12] & 0xFFFFFFFF, value;
    struct tdxsim_msr *msr = find(h->msrs, index);

    if (!msr)
        return tdxsim_status(reply, VMCALL_INVALID_OPERAND);
    if (msr->apic) {
        if (!tdxsim_apic_read(msr->apic, index, &value))
            return false;
    } else if (msr->flags & MSR_PYTHON) {
        return false;
    } else {
        value = read_msr(msr);
    }
    tdxsim_set(reply, REG_R11, value);
    return tdxsim_status(reply, VMCALL_SUCCESS);
}

bool tdxsim_wrmsr(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply)
{
    uint64_t index = view[REG_R12] & 0xFFFFFFFF, value = view[REG_R13];
    struct tdxsim_msr *msr = find(h->msrs, index);

    if (!msr || !(msr->flags & MSR_WRITABLE) || (value & msr->reserved))
        return tdxsim_status(reply, VMCALL_INVALID_OPERAND);
    if (msr->apic ? !tdxsim_apic_write(msr->apic, index, value)
                  : (msr->flags & MSR_PYTHON) != 0)
        return false; /* (lapic.c changes nothing for a register it does not know) */
    msr->value = value; /* (as MsrStore.write keeps it, callbacks or not) */
    return tdxsim_status(reply, VMCALL_SUCCESS);
}
