"""tdxsim's own pages in guest memory: every TD reserves GPA 0..RESERVED_END,
and guest images start above it.  Page 0 stays unmapped (NULL)."""

PAGE = 0x1000
# td.call() returns here.  Not page-aligned: Unicorn probes the page before a
# page-aligned stop address.
RETURN_TRAP = 0x1800
GDT = 0x2000  # tdxsim's flat GDT (vcpu/interrupts.py)
STUB_IDT = 0x3000  # an IDT for tools, used when the guest has not loaded one
STUB_HANDLER = 0x4000  # its handler: iretq
# The ACPI multiprocessor wakeup mailbox (guest/mp.S): where a firmware's
# MADT would say it is.  Private; zero (no command) when the TD starts.
MP_MAILBOX = 0x5000
WAKER_STUB = 0x6000  # the explorer's waking vCPU runs its code here (explore.py)
PAGE_TABLES = 0x8000  # tdxsim's default page tables, 3 pages (vcpu/paging.py)
RESERVED_END = 0x10000

# tdxsim's default page tables (a documented convention, not TDX ABI;
# vcpu/paging.py): linear address g is private GPA g, and SHARED_WINDOW + g is
# shared GPA g | shared bit, for g below WINDOW_SIZE, in 1 GiB pages.  With
# GPAW 48 the window address is the sign-extended shared GPA itself.
SHARED_WINDOW = 0xFFFF_8000_0000_0000
WINDOW_SIZE = 512 << 30
