/* A seed-contract __tdx_hypercall (spec 9.1) written in C with inline asm:
 * R10..R15 from the struct, mask 0xFC00, STI right before TDCALL when
 * flags & 2, ud2 when the module fails, R10..R15 back when flags & 1,
 * returns R10.  R10 and R11 are zeroed before returning: they would
 * otherwise keep host-written values (spec 3.5 rule 5). */
#include <tdx.h>

uint64_t __tdx_hypercall(struct tdx_hypercall_args *args, uint64_t flags)
{
    register uint64_t r10 __asm__("r10") = args->r10;
    register uint64_t r11 __asm__("r11") = args->r11;
    register uint64_t r12 __asm__("r12") = args->r12;
    register uint64_t r13 __asm__("r13") = args->r13;
    register uint64_t r14 __asm__("r14") = args->r14;
    register uint64_t r15 __asm__("r15") = args->r15;
    uint64_t rax = TDG_VP_VMCALL, rcx = 0xFC00;

    if (flags & TDX_HCALL_ISSUE_STI)
        __asm__ volatile("sti; tdcall" : "+a"(rax), "+c"(rcx), "+r"(r10), "+r"(r11),
                         "+r"(r12), "+r"(r13), "+r"(r14), "+r"(r15) :: "memory");
    else
        __asm__ volatile("tdcall" : "+a"(rax), "+c"(rcx), "+r"(r10), "+r"(r11),
                         "+r"(r12), "+r"(r13), "+r"(r14), "+r"(r15) :: "memory");
    if (rax)
        __builtin_trap();
    if (flags & TDX_HCALL_HAS_OUTPUT) {
        args->r10 = r10;
        args->r11 = r11;
        args->r12 = r12;
        args->r13 = r13;
        args->r14 = r14;
        args->r15 = r15;
    }
    rax = r10;
    __asm__ volatile("xor %%r10d, %%r10d; xor %%r11d, %%r11d" ::: "r10", "r11");
    return rax;
}
