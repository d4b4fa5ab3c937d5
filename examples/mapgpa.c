/* mapgpa.c - convert a buffer to shared and back, then accept it.
 *
 *   tdxsim run --trace examples/mapgpa.c
 *
 * MapGPA (GHCI, spec 4.4) makes two pages shared: the guest writes a byte
 * through the shared alias.  MapGPA back to private leaves the pages
 * pending; TDG.MEM.PAGE.ACCEPT (spec 1.3) makes them usable again, and an
 * accepted page reads as zeros: nothing the host saw survives. */
#include <tdx.h>

#define PAGE 4096

static uint8_t buffer[2 * PAGE] __attribute__((aligned(PAGE)));

static int fail(const char *what, uint64_t status)
{
    tdx_puts("mapgpa: ");
    tdx_puts(what);
    tdx_puts(" failed, status ");
    tdx_put_hex(status);
    tdx_puts("\n");
    return 1;
}

int main(void)
{
    uint64_t start = (uint64_t)buffer, end = start + sizeof buffer, status;
    volatile uint8_t *shared = tdx_shared(buffer);

    buffer[0] = 0xAA;  /* private data, gone after the conversion */
    status = tdx_map_gpa(start, end, 1);
    if (status)
        return fail("MapGPA to shared", status);
    shared[0] = 0x5A;
    tdx_puts("mapgpa: wrote ");
    tdx_put_hex(shared[0]);
    tdx_puts(" through the shared alias\n");

    status = tdx_map_gpa(start, end, 0);
    if (status)
        return fail("MapGPA to private", status);
    status = tdx_accept_memory(start, end);
    if (status)
        return fail("TDG.MEM.PAGE.ACCEPT", status);
    for (uint64_t i = 0; i < sizeof buffer; i++)
        if (buffer[i])
            return fail("zeroing on accept", buffer[i]);
    tdx_puts("mapgpa: private again, accepted and zeroed\n");
    return 0;
}
