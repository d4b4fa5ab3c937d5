/*
 * The host's compiled fast paths: the sub-functions and hypercalls the
 * default host answers from registers and state that lives in C, with the
 * same results as the Python handlers they mirror (host/vmm.py's dispatch and
 * host/info.py here; the other families in kvm.c, cpuid.c, msr.c, io.c
 * with the devices in devices/devices.c).  Python enables each one only while the host
 * still uses that handler and device (struct tdxsim_host); anything else is
 * declined and served by Python.
 */
#include <string.h>

#include "../native.h"

/* GetTdVmCallInfo (host/info.py): leaf 0 all zeros, leaf 1 the bitmap
 * Python computed for this host, any other leaf INVALID_OPERAND. */
static bool info(const struct tdxsim_host *h, const uint64_t view[16],
                 struct tdxsim_reply *reply)
{
    uint64_t leaf = view[REG_R12];

    if (leaf > 1)
        return tdxsim_status(reply, VMCALL_INVALID_OPERAND);
    tdxsim_set(reply, REG_R11, leaf == 1 ? h->info_bitmap : 0);
    tdxsim_set(reply, REG_R12, 0);
    tdxsim_set(reply, REG_R13, 0);
    tdxsim_set(reply, REG_R14, 0);
    return tdxsim_status(reply, VMCALL_SUCCESS);
}

/* SetupEventNotifyInterrupt (host/quote.py setup_event_notify): a vector
 * of 32..255 is registered, any other value is INVALID_OPERAND. */
static bool setup_event_notify(struct tdxsim_host *h, const uint64_t view[16],
                               struct tdxsim_reply *reply)
{
    uint64_t vector = view[REG_R12];

    if (vector < EVENT_NOTIFY_FIRST || vector > EVENT_NOTIFY_LAST)
        return tdxsim_status(reply, VMCALL_INVALID_OPERAND);
    h->notify_vector = vector;
    return tdxsim_status(reply, VMCALL_SUCCESS);
}

/* host/vmm.py Host.handle: R10 != 0 is a KVM hypercall, else R11 picks
 * the GHCI sub-function. */
bool tdxsim_host_serve(struct tdxsim_host *h, const uint64_t view[16],
                       struct tdxsim_reply *reply)
{
    if (h->answer_all) {
        reply->mask = h->answer_mask;
        memcpy(reply->gprs, h->answer, sizeof(reply->gprs));
        return true;
    }
    if (view[REG_R10] != 0)
        return tdxsim_kvm(h, view, reply);
    switch (view[REG_R11]) {
    case SUBFN_IO:
        return h->io && tdxsim_io(h, view, reply);
    case SUBFN_MMIO:
        return h->mmio && tdxsim_mmio(h, view, reply);
    case SUBFN_CPUID:
        return h->cpuid && tdxsim_cpuid(h, view, reply);
    case SUBFN_RDMSR:
        return h->rdmsr && tdxsim_rdmsr(h, view, reply);
    case SUBFN_WRMSR:
        return h->wrmsr && tdxsim_wrmsr(h, view, reply);
    case SUBFN_GET_TD_VM_CALL_INFO:
        return h->info && info(h, view, reply);
    case SUBFN_SETUP_EVENT_NOTIFY_INTERRUPT:
        return h->notify && setup_event_notify(h, view, reply);
    case SUBFN_HLT:
        return h->hlt && tdxsim_hlt(h, view, reply);
    default:
        return false;
    }
}
