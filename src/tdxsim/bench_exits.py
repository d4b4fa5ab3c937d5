"""`tdxsim bench` rows per sub-function: what a guest lives with.

One guest loop per TD exit the default host serves, run on a default TD
(whatever path the host takes: compiled where host/fast.c serves it,
Python otherwise), and again with the sub-function's handler replaced by a
Python wrapper of the same handler (a user's handler: always Python).
Each is reported against the minimal-hook baseline measured in the same
run (bare Unicorn + a Python TDCALL hook that only advances RIP).
Targets (issue 14): a default sub-function >= 1 M calls/s and >= 5x the
baseline; a replaced Python handler >= 0.75x.
"""
from __future__ import annotations

import time

from . import abi
from .abi import KvmHc, SubFn
from .devices.debug_exit import DEBUG_EXIT_PORT
from .devices.mmio_device import MMIO_DEVICE_BASE
from .exits import VmResume

SHARED = abi.shared_bit(abi.GPAW_DEFAULT)
UNCLAIMED_PORT = 0x80  # POST codes: no device of the default host claims it
UNCLAIMED_GPA = 0xC000_0000  # below 4 GiB, no RAM and no MMIO device there
NOTIFY_VECTOR = 0x40
PENDING_VECTOR = 0x30  # posted before the HLT loop; IF = 0 keeps it pending

# (row name, R10, R11, R12, R13, R14, R15): R10 != 0 is a KVM hypercall.
LOOPS = [
    ("KVM_HC_VAPIC_POLL_IRQ", KvmHc.VAPIC_POLL_IRQ, 0, 0, 0, 0, 0),
    ("KVM_HC_SCHED_YIELD", KvmHc.SCHED_YIELD, 0, 0, 0, 0, 0),
    ("CPUID leaf 0", 0, SubFn.CPUID, 0, 0, 0, 0),
    ("CPUID leaf 1", 0, SubFn.CPUID, 1, 0, 0, 0),
    ("RDMSR IA32_APIC_BASE", 0, SubFn.RDMSR, abi.MSR_IA32_APIC_BASE, 0, 0, 0),
    ("RDMSR IA32_TSC", 0, SubFn.RDMSR, abi.MSR_IA32_TSC, 0, 0, 0),
    ("WRMSR TSC deadline (0: disarm)", 0, SubFn.WRMSR, abi.MSR_IA32_TSC_DEADLINE, 0, 0, 0),
    ("WRMSR x2APIC EOI", 0, SubFn.WRMSR, abi.MSR_X2APIC_EOI, 0, 0, 0),
    ("WRMSR APIC LVT timer (masked)", 0, SubFn.WRMSR, abi.MSR_X2APIC_LVT_TIMER, 1 << 16, 0, 0),
    ("WRMSR APIC timer initial count (0: stop)", 0, SubFn.WRMSR,
     abi.MSR_X2APIC_TIMER_INITIAL_COUNT, 0, 0, 0),
    ("WRMSR APIC timer divide", 0, SubFn.WRMSR, abi.MSR_X2APIC_TIMER_DIVIDE_CONFIG, 0xB, 0, 0),
    ("RDMSR APIC timer current count", 0, SubFn.RDMSR, abi.MSR_X2APIC_TIMER_CURRENT_COUNT,
     0, 0, 0),
    ("IO write COM1", 0, SubFn.IO, 1, abi.IO_WRITE, 0x3F8, 0x2E),
    ("IO read COM1 LSR", 0, SubFn.IO, 1, abi.IO_READ, 0x3FD, 0),
    ("IO read, unclaimed port", 0, SubFn.IO, 1, abi.IO_READ, UNCLAIMED_PORT, 0),
    ("MMIO read, bundled device", 0, SubFn.MMIO, 4, abi.MMIO_READ,
     SHARED | MMIO_DEVICE_BASE, 0),
    ("MMIO write, bundled device", 0, SubFn.MMIO, 4, abi.MMIO_WRITE,
     SHARED | MMIO_DEVICE_BASE + 8, 7),
    ("MMIO read, unclaimed GPA", 0, SubFn.MMIO, 4, abi.MMIO_READ, SHARED | UNCLAIMED_GPA, 0),
    ("GetTdVmCallInfo", 0, SubFn.GET_TD_VM_CALL_INFO, 0, 0, 0, 0),
    ("SetupEventNotifyInterrupt", 0, SubFn.SETUP_EVENT_NOTIFY_INTERRUPT, NOTIFY_VECTOR,
     0, 0, 0),
    ("HLT, interrupt pending", 0, SubFn.HLT, 0, 0, 0, 0),
]
assert UNCLAIMED_PORT != DEBUG_EXIT_PORT


