/*
 * The registers of the bundled devices in C, for the host's compiled IO
 * and MMIO paths (host/io.c): the same reads and writes as the Python
 * models beside this file (serial.py, pm_timer.py, pci_host.py,
 * pci_ecam.py, mmio_device.py), on the same storage.  A device that cannot
 * take an access here returns false before changing anything.
 */
#include <string.h>

#include "../native.h"

static uint64_t load(const uint8_t *bytes, uint64_t n)
{
    uint64_t value = 0;

    for (uint64_t i = 0; i < n; i++)
        value |= (uint64_t)bytes[i] << 8 * i;
    return value;
}

static void store(uint8_t *bytes, uint64_t n, uint64_t value)
{
    for (uint64_t i = 0; i < n; i++)
        bytes[i] = value >> 8 * i;
}

static uint64_t mask_of(uint64_t size)
{
    return size >= 8 ? ~0ull : (1ull << 8 * size) - 1;
}

/* serial.py Serial.read / write */
static uint64_t serial_read(const struct tdxsim_serial *s, uint64_t offset)
{
    if (offset == SERIAL_LSR)
        return SERIAL_LSR_READY;
    if (offset == SERIAL_THR)
        return 0;
    return s->regs[offset];
}

static bool serial_write(struct tdxsim_serial *s, uint64_t offset, uint64_t value)
{
    if (offset == SERIAL_THR && !(s->regs[SERIAL_LCR] & SERIAL_LCR_DLAB)) {
        if (s->length == s->capacity)
            return false; /* Python grows the buffer */
        s->output[s->length++] = value & 0xFF;
    } else {
        s->regs[offset] = value & 0xFF;
    }
    return true;
}

/* pm_timer.py PmTimer.read / write */
static uint64_t pm_read(const struct tdxsim_pm_timer *pm, uint64_t offset, uint64_t size)
{
    if (offset >= PM_TIMER && offset < PM_TIMER + 4) {
        uint64_t ticks = (__uint128_t)tdxsim_now_ns(pm->clock) * PM_TIMER_HZ / 1000000000u
                         & PM_TIMER_MASK;
        return ticks >> 8 * (offset - PM_TIMER) & mask_of(size);
    }
    return load(pm->regs + offset, size < PM_SIZE - offset ? size : PM_SIZE - offset);
}

static void pm_write(struct tdxsim_pm_timer *pm, uint64_t offset, uint64_t size, uint64_t value)
{
    if (offset >= PM_TIMER && offset < PM_TIMER + 4)
        return; /* read-only */
    store(pm->regs + offset, size < PM_SIZE - offset ? size : PM_SIZE - offset, value);
}

static const struct tdxsim_pci_function *pci_function(const struct tdxsim_pci *pci,
                                                      uint64_t bdf)
{
    for (uint64_t i = 0; i < pci->count; i++)
        if (pci->functions[i].bdf == bdf)
            return &pci->functions[i];
    return NULL;
}

/* pci_host.py writable: the bits of config byte `offset` a write changes. */
static uint8_t pci_writable(uint64_t offset)
{
    if (offset >= PCI_HEADER_END || offset == PCI_CACHE_LINE_SIZE || offset == PCI_INTERRUPT_LINE)
        return 0xFF;
    if (offset == PCI_COMMAND || offset == PCI_COMMAND + 1)
        return PCI_COMMAND_WRITABLE >> 8 * (offset - PCI_COMMAND) & 0xFF;
    return 0;
}

/* pci_host.py PciHost.store: only the writable bits of each byte change. */
static void pci_store(const struct tdxsim_pci_function *f, uint64_t offset, uint64_t size,
                      uint64_t value)
{
    for (uint64_t i = 0; i < size; i++) {
        uint64_t at = offset + i;
        uint8_t mask;

        if (at >= f->length)
            continue;
        mask = pci_writable(at);
        f->space[at] = (f->space[at] & ~mask) | ((value >> 8 * i) & mask);
    }
}

