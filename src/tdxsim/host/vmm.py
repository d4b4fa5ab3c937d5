"""The host VMM: receives a `VmExit`, dispatches it, answers with a `VmResume`.

Dispatch follows KVM (spec 6.1): R10 != 0 is a KVM hypercall; R10 = 0 is a
GHCI sub-function chosen by R11.  Handler tables are plain dicts so users can
override or add a handler per sub-function: `host.handlers[SubFn.CPUID] = fn`
where `fn(host, exit) -> VmResume`.
"""
from __future__ import annotations

from typing import Callable

from .. import abi, limits, native
from ..abi import MASK64, SubFn, VmcallStatus
from ..clock import Clock
from ..devices.debug_exit import DebugExit
from ..devices.mmio_device import MmioDevice
from ..devices.serial import Serial
from ..errors import HostError, TdxsimError
from ..exits import EptExit, VmExit, VmResume
from . import compiled, cpuid, ept, fatal, halt, info, io, kvm, mapgpa, mmio, msr, quote
from .hostile import Adversary
from .vcpus import HostVcpu

Handler = Callable[["Host", VmExit], VmResume]

GHCI_HANDLERS: dict[int, Handler] = {
    SubFn.CPUID: cpuid.handle,
    SubFn.HLT: halt.handle,
    SubFn.IO: io.handle,
    SubFn.RDMSR: msr.handle_rdmsr,
    SubFn.WRMSR: msr.handle_wrmsr,
    SubFn.MMIO: mmio.handle,
    SubFn.GET_TD_VM_CALL_INFO: info.handle,
    SubFn.MAP_GPA: mapgpa.handle,
    SubFn.GET_QUOTE: quote.get_quote,
    SubFn.REPORT_FATAL_ERROR: fatal.handle,
    SubFn.SETUP_EVENT_NOTIFY_INTERRUPT: quote.setup_event_notify,
}

# Status for a sub-function the host does not implement (spec 4.2, 6.2):
# KVM answers SUBFUNC_UNSUPPORTED since 2025, INVALID_OPERAND before.  The
# hostile host starts from current KVM and lies (hostile.py).
PERSONALITIES = {
    "kvm": VmcallStatus.SUBFUNC_UNSUPPORTED,
    "kvm-legacy": VmcallStatus.INVALID_OPERAND,
    "hostile": VmcallStatus.SUBFUNC_UNSUPPORTED,
}


