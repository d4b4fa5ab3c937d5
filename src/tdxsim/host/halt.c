/*
 * Instruction.HLT in C (host/halt.py, spec 7.4), for the halt that ends at
 * once: R12 = 0 (interrupts not blocked) and a vector the vCPU's APIC would
 * deliver already pending, as KVM resumes the vCPU at once.  Every other
 * halt (R12 != 0, an NMI pending, nothing pending: the vCPU blocks and
 * time jumps) is declined and the run loop blocks the vCPU (execution.py).
 * The reply carries the vector, for the record's Halted and Woke events.
 */
#include "../native.h"

bool tdxsim_hlt(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply)
{
    const struct tdxsim_lapic *a = h->lapic;
    int vector;

    if (!a || view[REG_R12] != 0 || a->nmi_pending || (vector = tdxsim_apic_deliverable(a)) < 0)
        return false;
    reply->woke = WOKE | (unsigned)vector;
    return tdxsim_status(reply, VMCALL_SUCCESS);
}
