/*
 * TDG.VP.VEINFO.GET (leaf 3, versions 0 and 1) in C, exactly as
 * module/veinfo.py serves it (spec 8.2; [M-ve]), on the running vCPU's VE
 * information, which Python's VeState (module/ve.py) keeps in the same
 * struct.  A #VE handler calls it once per #VE: for port IO, CPUID or an
 * MSR that is half of the round trip's Python calls.
 */
#include "../native.h"

#define VEINFO_OUTPUTS (1u << REG_RAX | 1u << REG_RCX | 1u << REG_RDX | 1u << REG_R8 \
                        | 1u << REG_R9 | 1u << REG_R10)

bool tdxsim_veinfo(struct tdxsim_module *m, uint64_t gprs[16], uint64_t *written)
{
    struct tdxsim_ve *ve = m->ve;

    if (!m->veinfo || !ve) /* a handler the user replaced, or a Python observer */
        return false;
    /* zeroed first, even on failure; version 1's #VE category (RCX 63:32) is 0 */
    gprs[REG_RCX] = gprs[REG_RDX] = gprs[REG_R8] = gprs[REG_R9] = gprs[REG_R10] = 0;
    gprs[REG_RAX] = ve->valid ? STATUS_SUCCESS : STATUS_NO_VALID_VE_INFO;
    if (ve->valid) {
        gprs[REG_RCX] = ve->exit_reason;
        gprs[REG_RDX] = ve->qualification;
        gprs[REG_R8] = ve->gla;
        gprs[REG_R9] = ve->gpa;
        gprs[REG_R10] = ve->instr_len | ve->instr_info << 32;
        ve->valid = 0; /* a successful call clears VALID */
    }
    *written = VEINFO_OUTPUTS;
    ve->gets++;
    m->veinfo_served++;
    return true;
}
