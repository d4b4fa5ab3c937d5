/*
 * Interrupt and exception delivery through the guest's IDT in C: the rules
 * of vcpu/interrupts.py enter_handler, which stays the reference, for the
 * case where every step is known to succeed.
 *
 * The IDT entry and the interrupt frame are reached through the MMU's
 * cached walks (vcpu/mmu.py mirrors its reads and writes into the vCPU's
 * native state, and clears them with its own cache), so a delivery here
 * reads and writes exactly what Python's would.  Anything else (no IDT,
 * a vector past its limit, a gate that is not a present 64-bit interrupt
 * or trap gate, an IST, an entry or a frame across a page or on a page not
 * walked yet) is declined before anything changes: Python then delivers,
 * or says why it cannot.
 */
#include <string.h>

#include "../native.h"

struct uc_x86_mmr { /* Unicorn's IDTR */
    uint16_t selector;
    uint64_t base;
    uint32_t limit;
    uint32_t flags;
};

/* The backing address of n bytes at la within one page already walked for
 * this access (mmu.py translate), under the CR3 of those walks. */
static bool walked(const struct tdxsim_vcpu *v, uint64_t la, uint64_t access, uint64_t n,
                   uint64_t *backing)
{
    uint64_t page = la & ~0xFFFull, slot = (page >> 12 << 1 | access >> 1) % WALK_SLOTS;

    if ((la & 0xFFF) > 0x1000 - n || v->walk_keys[slot] != (page | access))
        return false;
    *backing = v->walk_backing[slot] + (la & 0xFFF);
    return true;
}

/* interrupts.py read_gate: the handler and gate type of IDT[vector]. */
static bool gate(const struct tdxsim_vcpu *v, void *uc, uint64_t vector, uint64_t *handler,
                 unsigned *kind)
{
    struct uc_x86_mmr idtr;
    uint64_t at;
    uint8_t g[16];

    memset(&idtr, 0, sizeof(idtr));
    if (v->uc.reg_read(uc, v->uc.idtr_id, &idtr) != 0 || (!idtr.base && !idtr.limit)
        || 16 * vector + 15 > idtr.limit || idtr.base + 16 * vector < idtr.base
        || !walked(v, idtr.base + 16 * vector, WALK_READ, 16, &at)
        || v->uc.mem_read(uc, at, g, 16) != 0)
        return false;
    *kind = g[5] & 0xF; /* attributes: present (bit 7), type */
    if (!(g[5] & 0x80) || (*kind != GATE_INTERRUPT && *kind != GATE_TRAP) || (g[4] & 7))
        return false;
    *handler = (uint64_t)(g[0] | g[1] << 8) | (uint64_t)(g[6] | g[7] << 8) << 16
        | (uint64_t)(g[8] | g[9] << 8 | g[10] << 16 | (uint32_t)g[11] << 24) << 32;
    return true;
}

EXPORT bool tdxsim_deliver(struct tdxsim_vcpu *v, void *uc, struct tdxsim_delivery *d)
{
    const int frame_ids[5] = {v->uc.rip_id, v->uc.cs_id, v->uc.rflags_id, v->uc.rsp_id,
                              v->uc.ss_id};
    const int entry_ids[3] = {v->uc.rsp_id, v->uc.rflags_id, v->uc.rip_id};
    uint64_t cr3, handler, regs[5] = {0}, frame[6], n = 0, top, new_rsp, at, rflags, cleared;
    void *frame_vals[5], *entry_vals[3];
    unsigned kind;

    if (!v->walk_on || v->uc.reg_read(uc, v->uc.cr3_id, &cr3) != 0 || cr3 != v->walk_cr3
        || d->vector > 255 || !gate(v, uc, d->vector, &handler, &kind))
        return false;
    for (int i = 0; i < 5; i++)
        frame_vals[i] = &regs[i];
    if (v->uc.reg_read_batch(uc, frame_ids, frame_vals, 5) != 0)
        return false;
    regs[1] &= 0xFFFF; /* selectors: 16 bits */
    regs[4] &= 0xFFFF;
    if (d->has_error)
        frame[n++] = d->error_code;
    memcpy(&frame[n], regs, sizeof(regs)); /* RIP, CS, RFLAGS, RSP, SS */
    n += 5;
    top = regs[3] & ~0xFull; /* the CPU aligns RSP to 16 first */
    if (top < 8 * n)
        return false;
    new_rsp = top - 8 * n;
    if (!walked(v, new_rsp, WALK_WRITE, 8 * n, &at) || v->uc.mem_write(uc, at, frame, 8 * n) != 0)
        return false;
    cleared = RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | (kind == GATE_INTERRUPT ? RFLAGS_IF : 0);
    rflags = regs[2] & ~cleared;
    entry_vals[0] = &new_rsp;
    entry_vals[1] = &rflags;
    entry_vals[2] = &handler;
    v->uc.reg_write_batch(uc, entry_ids, entry_vals, 3);
    d->handler = handler;
    d->rip = regs[0];
    return true;
}