def source() -> str:
    """One function per loop, `loop_<i>(count)`: count TDG.VP.VMCALLs that
    expose R10-R15 (RCX = 0xFC00), the inputs set again before each."""
    lines = []
    for i, (_, *regs) in enumerate(LOOPS):
        lines += [f"        .globl loop_{i}", f"loop_{i}:", "        mov %rdi, %rbx",
                  "1:      xor %eax, %eax", "        mov $0xFC00, %ecx"]
        lines += [f"        movabs ${value:#x}, %r{10 + n}" for n, value in enumerate(regs)]
        lines += ["        tdcall", "        dec %rbx", "        jnz 1b", "        ret"]
    return "\n".join(lines) + "\n"


# A #VE round trip: `in` from the unclaimed port raises #VE; the guest
# library's handler (guest/ve_handler.S) calls TDG.VP.VEINFO.GET, then
# Instruction.IO, and returns with IRETQ past the `in`.
VE_LOOP = """
        .globl  ve_setup, ve_loop
ve_setup:
        lea     ve_idt(%rip), %rdi
        mov     $20, %esi
        lea     tdx_ve_entry(%rip), %rdx
        call    tdx_set_gate
        lidt    ve_idt_ptr(%rip)
        ret
ve_loop:
        mov     %rdi, %rbx
1:      in      $0x80, %al
        dec     %rbx
        jnz     1b
        ret
        .section .rodata
ve_idt_ptr:
        .word   256 * 16 - 1
        .quad   ve_idt
        .data
        .balign 16
ve_idt: .fill   256 * 16, 1, 0
"""
VE_ROUNDS = 2000


def ve_round_trips(td, median) -> float:
    """Round trips/s of VE_LOOP (td built from it, ve_setup called)."""
    def one():
        result = td.call_result("ve_loop", VE_ROUNDS, max_insns=1 << 40, timeout=0)
        if result.reason != "return":
            raise RuntimeError(f"bench #VE loop: {result.describe()}")

    return VE_ROUNDS / median(one)


def replace_handlers(host) -> None:
    """Every handler becomes a Python wrapper of itself: the host then
    serves each exit as it serves a handler a user replaced."""
    for table in (host.handlers, host.kvm_handlers):
        for key, handler in list(table.items()):
            table[key] = lambda host, exit, handler=handler: handler(host, exit)


def constant_handler(host) -> None:
    """The leanest user handler: KVM_HC_VAPIC_POLL_IRQ answered 0."""
    host.kvm_handlers[KvmHc.VAPIC_POLL_IRQ] = lambda host, exit: VmResume(gprs={abi.R10: 0})


def calls_per_s(td, i: int, median) -> float:
    """Calls/s of loop i: the count sized so that one pass takes ~40 ms."""
    def one(count: int) -> float:
        td.lapic.post(PENDING_VECTOR)  # for the HLT loop; the others ignore it
        result = td.call_result(f"loop_{i}", count, max_insns=1 << 40, timeout=0)
        if result.reason != "return":
            raise RuntimeError(f"bench loop {LOOPS[i][0]}: {result.describe()}")
        return result

    start = time.perf_counter()
    one(1000)
    count = max(1000, min(400_000, int(1000 * 0.04 / (time.perf_counter() - start))))
    return count / median(lambda: one(count))


def measure(row, make_td, hook_rate, median) -> list[dict]:
    """A row per loop on the default TD, and per loop with Python handlers.
    hook_rate() measures the baseline again next to each row, so that a
    ratio compares two figures taken under the same load."""
    code = source()
    default, python, lean = make_td(code), make_td(code), make_td(code)
    replace_handlers(python.host)
    constant_handler(lean.host)
    hook = "bare Unicorn + Python TDCALL hook (RIP += 4 only)"
    rows = []
    for td, label, target, met in (
            (default, "exit: {}", ">= 1M/s and >= 5x", lambda r, b: r >= 1e6 and r >= 5 * b),
            (python, "  Python handler: {}", ">= 0.75x", lambda r, b: r >= 0.75 * b)):
        for i, (name, *_) in enumerate(LOOPS):
            base, rate = hook_rate(), calls_per_s(td, i, median)
            rows.append(row(label.format(name), "calls/s", rate, base, hook, target,
                            met(rate, base)))
    base, rate = hook_rate(), calls_per_s(lean, 0, median)
    rows.append(row("replaced Python handler, constant answer", "calls/s", rate, base,
                    hook, ">= 150k/s and >= 0.75x", rate >= 150e3 and rate >= 0.75 * base))
    ve = make_td(VE_LOOP)
    ve.call("ve_setup")
    base, rate = hook_rate(), ve_round_trips(ve, median)
    rows.append(row("#VE round trip (IN via the guest library's handler)", "round trips/s",
                    rate, base, hook, "-", None))
    return rows
