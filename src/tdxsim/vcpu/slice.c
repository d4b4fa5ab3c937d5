/*
 * One emu_start of the vCPU with the bookkeeping around it (vcpu/cpu.py
 * _emulate, whose Python twin `_slice_python` is the reference): arm the
 * counter and the traps, run, and report in one word what stopped the
 * engine.  Done in Python it was a dozen ctypes stores and loads and the
 * binding's emu_start per slice, about a fifth of a checker run's slice.
 */
#include "../native.h"

EXPORT uint64_t tdxsim_slice(struct tdxsim_slice *s)
{
    uint64_t out = 0, step = s->step;
    int err;

    s->counter->enabled = s->trap->armed = !step;
    s->trap->hit = s->boundary->hit = s->if_watch->hit = 0;
    s->counter->block_insns = 0; /* no block entered yet */
    err = s->emu_start(s->uc, s->rip, 0, 0, step); /* no timeout: no watchdog thread */
    s->counter->enabled = 1;
    if (s->vcpu->stop_tdcall) { /* tdcall.c stopped at a TDCALL */
        s->vcpu->stop_tdcall = 0;
        out |= SLICE_TDCALL;
    }
    if (s->vcpu->end_slice) { /* tdcall.c ended the slice: a timer now falls inside it */
        s->vcpu->end_slice = 0;
        out |= SLICE_END;
    }
    if (s->trap->sti && s->trap->sti->done) { /* traps.c completed an STI in place */
        s->trap->sti->done = 0;
        out |= SLICE_STI;
    }
    s->vcpu->uc.reg_read(s->uc, s->vcpu->uc.rip_id, &s->end_rip);
    out |= (s->trap->hit ? SLICE_TRAP : 0) | (s->boundary->hit ? SLICE_BOUNDARY : 0)
        | (s->if_watch->hit ? SLICE_IF_WATCH : 0);
    return out | (uint64_t)(unsigned)err << SLICE_ERROR_SHIFT;
}
