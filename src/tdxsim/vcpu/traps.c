/*
 * Trap hook for the vCPU (tdxsim/vcpu/cpu.py): a Unicorn UC_HOOK_CODE
 * callback installed on each address where an intercepted or vCPU-emulated
 * instruction may start (vcpu/ve_insns.py).
 *
 * A code hook runs before its instruction, and stopping there leaves the
 * instruction unexecuted, which is what a fault-like #VE needs.  A hook on
 * an address inside another instruction never fires and costs nothing at
 * run time.  (Unicorn's exit addresses would do the same, but Unicorn
 * invalidates the translated code around every exit address after every
 * emu_start, so every run retranslated its code.)
 */
#include <string.h>

#include "../native.h"

#define STI_OPCODE 0xFB

/* Complete the STI at `address` here, as VCpu.emulate does, where the run
 * loop would do no more between the two slices: no NMI, no deadline due,
 * the slice's limit not reached, no pause armed in this block.  A vector
 * waiting for IF = 1 is taken after the STI's shadow, one instruction: then
 * only when that instruction is a TDCALL, which the slice's limit makes the
 * last (and which ends it anyway: a vector it does not stop for, tdcall.c).
 * Unicorn ends a translation block after STI, so the count (taken at block
 * entry) already holds it, which is what retiring it gives; writing RIP
 * makes Unicorn go on at the next instruction. */
static bool complete_sti(struct tdxsim_sti *s, void *uc, uint64_t address, uint32_t size)
{
    struct tdxsim_vcpu *v = s->vcpu;
    const struct tdxsim_lapic *apic = v->apic;
    static const uint8_t tdcall[4] = TDCALL_BYTES;
    uint64_t rflags, next = address + 1;
    uint8_t code, after[4];
    bool waiting;

    if (!s->enabled || size != 1 || s->boundary->armed || !apic || !apic->clock
        || apic->nmi_pending || s->counter->count >= s->counter->limit
        || tdxsim_apic_next_deadline(apic) <= tdxsim_now_ns(apic->clock)
        || (v->observer && v->observer->overflow)
        || !tdxsim_code_at(v, uc, address, &code, 1) || code != STI_OPCODE)
        return false;
    waiting = tdxsim_apic_deliverable(apic) >= 0;
    if (waiting && (!tdxsim_code_at(v, uc, next, after, 4) || memcmp(after, tdcall, 4) != 0))
        return false;
    if (v->uc.reg_read(uc, v->uc.rflags_id, &rflags) != 0)
        return false;
    s->shadow = !(rflags & RFLAGS_IF); /* an STI that sets IF opens a shadow */
    rflags |= RFLAGS_IF;
    if (v->uc.reg_write(uc, v->uc.rflags_id, &rflags) != 0
        || v->uc.reg_write(uc, v->uc.rip_id, &next) != 0)
        return false;
    s->done = 1;
    s->rip = address;
    s->count = s->counter->count;
    if (waiting) /* the shadow's one instruction, as the run loop's next slice limit */
        s->counter->limit = s->count + 1;
    return true;
}

EXPORT void tdxsim_trap(void *uc, uint64_t address, uint32_t size, void *user)
{
    struct tdxsim_traps *t = user;

    if (!t->armed || t->hit || (t->only && t->only != address))
        return;
    if (t->sti && complete_sti(t->sti, uc, address, size))
        return;
    t->hit = 1;
    t->rip = address;
    t->stop(uc);
}
