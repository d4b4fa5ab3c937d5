/*
 * Instruction.CPUID in C (host/cpuid.py): the configured table, copied
 * into struct tdxsim_cpuid by Python whenever it changes.  An exact
 * (leaf, sub-leaf) entry wins, then (leaf, 0), then zeros.
 */
#include "../native.h"

static const uint64_t zeros[4];

const uint64_t *tdxsim_cpuid_lookup(const struct tdxsim_cpuid *t, uint64_t leaf,
                                    uint64_t subleaf)
{
    const uint64_t *leaf_only = zeros;

    for (uint64_t i = 0; i < t->count; i++) {
        const struct tdxsim_cpuid_entry *e = &t->entries[i];
        if (e->leaf != leaf)
            continue;
        if (e->subleaf == subleaf)
            return e->regs;
        if (e->subleaf == 0)
            leaf_only = e->regs;
    }
    return leaf_only;
}

bool tdxsim_cpuid(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply)
{
    const uint64_t *regs = tdxsim_cpuid_lookup(h->cpuid_table, view[REG_R12] & 0xFFFFFFFF,
                                               view[REG_R13] & 0xFFFFFFFF);

    for (int i = 0; i < 4; i++)
        tdxsim_set(reply, REG_R12 + i, regs[i]);
    return tdxsim_status(reply, VMCALL_SUCCESS);
}
