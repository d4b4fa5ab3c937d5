/*
 * The host's compiled fast paths: the sub-functions and hypercalls the
 * default host answers from registers and state that lives in C, with the
 * same results as the Python handlers they mirror (host/vmm.py's dispatch,
 * host/info.py, host/io.py with devices/serial.py; the other families in
 * kvm.c, cpuid.c, msr.c).  Python enables each one only while the host
 * still uses that handler and device (struct tdxsim_host); anything else is
 * declined and served by Python.
 */
#include <string.h>

#include "../native.h"

/* The UART's read side: devices/serial.py Serial.read. */
static uint64_t serial_read(const struct tdxsim_serial *s, unsigned offset)
{
    if (offset == SERIAL_LSR)
        return SERIAL_LSR_READY;
    if (offset == SERIAL_THR)
        return 0;
    return s->regs[offset];
}

/* Instruction.IO (host/io.py) on the UART's ports. */
static bool serial_io(struct tdxsim_serial *s, const uint64_t view[16],
                      struct tdxsim_reply *reply)
{
    uint64_t size = view[REG_R12], direction = view[REG_R13], port = view[REG_R14] & 0xFFFF;

    if (!(size < 64 && IO_SIZE_BITS >> size & 1) || (direction != IO_READ && direction != IO_WRITE))
        return tdxsim_status(reply, VMCALL_INVALID_OPERAND);
    if (port < s->base || port >= s->base + 8)
        return false;
    unsigned offset = port - s->base;
    uint64_t mask = (1ull << 8 * size) - 1;
    if (direction == IO_READ) {
        tdxsim_set(reply, REG_R11, serial_read(s, offset) & mask);
        return tdxsim_status(reply, VMCALL_SUCCESS);
    }
    uint8_t byte = view[REG_R15] & mask & 0xFF;
    if (offset == SERIAL_THR && !(s->regs[SERIAL_LCR] & SERIAL_LCR_DLAB)) {
        if (s->length == s->capacity)
            return false; /* Python grows the buffer */
        s->output[s->length++] = byte;
    } else {
        s->regs[offset] = byte;
    }
    return tdxsim_status(reply, VMCALL_SUCCESS);
}

/* GetTdVmCallInfo (host/info.py): leaf 0 all zeros, leaf 1 the bitmap
 * Python computed for this host, any other leaf INVALID_OPERAND. */
static bool info(const struct tdxsim_host *h, const uint64_t view[16],
                 struct tdxsim_reply *reply)
{
    uint64_t leaf = view[REG_R12];

    if (leaf > 1)
        return tdxsim_status(reply, VMCALL_INVALID_OPERAND);
    tdxsim_set(reply, REG_R11, leaf == 1 ? h->info_bitmap : 0);
    tdxsim_set(reply, REG_R12, 0);
    tdxsim_set(reply, REG_R13, 0);
    tdxsim_set(reply, REG_R14, 0);
    return tdxsim_status(reply, VMCALL_SUCCESS);
}

/* host/vmm.py Host.handle: R10 != 0 is a KVM hypercall, else R11 picks
 * the GHCI sub-function. */
bool tdxsim_host_serve(struct tdxsim_host *h, const uint64_t view[16],
                       struct tdxsim_reply *reply)
{
    if (h->answer_all) {
        reply->mask = h->answer_mask;
        memcpy(reply->gprs, h->answer, sizeof(reply->gprs));
        return true;
    }
    if (view[REG_R10] != 0)
        return tdxsim_kvm(h, view, reply);
    switch (view[REG_R11]) {
    case SUBFN_IO:
        return h->serial_io && serial_io(h->serial, view, reply);
    case SUBFN_CPUID:
        return h->cpuid && tdxsim_cpuid(h, view, reply);
    case SUBFN_RDMSR:
        return h->rdmsr && tdxsim_rdmsr(h, view, reply);
    case SUBFN_WRMSR:
        return h->wrmsr && tdxsim_wrmsr(h, view, reply);
    case SUBFN_GET_TD_VM_CALL_INFO:
        return h->info && info(h, view, reply);
    default:
        return false;
    }
}
