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
#include <stdint.h>

typedef int (*uc_emu_stop_fn)(void *uc);

struct tdxsim_traps {
    uint64_t hit;   /* a trap stopped the vCPU ... */
    uint64_t rip;   /* ... in front of the instruction at rip */
    uint64_t armed; /* 0 while Python single-steps (it checks traps itself) */
    uc_emu_stop_fn stop;
};

__attribute__((visibility("default")))
void tdxsim_trap(void *uc, uint64_t address, uint32_t size, void *user)
{
    struct tdxsim_traps *t = user;

    (void)size;
    if (!t->armed || t->hit)
        return;
    t->hit = 1;
    t->rip = address;
    t->stop(uc);
}
