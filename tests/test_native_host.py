"""Each compiled host rule (host/fast.c, kvm.c, cpuid.c, msr.c) against
its Python reference (TD(native=False)), on random exits: identical
registers, exits, console, time and host state.  The expected values of the
rules themselves are tested against the spec in test_host_ghci.py and
test_ghci_more.py, on both paths.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from conftest import compiled
from tdxsim import TD, VmResume
from tdxsim.firmware import platform

pytestmark = compiled
GUESTS = Path(__file__).parent / "guests"
CPUID, RDMSR, WRMSR, INFO, NOTIFY = 10, 31, 32, 0x10000, 0x10004  # spec 4.3, 4.7: R11
KVM_NUMBERS = [1, 2, 3, 5, 9, 10, 11, 1000]  # spec 5 (12, MAP_GPA_RANGE, is Python's)
# MSRs of the default host (plain, read-only, the TSC, and the APIC timer's,
# whose callbacks Python serves) and some it does not have.
MSRS = [0x10, 0x1B, 0x3A, 0x1A0, 0xC000_0080, 0x6E0, 0x832, 0x838, 0x839, 0x83E, 0x80B,
        0x277, 0x123, 0x2FF, 0xFE]
IO, MMIO = 30, 48
PORTS = [[0x3F8 + i for i in range(8)],  # COM1
         [0x80, 0x81, 0x1234, 0xFFFF],  # nobody's
         [0xF4, 0x70, 0x71, 0x510, 0x402],  # Python's devices: debug exit, CMOS, fw_cfg, console
         [0xCF8, 0xCF8, 0xCF9, 0xCFC, 0xCFD, 0xCFE, 0xCFF, 0xCFB],  # PCI configuration
         [0x600, 0x602, 0x604, 0x608, 0x608, 0x609, 0x60B, 0x67E, 0x67F]]  # ACPI PM
# the MMIO scratch device, the ECAM window (host bridge, LPC bridge, nothing), unclaimed
GPAS = [0xFEB0_0000, 0xB000_0000, 0xB00F_8000, 0xB010_0000, 0xBFFF_F000, 0xC000_0000, 0xFEC0_0000]
SHARED = 1 << 47
SELECTS = [0xFC00] * 8 + [0x7C00, 0x3C00, 0x1C00, 0xDC00, 0xFFCC, 0x0C00]


def _block(rng: random.Random, family: str) -> list[int]:
    pick, wide = rng.choice, lambda: rng.getrandbits(64)  # noqa: E731
    r10, r11, r12, r13, r14, r15 = 0, 0, wide(), wide(), wide(), wide()
    if family == "info":
        r11, r12 = pick([INFO, NOTIFY]), pick([0, 0, 1, 1, 2, 31, 32, 0x40, 255, 256, wide()])
    elif family == "cpuid":
        r11 = CPUID
        r12 = pick([0, 1, 7, 0x15, 0x4000_0000, 0x4000_0001, 0x8000_0008, 0x99, wide()])
        r12 |= pick([0, 0, wide() << 32 & (1 << 64) - 1])
        r13 = pick([0, 0, 1, 2, wide()])
    elif family == "msr":
        r11 = pick([RDMSR, WRMSR])
        r12 = pick(MSRS) | pick([0, 0, 0, 1 << 40])
        r13 = pick([0, 1, wide(), 0x10000])
    elif family == "io":
        r11, r12, r13 = IO, pick([1, 1, 2, 4, 4, 4, 3, 0, 8]), pick([0, 0, 1, 1, 2])
        r14 = pick(pick(PORTS)) | pick([0, 0, 0, 1 << 16])
        r15 = pick([wide(), 0x41, 0x80, rng.randrange(256)] + [  # a CONFIG_ADDRESS value
            0x8000_0000 | pick([0, 0xF800, 0x1_0000]) | rng.randrange(256)] * 3)
    elif family == "mmio":
        r11, r12, r13 = MMIO, pick([1, 2, 4, 8, 8, 3, 0]), pick([0, 0, 1, 1, 2])
        r14 = pick(GPAS) + pick([0, 4, 8, 0x10, 0x3C, 0x60, 0xFC, 0xFE, 0x100, 0xFF8,
                                 rng.randrange(0x1000)])
        r14 |= pick([SHARED] * 6 + [0, 1 << 48, 1 << 63])
    elif family == "python":  # what Python answers: through the bridge on the compiled path
        r11 = pick([12, 0x10003, 0x10001, 0x10004, 0x10002, 999, 777, 30, CPUID, RDMSR])
        r12 = pick([0, 1, 0x40, 0x6E0, 0x832, 0x8000_0000_0000_0000, wide()])
        r13 = pick([0, 1, 0x1000, wide()]) if r11 != 30 else 1
        r14 = pick([0xF4, 0x3F8, wide()])
    else:  # kvm
        r10 = pick(KVM_NUMBERS + [wide()])
        r11, r12 = pick([0, 1, 2, wide()]), pick([0, 1, wide()])
        r13 = pick([0, 0, 1, 64, wide()])
        r14 = pick([0x30, 0x30 | 1 << 11, 0x30 | 1 << 18, 0x530, wide()])  # 0x530: INIT, not modelled
    rcx = pick(SELECTS)
    return [0, rcx, wide(), wide(), 0, wide(), wide(), wide(), wide(), wide(),
            r10, r11, r12, r13, r14, r15]


def _setup(td: TD, variant: int) -> None:
    """The same host configuration on both TDs: table edits, PV CPUID
    enforced or not, another APIC ID; the firmware's devices."""
    host = td.host
    if variant:
        platform.install(td)
    if variant == 1:
        host.cpuid.set(0x4000_0001, 0, 0x80, 1, 2, 3)  # PV_UNHALT (bit 7) only
        host.cpuid.set(0x7, 1, 0xA1, 0xB1, 0xC1, 0xD1)
        host.enforce_pv_cpuid = True
        host.msrs.define(0x123, 5, writable=False)
        host.msrs.define(0x2FF, 6)
    if variant == 3:  # every handler replaced: the bridge serves all of them
        for table in (host.handlers, host.kvm_handlers):
            for number, handler in list(table.items()):
                table[number] = lambda h, e, handler=handler: handler(h, e)
        host.handlers[777] = _raises
    elif variant == 2:
        host.cpuid.entries[(0x99, 3)] = (1, 2, 3, 4)  # changed behind set()'s back
        host.vcpu_apic_id = 1
        host.enforce_pv_cpuid = True


