/*
 * The host side of the state native.h describes: the devices and the host's
 * tables (CPUID, MSRs, which hypercalls C serves) as the C files of host/ and
 * devices/ read them.  Each struct has a ctypes mirror in tdxsim/native.py.
 * Included by native.h only.
 */
#ifndef TDXSIM_NATIVE_HOST_H
#define TDXSIM_NATIVE_HOST_H

/* devices/serial.py: the UART's registers and transmitted bytes. */
struct tdxsim_serial {
    uint64_t base;        /* first I/O port */
    uint8_t regs[8];
    uint8_t *output;
    uint64_t length, capacity;
};

/* devices/pm_timer.py: the ACPI PM registers (Python's bytearray) and the
 * clock the timer counts. */
struct tdxsim_pm_timer {
    uint8_t *regs;
    struct tdxsim_clock *clock;
};

/* devices/pci_host.py: CONFIG_ADDRESS and the config spaces (Python's
 * bytearrays) by bus << 8 | device << 3 | function. */
#define PCI_FUNCTIONS 32
struct tdxsim_pci_function {
    uint64_t bdf;
    uint8_t *space;
    uint64_t length;
};
struct tdxsim_pci {
    uint64_t address;
    uint64_t count;
    struct tdxsim_pci_function functions[PCI_FUNCTIONS];
};

/* host/io.c, host/mmio.c: the host's device tables as C sees them, in
 * Python's order (the first device that claims an address wins). */
enum tdxsim_device_kind {
    DEVICE_PYTHON,      /* served by Python: the exit is declined */
    DEVICE_SERIAL,      /* struct tdxsim_serial */
    DEVICE_PM_TIMER,    /* struct tdxsim_pm_timer */
    DEVICE_PCI,         /* struct tdxsim_pci: ports 0xCF8-0xCFF */
    DEVICE_ECAM,        /* struct tdxsim_pci: the ECAM window */
    DEVICE_MMIO_SCRATCH /* uint8_t[]: devices/mmio_device.py's registers */
};
#define DEVICE_SLOTS 16
struct tdxsim_device {
    uint64_t first, end; /* ports or GPAs [first, end) */
    uint64_t kind;
    void *state;
};
struct tdxsim_devices {
    uint64_t count;
    struct tdxsim_device devices[DEVICE_SLOTS];
};

/* host/cpuid.c: the host's CPUID table (host/cpuid.py CpuidTable), copied
 * here by Python whenever it changes. */
#define CPUID_ENTRIES 256
struct tdxsim_cpuid_entry {
    uint64_t leaf, subleaf;
    uint64_t regs[4]; /* EAX, EBX, ECX, EDX */
};
struct tdxsim_cpuid {
    uint64_t count;
    struct tdxsim_cpuid_entry entries[CPUID_ENTRIES];
};

/* host/msr.c: the host's MSR store (host/msr.py MsrStore).  Each MSR's
 * value lives here, in an open-addressed table keyed by index + 1; an MSR
 * with Python callbacks is served by Python, except the local APIC's
 * registers, which devices/lapic.c serves on the APIC's native state. */
#define MSR_SLOTS 512
#define MSR_WRITABLE 1u
#define MSR_PYTHON 2u /* read or written through Python callbacks */
struct tdxsim_msr {
    uint64_t key;   /* index + 1; 0: empty slot */
    uint64_t value;
    uint64_t flags;
    uint64_t reserved; /* a write with any of these bits set fails */
    struct tdxsim_clock *clock; /* non-NULL: reads as this clock's now (IA32_TSC) */
    struct tdxsim_lapic *apic;  /* non-NULL: a register of this APIC (devices/lapic.c) */
};
struct tdxsim_msrs {
    struct tdxsim_msr slots[MSR_SLOTS];
};

/* host/fast.c: which hypercalls the host lets the compiled path serve.
 * Python sets these when a run starts from the host's handler tables, so a
 * handler or device the user replaced is always served by Python. */
struct tdxsim_host {
    uint64_t io, mmio;   /* Instruction.IO and #VE.RequestMMIO are host/io.py's and mmio.py's */
    struct tdxsim_devices *io_devices, *mmio_devices; /* NULL: not in C */
    uint64_t gpaw; /* for the shared-GPA checks of #VE.RequestMMIO */
    /* A host that answers every exit with the same registers
     * (host/constant.py ConstantHost, the checker's marker host): */
    uint64_t answer_all, answer_mask, answer[16];
    uint64_t info;          /* GetTdVmCallInfo is host/info.py's ... */
    uint64_t info_bitmap;   /* ... and its leaf-1 answer for this host */
    struct tdxsim_cpuid *cpuid_table; /* the host's CPUID table (NULL: not in C) ... */
    uint64_t cpuid;             /* ... and Instruction.CPUID is host/cpuid.py's */
    struct tdxsim_msrs *msrs;   /* the MSR store (NULL: not in C) ... */
    uint64_t rdmsr, wrmsr;      /* ... and RDMSR/WRMSR are host/msr.py's */
    uint64_t kvm;          /* bit n: KVM hypercall n is host/kvm.py's, and served in C */
    uint64_t kvm_table;    /* bit n: n is in the host's KVM table */
    uint64_t kvm_unknown;  /* every number in that table is below 64 */
    uint64_t enforce_pv_cpuid, vcpu_apic_id;
    uint64_t notify;        /* SetupEventNotifyInterrupt is host/quote.py's ... */
    uint64_t notify_vector; /* ... and the vector it registered (0: none; Host.notify_vector) */
    uint64_t hlt;           /* Instruction.HLT is host/halt.py's ... */
    struct tdxsim_lapic *lapic; /* ... on the calling vCPU's local APIC (host/halt.c) */
};

#endif
