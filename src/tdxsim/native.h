/*
 * The state tdxsim's compiled hooks share with Python.  Every struct here
 * has a ctypes mirror in tdxsim/native.py; Python allocates and owns all of
 * it, the C code never allocates.  ABI numbers come from tdxsim_abi.h, which
 * setup.py generates from tdxsim/abi.py (the one place that spells them).
 */
#ifndef TDXSIM_NATIVE_H
#define TDXSIM_NATIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdxsim_abi.h"

#define EXPORT __attribute__((visibility("default")))

/* Unicorn's entry points, passed in by Python (no link-time dependency). */
typedef int (*uc_emu_stop_fn)(void *uc);
typedef int (*uc_reg_fn)(void *uc, int regid, void *value);
typedef int (*uc_reg_batch_fn)(void *uc, const int *regs, void *const *vals, int count);
typedef int (*uc_mem_read_fn)(void *uc, uint64_t address, void *bytes, uint64_t size);
typedef int (*uc_mem_write_fn)(void *uc, uint64_t address, const void *bytes, uint64_t size);

struct tdxsim_unicorn {
    uc_emu_stop_fn emu_stop;
    uc_reg_fn reg_read, reg_write;
    uc_reg_batch_fn reg_read_batch, reg_write_batch;
    uc_mem_read_fn mem_read;
    int gpr_ids[16]; /* Unicorn's ids of RAX..R15, in the spec's order */
    int rip_id, rflags_id;
    uc_mem_write_fn mem_write;
    int rsp_id, cs_id, ss_id, idtr_id, cr3_id; /* (vcpu/deliver.c) */
};

/* vcpu/counter.c */
typedef uint32_t (*resolve_fn)(uint64_t address, uint32_t size);
#define COUNTER_SLOTS 4096
/* resolve's answer for a block that must not run yet: the vCPU first traps
 * an instruction in it (vcpu/code_traps.py, exact traps); never cached. */
#define COUNTER_NOT_YET 0xFFFFFFFFu
struct tdxsim_counter {
    uint64_t count;       /* instructions retired, the current block included */
    uint64_t limit;       /* never enter a block that would pass this */
    uint64_t block_start; /* the block entered last */
    uint64_t block_insns; /* its instruction count (0: stopped in front of it) */
    uint64_t enabled;     /* 0 while Python steps single instructions */
    uint64_t until;       /* the stop address: a block there is never entered */
    uc_emu_stop_fn stop;
    resolve_fn resolve;
    uint64_t keys[COUNTER_SLOTS]; /* address << 16 | size; 0 = empty */
    uint32_t counts[COUNTER_SLOTS];
};

/* clock.py: the TD's one virtual clock.  Every compiled hook tells time
 * through tdxsim_now_ns(), as Python's Clock.now() does. */
struct tdxsim_clock {
    struct tdxsim_counter *counter; /* the vCPU's retired instructions */
    uint64_t ns_per_insn;
    uint64_t added_ns; /* time without instructions: halted, and exit costs */
    uint64_t exit_ns;  /* what each TD exit to the host costs */
    uint64_t next_event_ns; /* when the head of its queue of timed events is due
                             * (clock.py TimedEvents keeps it; NO_DEADLINE: empty) */
};
#define NO_DEADLINE UINT64_MAX

static inline uint64_t tdxsim_now_ns(const struct tdxsim_clock *clock)
{
    /* (a clock no vCPU ticks yet: only added time, as Clock.now) */
    uint64_t count = clock->counter ? clock->counter->count : 0;

    return count * clock->ns_per_insn + clock->added_ns;
}

/* devices/lapic.py: one vCPU's local APIC, its interrupt state and timer;
 * Python's LocalApic and ApicTimer read and write these same fields, the
 * compiled rules are devices/lapic.c. */
struct tdxsim_lapic {
    uint64_t irr[4], isr[4]; /* vector v: bit v % 64 of word v / 64 */
    uint64_t nmi_pending;
    uint64_t lvt, initial, divide, tsc_deadline;
    uint64_t counting, expiry; /* one-shot/periodic: the count reaches 0 at expiry */
    struct tdxsim_clock *clock; /* the TD's clock; NULL: C serves nothing of it */
};
/* devices/lapic.c: the APIC registers the MSR store routes there (false:
 * not one it serves), and its next deadline: the timer's expiry or the
 * clock's next timed event, NO_DEADLINE if none (LocalApic.next_deadline). */