class Host:
    def __init__(self, personality: str = "kvm", gpaw: int = abi.GPAW_DEFAULT,
                 seed: int | None = None, clock: Clock | None = None, vcpus: int = 1):
        if personality not in PERSONALITIES:
            raise TdxsimError(f"unknown host personality '{personality}'; "
                              f"choose one of: {', '.join(PERSONALITIES)}")
        if seed is not None and personality != "hostile":
            raise TdxsimError(f"a seed applies only to the hostile host, not to '{personality}'")
        self.personality = personality
        self.adversary = Adversary(seed or 0) if personality == "hostile" else None
        self.unsupported_status = PERSONALITIES[personality]
        self.gpaw = gpaw
        self.handlers: dict[int, Handler] = dict(GHCI_HANDLERS)
        self.kvm_handlers: dict[int, Handler] = dict(kvm.HANDLERS)
        self.serial = Serial()
        self.io_devices = [self.serial, DebugExit()]
        self.mmio_devices = [MmioDevice()]
        self.cpuid = cpuid.CpuidTable()
        # The TD's virtual time: a TD built with this host ticks it.
        self.clock = clock if clock is not None else Clock()
        # Per vCPU: local APIC, MSRs, PV-unhalt flag (vcpus.py); vCPU 0's
        # are also host.lapic and host.msrs.
        self.vcpus = [HostVcpu(i, self.clock) for i in range(limits.vcpus(vcpus, "vcpus"))]
        self.msrs, self.lapic = self.vcpus[0].msrs, self.vcpus[0].lapic
        self.memory = None  # HostMemory: shared pages only, from serve()
        self.map_gpa_exit = True  # user space (QEMU) takes KVM_HC_MAP_GPA_RANGE exits
        self.map_gpa_eagain = None  # (gpa, size) -> bool: user space refuses a step (mapgpa.py)
        self.enforce_pv_cpuid = False  # QEMU's default: KVM PV calls need no CPUID bit
        self.quote_service: quote.QuoteService | None = quote.QuoteService()
        self.fast = native.Host()  # what host/fast.c may serve, and the state it shares
        self.notify_vector: int | None = None  # SetupEventNotifyInterrupt (in self.fast)
        self.notify_vcpu = 0  # ... and the vCPU that registered it
        self.record: Callable[[object], None] = lambda event: None  # the TD's event log (serve)
        self.device_maps = compiled.DeviceMaps()  # the device tables as C sees them

    @property
    def vcpu_apic_id(self) -> int:
        """vCPU 0's x2APIC ID (host/kvm.c serves one-vCPU TDs with it)."""
        return self.vcpus[0].apic_id

    @vcpu_apic_id.setter
    def vcpu_apic_id(self, apic_id: int) -> None:
        self.vcpus[0].apic_id = apic_id

    def vcpu_of(self, apic_id: int) -> int | None:
        """The index of the vCPU with this x2APIC ID, if any."""
        return next((v.index for v in self.vcpus if v.apic_id == apic_id), None)

    @property
    def notify_vector(self) -> int | None:
        return self.fast.notify_vector or None

    @notify_vector.setter
    def notify_vector(self, vector: int | None) -> None:
        """Vectors are 32..255 (quote.py checks), so 0 stands for None."""
        self.fast.notify_vector = vector or 0

    def serve(self, memory, gpaw: int, record: Callable[[object], None]) -> None:
        """Become the host of a TD: its memory (a memory.HostMemory, shared
        pages only), its GPA width, and where the TD records events.  A
        host serves one TD."""
        if self.memory is not None:
            raise TdxsimError("this host already serves a TD; build a new Host for each TD")
        self.memory, self.gpaw, self.record = memory, gpaw, record

    def compiled_paths(self) -> native.Host:
        """What host/fast.c may serve for this host (host/compiled.py),
        read from its tables when a run starts."""
        compiled.compiled_paths(self, self.fast)
        return self.fast

    def compiled_vcpu(self, index: int) -> None:
        """vCPU `index` runs from now on (smp.py): C serves its MSR store."""
        compiled.select(self, self.fast, index)

    def handle(self, exit: VmExit) -> VmResume:
        gprs = exit.gprs  # indexed, not exit.r10/.r11: this runs once per exit
        if gprs[abi.R10] != 0:
            handler = self.kvm_handlers.get(gprs[abi.R10], kvm.handle_unknown)
        else:
            handler = self.handlers.get(gprs[abi.R11], unsupported)
        try:
            resume = handler(self, exit)
        except Exception as exc:
            raise HostError(f"the host handler for {exit.name} failed: "
                            f"{type(exc).__name__}: {exc}") from exc
        _check_reply(exit, resume)
        if self.adversary is not None:
            resume = self.adversary.twist(self, exit, resume)
        return resume

    def ept_violation(self, exit: EptExit) -> str | None:
        """An EPT-violation TD exit: None once served (the TD re-executes
        the instruction), else why the TD cannot go on (host/ept.py)."""
        return ept.handle(self, exit)

    # --- work the host does later in virtual time (quote completion) ---
    def at(self, time_ns: int, action: Callable[[], None]) -> None:
        self.clock.events.at(time_ns, action, owner=self)

    def next_deadline(self, vcpu: int = 0) -> int | None:
        """The next virtual time at which the host or vCPU vcpu's APIC acts
        (both wait in the clock's one queue; the APIC timer is the APIC's)."""
        return self.vcpus[vcpu].lapic.next_deadline()

    def fire_due(self, now: int, vcpu: int = 0) -> list[tuple[str, int]]:
        """Run due host work and raise vCPU vcpu's due interrupts:
        [(source, vector)]."""
        return self.vcpus[vcpu].lapic.fire_due(now)

    def io_device(self, port: int):
        return next((d for d in self.io_devices if port in d.ports), None)

    def mmio_device(self, gpa: int, size: int):
        return next((d for d in self.mmio_devices if d.contains(gpa, size)), None)


def _check_reply(exit: VmExit, resume) -> None:
    """A handler's reply must name registers by index with 64-bit values."""
    if type(resume) is not VmResume and not isinstance(resume, VmResume):
        raise HostError(f"the host handler for {exit.name} returned "
                        f"{type(resume).__name__}, not a VmResume")
    for index, value in resume.gprs.items():  # the common case, without the message's cost
        if not (type(index) is int and type(value) is int and 0 <= index < 16
                and 0 <= value <= MASK64):
            break
    else:
        if not resume.xmms:
            return
    for regs, width, what in ((resume.gprs, 64, "GPR"), (resume.xmms, 128, "XMM")):
        for index, value in regs.items():
            if not (isinstance(index, int) and 0 <= index < 16 and isinstance(value, int)
                    and 0 <= value < 1 << width):
                raise HostError(f"the host handler for {exit.name} wrote {what} "
                                f"{index!r} = {value!r}; expected an index 0..15 and a "
                                f"{width}-bit unsigned value")


def unsupported(host: Host, exit: VmExit) -> VmResume:
    return VmResume.status(host.unsupported_status)
