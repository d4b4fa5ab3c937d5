/*
 * Instruction counter for the vCPU, installed as a Unicorn UC_HOOK_CODE
 * callback through ctypes (tdxsim/vcpu/counter.py).  Counting in C keeps
 * guest code at ~100 M instructions/s where a Python hook manages ~1 M.
 *
 * The hook runs before each instruction: at the limit it stops the
 * emulator, so exactly `limit` instructions complete (slices end precisely
 * on an instruction boundary, which virtual time and the interrupt explorer
 * rely on).  `last_pc` is the address of the last instruction started.
 *
 * It is built as a CPython extension only so that pip compiles it; Python
 * never calls into it, ctypes takes the hook's address.
 */
#include <Python.h>
#include <stdint.h>

typedef int (*uc_emu_stop_fn)(void *uc);

struct tdxsim_counter {
    uint64_t count;
    uint64_t limit;
    uint64_t last_pc;
    uc_emu_stop_fn stop;
};

PyMODINIT_FUNC PyInit__counter(void);

__attribute__((visibility("default")))
void tdxsim_count_insn(void *uc, uint64_t address, uint32_t size, void *user)
{
    struct tdxsim_counter *c = user;
    (void)size;
    if (c->count >= c->limit) {
        c->stop(uc);
        return;
    }
    c->count++;
    c->last_pc = address;
}

static struct PyModuleDef counter_module = {
    PyModuleDef_HEAD_INIT, "_counter",
    "C instruction-count hook for Unicorn (used through ctypes).", -1, NULL,
};

PyMODINIT_FUNC PyInit__counter(void)
{
    return PyModule_Create(&counter_module);
}