/* pci_host.py PciHost._target: the function CONFIG_ADDRESS selects, and
 * the offset of `port` in its space. */
static const struct tdxsim_pci_function *pci_target(const struct tdxsim_pci *pci,
                                                    uint64_t port, uint64_t *offset)
{
    uint64_t a = pci->address;

    if (!(a >> 31))
        return NULL;
    *offset = (a & 0xFC) + port - PCI_CONFIG_DATA;
    return pci_function(pci, a >> 8 & 0xFFFF);
}

static uint64_t pci_read(const struct tdxsim_pci *pci, uint64_t port, uint64_t size)
{
    const struct tdxsim_pci_function *f;
    uint64_t offset, value = mask_of(size);

    if (port == PCI_CONFIG_ADDRESS && size == 4)
        return pci->address;
    if (port < PCI_CONFIG_DATA || !(f = pci_target(pci, port, &offset)))
        return value;
    for (uint64_t i = 0; i < size && offset + i < f->length; i++) /* short: 0xFF padding */
        value = (value & ~(0xFFull << 8 * i)) | (uint64_t)f->space[offset + i] << 8 * i;
    return value;
}

static void pci_write(struct tdxsim_pci *pci, uint64_t port, uint64_t size, uint64_t value)
{
    const struct tdxsim_pci_function *f;
    uint64_t offset;

    if (port == PCI_CONFIG_ADDRESS && size == 4)
        pci->address = value & PCI_ADDRESS_MASK;
    else if (port >= PCI_CONFIG_DATA && (f = pci_target(pci, port, &offset)))
        pci_store(f, offset, size, value);
}

/* pci_ecam.py: 1 MiB per bus, 4 KiB per function; no function, or an
 * offset past its space, reads all ones; a read at its end is short. */
static uint64_t ecam_read(const struct tdxsim_pci *pci, uint64_t offset, uint64_t size)
{
    const struct tdxsim_pci_function *f = pci_function(pci, offset >> 12 & 0xFFFF);
    uint64_t at = offset & 0xFFF;

    if (!f || at >= f->length)
        return mask_of(size);
    return load(f->space + at, size < f->length - at ? size : f->length - at);
}

static void ecam_write(struct tdxsim_pci *pci, uint64_t offset, uint64_t size, uint64_t value)
{
    const struct tdxsim_pci_function *f = pci_function(pci, offset >> 12 & 0xFFFF);

    if (f)
        pci_store(f, offset & 0xFFF, size, value);
}

bool tdxsim_device_read(const struct tdxsim_device *d, uint64_t address, uint64_t size,
                        uint64_t *value)
{
    uint64_t offset = address - d->first;

    switch (d->kind) {
    case DEVICE_SERIAL:
        *value = serial_read(d->state, offset);
        return true;
    case DEVICE_PM_TIMER:
        *value = pm_read(d->state, offset, size);
        return true;
    case DEVICE_PCI:
        *value = pci_read(d->state, address, size);
        return true;
    case DEVICE_ECAM:
        *value = ecam_read(d->state, offset, size);
        return true;
    case DEVICE_MMIO_SCRATCH:
        *value = load((const uint8_t *)d->state + offset, size);
        return true;
    default:
        return false;
    }
}

bool tdxsim_device_write(const struct tdxsim_device *d, uint64_t address, uint64_t size,
                         uint64_t value)
{
    uint64_t offset = address - d->first;

    switch (d->kind) {
    case DEVICE_SERIAL:
        return serial_write(d->state, offset, value);
    case DEVICE_PM_TIMER:
        pm_write(d->state, offset, size, value);
        return true;
    case DEVICE_PCI:
        pci_write(d->state, address, size, value);
        return true;
    case DEVICE_ECAM:
        ecam_write(d->state, offset, size, value);
        return true;
    case DEVICE_MMIO_SCRATCH:
        if (offset >= MMIO_DEVICE_ID_SIZE)
            store((uint8_t *)d->state + offset, size, value);
        return true;
    default:
        return false;
    }
}