bool tdxsim_apic_read(const struct tdxsim_lapic *a, uint64_t index, uint64_t *value);
bool tdxsim_apic_write(struct tdxsim_lapic *a, uint64_t index, uint64_t value);
uint64_t tdxsim_apic_next_deadline(const struct tdxsim_lapic *a);
/* LocalApic.deliverable: the vector the vCPU would take if IF allowed, or -1. */
int tdxsim_apic_deliverable(const struct tdxsim_lapic *a);
/* The run loop's checks before a slice when the APIC has nothing to say:
 * the slice's end, or 0 (execution.py). */
uint64_t tdxsim_apic_quiet_limit(const struct tdxsim_lapic *a, const uint64_t *budget_end);

/* vcpu/traps.c */
struct tdxsim_traps {
    uint64_t hit;   /* a trap stopped the vCPU ... */
    uint64_t rip;   /* ... in front of the instruction at rip */
    uint64_t armed; /* 0: the hooks do nothing */
    uint64_t only;  /* nonzero: only the hook at this address stops */
    uc_emu_stop_fn stop;
    struct tdxsim_sti *sti; /* non-NULL (the intercept traps): STIs it may complete */
};

#include "native_host.h" /* devices and the host's tables */

/* A TD exit's view and the host's reply, between module and host. */
struct tdxsim_reply {
    uint64_t mask;     /* GPRs the host wrote */
    uint64_t gprs[16];
    uint64_t woke;     /* HLT: WOKE | the vector pending that ended the halt at once */
};
#define WOKE 0x100u

/* One TDG.VP.VMCALL, as module/vmcall.py's VmcallRecord. */
struct tdxsim_exit_record {
    uint64_t time_ns, rip, rcx;
    uint64_t exposed[16];  /* the host's view of the GPRs */
    uint64_t returned_mask; /* GPRs the guest took back ... */
    uint64_t returned[16];  /* ... and their values */
    uint64_t woke, woke_ns; /* a HLT the host ended at once (reply.woke), and when:
                             * the record stands for the exit, Halted and Woke */
};

/* module/vmcall.c: what became of a TDG.VP.VMCALL (0: declined, the full
 * Python path takes it).  The bridge (module/bridge.py) answers with the
 * flags after HANDLED. */
#define VMCALL_HANDLED 1u     /* RIP moves past the TDCALL, the exit's cost is charged */
#define VMCALL_COMPLETE 2u    /* the selected GPRs the host wrote, and RAX = SUCCESS */
#define VMCALL_RECORD 4u      /* recorded into the exit log here */
#define VMCALL_STOP 8u        /* the vCPU stops after it (translated code went stale) */
#define VMCALL_STOP_TDCALL 16u /* ... at a TDCALL the run loop looks at (host action, error) */
#define VMCALL_WOKE 32u       /* a HLT ended at once: the vCPU may go on only if the run
                               * loop would change nothing (vcpu/tdcall.c) */
typedef uint64_t (*bridge_fn)(void);

/* module/ve.py VeState: one vCPU's VE information area (TDVPS); Python's
VeState reads and writes these same fields, module/veinfo.c serves
TDG.VP.VEINFO.GET on them. */
struct tdxsim_ve {
    uint64_t valid; /* VALID: raised, and not yet read by VEINFO.GET */
    uint64_t exit_reason, qualification, gla, gpa, instr_len, instr_info;
    uint64_t gets; /* VEINFO.GETs this vCPU made, either path (the firmware's summary) */
};