def _raises(host, exit):
    raise RuntimeError("a handler that fails")


def _run(native: bool, family: str, seed: int, calls: int, variant: int):
    td = TD.from_source(GUESTS / "regblock.S", native=native, ns_per_insn=3, exit_ns=10_007)
    _setup(td, variant)
    block, rng, trail = td.symbol("regblock"), random.Random(seed), []
    for _ in range(calls):
        td.write(block, b"".join(v.to_bytes(8, "little") for v in _block(rng, family)))
        result = td.call_result("regblock_tdcall", block)
        msrs = {i: td.host.msrs.read(i) for i in MSRS}
        trail.append((result.reason, result.message, td.read(block, 128), result.events,
                      result.time_ns, result.instructions, td.vcpu.regs.gprs(),
                      td.vcpu.regs.rip, msrs, sorted(td.lapic.irr), _devices(td),
                      td.host.notify_vector))
    return td, trail


def _devices(td: TD) -> tuple:
    """The device state both paths write: UART, scratch MMIO, PCI, PM."""
    host = td.host
    state = [bytes(host.serial.state.regs), host.serial.output, bytes(host.mmio_devices[0]._mem)]
    for d in host.io_devices:
        if hasattr(d, "functions"):
            state += [d.address, {k: bytes(v) for k, v in d.functions.items()}]
        if hasattr(d, "regs"):
            state.append(bytes(d.regs))
    return tuple(state)


@pytest.mark.parametrize("family", ["info", "cpuid", "msr", "kvm", "io", "mmio", "python"])
@pytest.mark.parametrize("variant", [0, 1, 2, 3])
def test_random_exits_match_the_python_path(family, variant):
    """Variant 3 replaces every handler (by a wrapper): the host bridge
    (module/bridge.py) then answers every exit on the compiled path."""
    native, a = _run(True, family, variant, 400, variant)
    python, b = _run(False, family, variant, 400, variant)
    fast = native.module.fast
    assert python.module.fast.served == python.module.fast.bridged == 0
    assert fast.bridged > 100 if variant == 3 or family == "python" else fast.served > 100
    for i, (x, y) in enumerate(zip(a, b)):
        assert x == y, f"{family} call {i} differs"


def test_replaced_handlers_and_tables_go_to_python(probe):
    p = probe(native=True)
    td = p.td
    td.host.handlers[CPUID] = lambda host, exit: VmResume.status(0, r12=0x77)
    assert p.vmcall(r11=CPUID, r12=0).gprs["r12"] == 0x77 and td.module.fast.served == 0
    del td.host.handlers[CPUID]
    td.host.cpuid.entries[(0, 0)] = [1, 2, 3, 4]  # not C's kind of entry: Python answers
    td.host.handlers[CPUID] = __import__("tdxsim.host.cpuid", fromlist=["handle"]).handle
    assert p.vmcall(r11=CPUID, r12=0).gprs["r12"] == 1 and td.module.fast.served == 0
    td.host.cpuid.entries[(0, 0)] = (5, 6, 7, 8)  # C's again: copied when the run starts
    assert p.vmcall(r11=CPUID, r12=0).gprs["r12"] == 5 and td.module.fast.served == 1
    msr = td.host.msrs.define(0x123, 9)
    assert p.vmcall(r11=RDMSR, r12=0x123).gprs["r11"] == 9 and td.module.fast.served == 2
    msr.read = lambda: 10  # a Python callback: Python serves this MSR
    assert p.vmcall(r11=RDMSR, r12=0x123).gprs["r11"] == 10 and td.module.fast.served == 2
    td.host.kvm_handlers[77] = lambda host, exit: VmResume.status(78)
    assert p.vmcall(r10=77).gprs["r10"] == 78  # an added hypercall
    assert p.vmcall(r10=76).gprs["r10"] == 2**64 - 1000 and td.module.fast.served == 2
