/* The project's guest: says it booted, asks the VMM what it supports. */
#include <tdx.h>

int main(void)
{
    uint64_t info[4];

    tdx_puts("boot: up\n");
    if (tdx_get_td_vm_call_info(0, info) != TDVMCALL_STATUS_SUCCESS)
        return 3;
    tdx_puts("boot: done\n");
    return 0;
}