/* module/vmcall.c */
struct tdxsim_module {
    uint64_t enabled;    /* nothing the compiled path bypasses is customised */
    uint64_t no_rbp_mod;
    struct tdxsim_clock *clock;
    struct tdxsim_host *host;
    struct tdxsim_exit_record *records; /* the exit log, drained by Python */
    uint64_t recorded, capacity;
    /* of the records since Python last took them: how many ended a HLT at
     * once, and whether any differs from the first in R10 (or, R10 = 0,
     * in R11); Python then counts a uniform chunk at once (eventlog.py) */
    uint64_t recorded_woke, recorded_mixed;
    uint64_t served; /* TDG.VP.VMCALLs completed here, for tests */
    /* Python's host for an exit the compiled rules decline, called once
     * with the exit here (module/bridge.py); NULL: the full Python path. */
    bridge_fn bridge;
    uint64_t bridged; /* TDG.VP.VMCALLs answered through it, for tests */
    uint64_t bridge_time_ns, bridge_rip, bridge_view[16];
    struct tdxsim_reply bridge_reply;
    /* TDG.VP.VEINFO.GET is module/veinfo.py's, served in C (veinfo.c), on
     * the running vCPU's VE information (TdxModule.select points ve at it) */
    uint64_t veinfo, veinfo_served;
    struct tdxsim_ve *ve;
    /* TdxModule.vmcall_failure, while vmcall.handle is in place and no
     * Python observer watches: every valid TDG.VP.VMCALL completes with
     * this RAX and no TD exit (0: none); failed counts them, for tests */
    uint64_t failure, failed;
};

static inline bool tdxsim_set(struct tdxsim_reply *reply, int reg, uint64_t value)
{
    reply->mask |= 1u << reg;
    reply->gprs[reg] = value;
    return true;
}

/* The host's answer with R10 = status (exits.py VmResume.status). */
static inline bool tdxsim_status(struct tdxsim_reply *reply, uint64_t r10)
{
    return tdxsim_set(reply, REG_R10, r10);
}

unsigned tdxsim_vmcall(struct tdxsim_module *m, uint64_t gprs[16], uint64_t rip,
                       uint64_t *written);
/* module/veinfo.c: TDG.VP.VEINFO.GET (RAX already checked: leaf 3, version
 * 0 or 1); false: Python's, nothing changed. */
bool tdxsim_veinfo(struct tdxsim_module *m, uint64_t gprs[16], uint64_t *written);
/* The host's compiled rules, one file per family (host/fast.c dispatches);
 * each answers into reply, or returns false: declined, nothing changed. */
bool tdxsim_host_serve(struct tdxsim_host *h, const uint64_t view[16],
                       struct tdxsim_reply *reply);
bool tdxsim_kvm(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply);
bool tdxsim_cpuid(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply);
const uint64_t *tdxsim_cpuid_lookup(const struct tdxsim_cpuid *t, uint64_t leaf,
                                    uint64_t subleaf);
bool tdxsim_io(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply);
bool tdxsim_mmio(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply);
/* devices/devices.c: an access to device d (address: port or GPA without
 * the shared bit); false: the device is Python's, nothing changed. */
bool tdxsim_device_read(const struct tdxsim_device *d, uint64_t address, uint64_t size,
                        uint64_t *value);
bool tdxsim_device_write(const struct tdxsim_device *d, uint64_t address, uint64_t size,
                         uint64_t value);
bool tdxsim_rdmsr(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply);
bool tdxsim_wrmsr(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply);
bool tdxsim_hlt(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply);

/* vcpu/tdcall.c: what a TDCALL observer (the checker) sees of each one,
 * as check/harness.py TdcallSeen. */
#define OBSERVE_STACK_MAX 1040
struct tdxsim_tdcall_seen {
    uint64_t rip, rflags, count, time_ns;
    uint64_t before[16], after[16];
    uint8_t stack[OBSERVE_STACK_MAX]; /* the stack window at the TDCALL */
};
struct tdxsim_observer {
    struct tdxsim_tdcall_seen *seen;
    uint64_t count, capacity, overflow;
    uint64_t stack_base, stack_len; /* guest-physical window copied at each TDCALL */
};

