/*
 * tdxsim's compiled hooks, one shared library built by pip: the vCPU's
 * instruction counter, trap hooks and TDCALL hook (vcpu/counter.c, traps.c,
 * tdcall.c), the module's TDG.VP.VMCALL path (module/vmcall.c) and the
 * host's fast paths (host/fast.c).
 *
 * It is a CPython extension only so that pip compiles it; Python never calls
 * into it as a module: tdxsim/native.py loads it with ctypes and hands the
 * hooks' addresses to Unicorn.
 */
#include <Python.h>

#include "native.h"

/* What the library was built from (native_sources.py): native.py refuses
 * a library whose sources differ from those beside it. */
EXPORT const char tdxsim_source_digest[] = TDXSIM_SOURCE_DIGEST;

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native",
    "Compiled Unicorn hooks for tdxsim (used through ctypes).", -1, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModule_Create(&native_module);
}
