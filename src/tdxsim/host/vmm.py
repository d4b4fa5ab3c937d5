"""The host VMM: receives a `VmExit`, dispatches it, answers with a `VmResume`.

Dispatch follows KVM (spec 6.1): R10 != 0 is a KVM hypercall; R10 = 0 is a
GHCI sub-function chosen by R11.  Handler tables are plain dicts so users can
override or add a handler per sub-function: `host.handlers[SubFn.CPUID] = fn`
where `fn(host, exit) -> VmResume`.
"""
from __future__ import annotations

from typing import Callable

from .. import abi
from ..abi import SubFn, VmcallStatus
from ..devices.debug_exit import DebugExit
from ..devices.lapic import LocalApic
from ..devices.mmio_device import MmioDevice
from ..devices.serial import Serial
from ..errors import HostError, TdxsimError
from ..exits import VmExit, VmResume
from . import cpuid, fatal, halt, info, io, kvm, mmio, msr

Handler = Callable[["Host", VmExit], VmResume]

GHCI_HANDLERS: dict[int, Handler] = {
    SubFn.CPUID: cpuid.handle,
    SubFn.HLT: halt.handle,
    SubFn.IO: io.handle,
    SubFn.RDMSR: msr.handle_rdmsr,
    SubFn.WRMSR: msr.handle_wrmsr,
    SubFn.MMIO: mmio.handle,
    SubFn.GET_TD_VM_CALL_INFO: info.handle,
    SubFn.REPORT_FATAL_ERROR: fatal.handle,
}

# Status for a sub-function the host does not implement (spec 4.2, 6.2):
# KVM answers SUBFUNC_UNSUPPORTED since 2025, INVALID_OPERAND before.
PERSONALITIES = {
    "kvm": VmcallStatus.SUBFUNC_UNSUPPORTED,
    "kvm-legacy": VmcallStatus.INVALID_OPERAND,
}


class Host:
    def __init__(self, personality: str = "kvm", gpaw: int = abi.GPAW_DEFAULT):
        if personality not in PERSONALITIES:
            raise TdxsimError(f"unknown host personality '{personality}'; "
                              f"choose one of: {', '.join(PERSONALITIES)}")
        self.personality = personality
        self.unsupported_status = PERSONALITIES[personality]
        self.gpaw = gpaw
        self.handlers: dict[int, Handler] = dict(GHCI_HANDLERS)
        self.kvm_handlers: dict[int, Handler] = dict(kvm.HANDLERS)
        self.serial = Serial()
        self.io_devices = [self.serial, DebugExit()]
        self.mmio_devices = [MmioDevice()]
        self.cpuid = cpuid.CpuidTable()
        self.msrs = msr.MsrStore()
        self.lapic = LocalApic()
        self.lapic.install_msrs(self.msrs)
        self.clock: Callable[[], int] = lambda: 0  # virtual TSC, set by the TD

    def handle(self, exit: VmExit) -> VmResume:
        if exit.r10 != 0:
            handler = self.kvm_handlers.get(exit.r10, kvm.handle_unknown)
        else:
            handler = self.handlers.get(exit.r11, unsupported)
        try:
            resume = handler(self, exit)
        except Exception as exc:
            raise HostError(f"the host handler for {exit.name} failed: "
                            f"{type(exc).__name__}: {exc}") from exc
        _check_reply(exit, resume)
        return resume

    def io_device(self, port: int):
        return next((d for d in self.io_devices if port in d.ports), None)

    def mmio_device(self, gpa: int, size: int):
        return next((d for d in self.mmio_devices if d.contains(gpa, size)), None)


def _check_reply(exit: VmExit, resume) -> None:
    """A handler's reply must name registers by index with 64-bit values."""
    if not isinstance(resume, VmResume):
        raise HostError(f"the host handler for {exit.name} returned "
                        f"{type(resume).__name__}, not a VmResume")
    for regs, width, what in ((resume.gprs, 64, "GPR"), (resume.xmms, 128, "XMM")):
        for index, value in regs.items():
            if not (isinstance(index, int) and 0 <= index < 16 and isinstance(value, int)
                    and 0 <= value < 1 << width):
                raise HostError(f"the host handler for {exit.name} wrote {what} "
                                f"{index!r} = {value!r}; expected an index 0..15 and a "
                                f"{width}-bit unsigned value")


def unsupported(host: Host, exit: VmExit) -> VmResume:
    return VmResume.status(host.unsupported_status)
