/*
 * Instruction.IO and #VE.RequestMMIO in C, as host/io.py and host/mmio.py
 * dispatch them: KVM's operand checks, then the first device in the
 * host's table that claims the port or GPA range (devices/devices.c); an
 * unclaimed port reads all ones, an unclaimed GPA reads 0, and writes to
 * either go nowhere.  A device Python serves declines the exit.
 */
#include "../native.h"

static const struct tdxsim_device *claim(const struct tdxsim_devices *t, uint64_t first,
                                         uint64_t size)
{
    for (uint64_t i = 0; i < t->count; i++) {
        const struct tdxsim_device *d = &t->devices[i];
        if (d->first <= first && first + size <= d->end)
            return d;
    }
    return NULL;
}

/* An access of `size` bytes at `address` (to device d, or to nothing). */
static bool access(const struct tdxsim_device *d, bool read, uint64_t address, uint64_t size,
                   uint64_t data, uint64_t nothing, struct tdxsim_reply *reply)
{
    uint64_t mask = size >= 8 ? ~0ull : (1ull << 8 * size) - 1, value = nothing;

    if (read) {
        if (d && !tdxsim_device_read(d, address, size, &value))
            return false;
        tdxsim_set(reply, REG_R11, value & mask);
    } else if (d && !tdxsim_device_write(d, address, size, data & mask)) {
        return false;
    }
    return tdxsim_status(reply, VMCALL_SUCCESS);
}

bool tdxsim_io(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply)
{
    uint64_t size = view[REG_R12], direction = view[REG_R13], port = view[REG_R14] & 0xFFFF;

    if (!(size < 64 && IO_SIZE_BITS >> size & 1) || (direction != IO_READ && direction != IO_WRITE))
        return tdxsim_status(reply, VMCALL_INVALID_OPERAND);
    /* a device claims a port when the access starts in its range (io.py) */
    return access(claim(h->io_devices, port, 1), direction == IO_READ, port, size,
                  view[REG_R15], ~0ull, reply);
}

/* host/mmio.py is_shared_gpa */
static bool shared(const struct tdxsim_host *h, uint64_t gpa)
{
    return gpa < 1ull << h->gpaw && gpa >> (h->gpaw - 1) & 1;
}

bool tdxsim_mmio(struct tdxsim_host *h, const uint64_t view[16], struct tdxsim_reply *reply)
{
    uint64_t size = view[REG_R12], direction = view[REG_R13], gpa = view[REG_R14];

    if (!(size < 64 && MMIO_SIZE_BITS >> size & 1)
        || (direction != MMIO_READ && direction != MMIO_WRITE)
        || !shared(h, gpa) || !shared(h, gpa + size - 1))
        return tdxsim_status(reply, VMCALL_INVALID_OPERAND);
    gpa &= ~(1ull << (h->gpaw - 1));
    return access(claim(h->mmio_devices, gpa, size), direction == MMIO_READ, gpa, size,
                  view[REG_R15], 0, reply);
}
