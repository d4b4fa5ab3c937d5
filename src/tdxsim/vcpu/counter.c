/*
 * Instruction counter for the vCPU, installed as a Unicorn UC_HOOK_BLOCK
 * callback through ctypes (tdxsim/vcpu/counter.py).
 *
 * Counting per translation block, in C, keeps guest code near Unicorn's own
 * speed: a per-instruction hook costs about three quarters of it.  Each
 * block's instruction count is decoded once, in Python (`resolve`), and
 * cached here by (address, size).
 *
 * The block is counted when it is entered.  A block that would take the
 * count past `limit` is not entered: the hook stops the CPU in front of it,
 * and Python enters it again with a trap on the instruction where the count
 * reaches the limit, so that slices still end exactly on an instruction
 * boundary (vcpu/cpu.py _run_to_boundary).  A stop in the middle of a
 * block (a fault, a TDCALL that ends the slice) is corrected in Python from
 * `block_start`/`block_insns` and RIP.
 */
#include <string.h>

#include "../native.h"

EXPORT void tdxsim_count_block(void *uc, uint64_t address, uint32_t size, void *user)
{
    struct tdxsim_counter *c = user;
    uint64_t key = address << 16 | (size & 0xFFFF);
    uint32_t slot = (uint32_t)((address ^ address >> 12) % COUNTER_SLOTS);
    uint32_t n;

    if (!c->enabled)
        return;
    if (address == c->until) { /* stop without counting: the last block stays the last */
        c->stop(uc);
        return;
    }
    if (c->keys[slot] == key) {
        n = c->counts[slot];
    } else {
        n = c->resolve(address, size);
        if (n != COUNTER_NOT_YET) {
            c->keys[slot] = key;
            c->counts[slot] = n;
        }
    }
    c->block_start = address;
    if (n == COUNTER_NOT_YET || c->count + n > c->limit) {
        c->block_insns = 0;
        c->stop(uc);
        return;
    }
    c->block_insns = n;
    c->count += n;
}

EXPORT void tdxsim_forget_blocks(struct tdxsim_counter *c)
{
    memset(c->keys, 0, sizeof(c->keys));
}
