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
#include "../native.h"

EXPORT void tdxsim_trap(void *uc, uint64_t address, uint32_t size, void *user)
{
    struct tdxsim_traps *t = user;

    (void)size;
    if (!t->armed || t->hit || (t->only && t->only != address))
        return;
    t->hit = 1;
    t->rip = address;
    t->stop(uc);
}
