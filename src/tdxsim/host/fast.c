/*
 * The host's compiled fast paths: hypercalls KVM answers from registers
 * alone, with the same results as the Python handlers they mirror
 * (host/kvm.py vapic_poll_irq, host/io.py with devices/serial.py).  Python
 * enables each one only while the host still uses that handler and device
 * (struct tdxsim_host); anything else is declined and served by Python.
 */
#include <string.h>

#include "../native.h"

static bool status(struct tdxsim_reply *reply, uint64_t r10)
{
    reply->mask |= 1u << REG_R10;
    reply->gprs[REG_R10] = r10;
    return true;
}

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
        return status(reply, VMCALL_INVALID_OPERAND);
    if (port < s->base || port >= s->base + 8)
        return false;
    unsigned offset = port - s->base;
    uint64_t mask = (1ull << 8 * size) - 1;
    if (direction == IO_READ) {
        reply->mask |= 1u << REG_R11;
        reply->gprs[REG_R11] = serial_read(s, offset) & mask;
        return status(reply, VMCALL_SUCCESS);
    }
    uint8_t byte = view[REG_R15] & mask & 0xFF;
    if (offset == SERIAL_THR && !(s->regs[SERIAL_LCR] & SERIAL_LCR_DLAB)) {
        if (s->length == s->capacity)
            return false; /* Python grows the buffer */
        s->output[s->length++] = byte;
    } else {
        s->regs[offset] = byte;
    }
    return status(reply, VMCALL_SUCCESS);
}

bool tdxsim_host_serve(struct tdxsim_host *h, const uint64_t view[16],
                       struct tdxsim_reply *reply)
{
    if (h->answer_all) {
        reply->mask = h->answer_mask;
        memcpy(reply->gprs, h->answer, sizeof(reply->gprs));
        return true;
    }
    if (view[REG_R10] != 0)  /* a KVM hypercall (host/kvm.py) */
        return view[REG_R10] == KVM_HC_VAPIC_POLL_IRQ && h->vapic_poll_irq
               && status(reply, 0);
    if (view[REG_R11] == SUBFN_IO && h->serial_io)
        return serial_io(h->serial, view, reply);
    return false;
}
