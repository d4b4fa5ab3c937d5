/* hello.c - the smallest C guest: a greeting on COM1 and CPUID leaf 0.
 *
 *   tdxsim run examples/hello.c
 *
 * tdxsim compiles it freestanding and links the guest library and C runtime;
 * main()'s return value is the run's exit code. */
#include <tdx.h>

int main(void)
{
    uint32_t regs[4];

    tdx_puts("Hello from a C guest in a TD\n");
    if (tdx_cpuid(0, 0, regs) != TDVMCALL_STATUS_SUCCESS)
        return 1;
    tdx_puts("CPUID leaf 0: max leaf ");
    tdx_put_hex(regs[0]);
    tdx_puts("\n");
    return 0;
}