#define SHADOW_SLOTS 256
#define WALK_SLOTS 64
#define WALK_READ 1u
#define WALK_WRITE 2u
typedef bool (*fallback_fn)(void *uc, void *user);
struct tdxsim_vcpu {
    struct tdxsim_unicorn uc;
    fallback_fn fallback;          /* Python's TDCALL path (vcpu/cpu.py) */
    struct tdxsim_module *module;
    struct tdxsim_observer *observer; /* NULL: nobody observes TDCALLs */
    uint64_t shadow_pages[SHADOW_SLOTS];   /* linear page + 1 (0: empty) ... */
    uint64_t shadow_backing[SHADOW_SLOTS]; /* ... -> backing page, as last filled */
    uint64_t stop_tdcall; /* the vCPU stopped at a TDCALL the run loop must see (cpu.py) */
    /* The local APIC of the vCPU on the engine (NULL: C does not know its
     * deadlines); a TDCALL served here that brings its next deadline before
     * the slice's end ends the slice (Execution.end_slice_if_due): */
    struct tdxsim_lapic *apic;
    uint64_t end_slice;
    struct tdxsim_traps *if_watch; /* armed: the slice stops where IF may become 1 */
    /* The MMU's cached walks (vcpu/mmu.py _walks) for reads and writes,
     * made under walk_cr3 (walk_on: 4-level paging, no mixed modes): key
     * linear page | WALK_READ or WALK_WRITE (0: empty) -> backing page, in
     * slot (page number << 1 | access >> 1) % WALK_SLOTS.  A subset of
     * Python's cache, cleared with it (vcpu/deliver.c). */
    uint64_t walk_on, walk_cr3;
    uint64_t walk_keys[WALK_SLOTS], walk_backing[WALK_SLOTS];
};
/* vcpu/deliver.c: an interrupt or exception through a 64-bit IDT gate, as
 * vcpu/interrupts.py enter_handler (the reference) does, when every step
 * is known to succeed: the handler and the RIP saved in the frame.  false:
 * nothing changed, Python delivers (and says why it cannot). */
struct tdxsim_delivery {
    uint64_t vector, has_error, error_code; /* in */
    uint64_t handler, rip;                  /* out */
};
bool tdxsim_deliver(struct tdxsim_vcpu *v, void *uc, struct tdxsim_delivery *d);

/* The code bytes at a linear address, through the page the vCPU fetched
 * them from (the TLB fill recorded it in the shadow); false if that page is
 * not known or the bytes cross it. */
static inline bool tdxsim_code_at(const struct tdxsim_vcpu *v, void *uc, uint64_t rip,
                                  uint8_t *code, uint64_t n)
{
    uint64_t page = rip >> 12, slot = page % SHADOW_SLOTS;

    if (v->shadow_pages[slot] != page + 1 || (rip & 0xFFF) > 0x1000 - n)
        return false;
    return v->uc.mem_read(uc, v->shadow_backing[slot] << 12 | (rip & 0xFFF), code, n) == 0;
}

/* vcpu/traps.c: an STI the intercept trap completes in place, as the run
 * loop would (VCpu.emulate) when nothing waits for IF = 1, instead of
 * stopping the slice for it.  slice.c reports the last one (SLICE_STI). */
struct tdxsim_sti {
    struct tdxsim_vcpu *vcpu;
    struct tdxsim_counter *counter;
    struct tdxsim_traps *boundary; /* armed: the slice pauses in a block: never in place */
    uint64_t enabled;              /* 0: every STI stops the slice (several vCPUs) */
    uint64_t done;   /* an STI was completed in this slice ... */
    uint64_t rip;    /* ... at rip, */
    uint64_t shadow; /* it set IF, so its shadow covers the next instruction, */
    uint64_t count;  /* which starts at this instruction count */
};

/* vcpu/slice.c: one emu_start and its bookkeeping (vcpu/cpu.py _emulate) */
typedef int (*uc_emu_start_fn)(void *uc, uint64_t begin, uint64_t until, uint64_t timeout,
                               size_t count);
struct tdxsim_slice {
    void *uc; /* the engine */
    uc_emu_start_fn emu_start;
    struct tdxsim_counter *counter;
    struct tdxsim_traps *trap, *boundary, *if_watch;
    struct tdxsim_vcpu *vcpu;
    uint64_t rip, step; /* where the slice starts; 1: one instruction (emu_start's count) */
    uint64_t end_rip; /* RIP where it stopped (read once here) */
};
/* What tdxsim_slice returns: what stopped the engine, and its error. */
#define SLICE_TDCALL 1u   /* tdcall.c stopped at a TDCALL (stop_tdcall, now cleared) */
#define SLICE_TRAP 2u     /* the trap hooks (trap->rip) */
#define SLICE_BOUNDARY 4u /* the slice-limit pause */
#define SLICE_IF_WATCH 8u /* the POPF/IRET pause */
#define SLICE_END 16u     /* tdcall.c ended the slice (end_slice, now cleared) */
#define SLICE_STI 32u     /* traps.c completed an STI in place (sti->done, now cleared) */
#define SLICE_ERROR_SHIFT 32 /* uc_err of emu_start above */

#endif
