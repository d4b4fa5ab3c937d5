"""What the host's compiled rules (host/fast.c and its family files) may
serve for a `Host`, decided when a run starts: a sub-function or hypercall
only while the host still uses the Python handler it mirrors, on the
table, store and devices that C can read, and only for an honest host.

Devices: C gets the host's device tables in their order, each bundled
device with its kind and native state (devices/devices.c), any other
device as "Python's", so that an exit it claims is declined.  An IO device
whose ports are not a plain range, or an MMIO device C does not know,
leaves that whole table to Python, since C cannot tell what it claims.
"""
from __future__ import annotations

import ctypes
import operator

from .. import native
from ..abi import KvmHc, SubFn
from ..clock import Clock
from ..devices.lapic import LocalApic
from ..devices.mmio_device import MmioDevice
from ..devices.pci_ecam import PciEcam
from ..devices.pci_host import PciHost
from ..devices.pm_timer import PM_SIZE, PmTimer
from ..devices.serial import Serial
from . import cpuid, halt, info, io, kvm, mmio, msr, quote

# The KVM hypercalls host/kvm.c mirrors, served there while these handlers are in place.
COMPILED_KVM = {n: kvm.HANDLERS[n] for n in (KvmHc.VAPIC_POLL_IRQ, KvmHc.KICK_CPU,
                                             KvmHc.SCHED_YIELD, KvmHc.CLOCK_PAIRING,
                                             KvmHc.SEND_IPI)}
# With several vCPUs, the calls that act on another vCPU or on the
# schedule (a kick, a directed yield, an IPI) and SetupEventNotifyInterrupt
# (which remembers the caller) are Python's, and so is HLT (smp.py blocks
# one vCPU); the rest is the same for every vCPU, or per vCPU in C (the MSR
# store: `select`).
SMP_KVM = (KvmHc.VAPIC_POLL_IRQ, KvmHc.CLOCK_PAIRING)


def compiled_paths(host, fast: native.Host) -> None:
    handlers, honest = host.handlers, host.adversary is None
    fast.info = honest and handlers.get(SubFn.GET_TD_VM_CALL_INFO) is info.handle
    fast.info_bitmap = info.leaf1_bitmap(host)
    table = host.cpuid if type(host.cpuid) is cpuid.CpuidTable and host.cpuid.exported() \
        else None
    stores = tuple(v.msrs for v in host.vcpus)  # per vCPU: `select` points C at one
    stores = stores if all(type(s) is msr.MsrStore and s.complete for s in stores) else None
    one = len(host.vcpus) == 1
    fast.cpuid = honest and table is not None and handlers.get(SubFn.CPUID) is cpuid.handle
    fast.rdmsr = honest and stores is not None and handlers.get(SubFn.RDMSR) is msr.handle_rdmsr
    fast.wrmsr = honest and stores is not None and handlers.get(SubFn.WRMSR) is msr.handle_wrmsr
    # HLT: the one vCPU's APIC, when C can read it
    lapic = host.vcpus[0].lapic if one else None
    lapic = lapic if type(lapic) is LocalApic and lapic.state.clock else None
    fast.hlt = honest and lapic is not None and handlers.get(SubFn.HLT) is halt.handle
    maps = host.device_maps
    if maps.pointed != (table, stores, lapic):  # a pointer costs a microsecond: only on a change
        fast.cpuid_table = ctypes.pointer(table.state) if table is not None else None
        maps.stores = [ctypes.pointer(s.state) for s in stores] if stores is not None else None
        fast.msrs = maps.stores[0] if stores is not None else None
        fast.lapic = lapic.pointer if lapic is not None else None
        maps.pointed = (table, stores, lapic)
    fast.notify = honest and one and handlers.get(SubFn.SETUP_EVENT_NOTIFY_INTERRUPT) \
        is quote.setup_event_notify
    fast.enforce_pv_cpuid = bool(host.enforce_pv_cpuid)
    _kvm(host, fast, honest)
    io_map, mmio_map = maps.current(host)
    fast.io = honest and io_map is not None and handlers.get(SubFn.IO) is io.handle
    fast.mmio = honest and mmio_map is not None and handlers.get(SubFn.MMIO) is mmio.handle \
        and type(host.gpaw) is int and 1 <= host.gpaw <= 64
    fast.gpaw = host.gpaw if fast.mmio else 0
    fast.io_devices = io_map
    fast.mmio_devices = mmio_map


def select(host, fast: native.Host, index: int) -> None:
    """vCPU `index` runs from now on: C serves its MSR store."""
    stores = host.device_maps.stores
    if stores is not None:
        fast.msrs = stores[index]


def _kvm(host, fast: native.Host, honest: bool) -> None:
    kvm_handlers = host.kvm_handlers
    key = (honest, host.vcpu_apic_id, len(host.vcpus), *kvm_handlers.items())
    if key == host.device_maps.kvm_key:  # the table as at the last run
        return
    apic_id_fits = type(host.vcpu_apic_id) is int and 0 <= host.vcpu_apic_id < 1 << 32
    fast.kvm = sum(1 << n for n, f in COMPILED_KVM.items() if honest and kvm_handlers.get(n)
                   is f and (n != KvmHc.SEND_IPI or apic_id_fits)
                   and (len(host.vcpus) == 1 or n in SMP_KVM))
    fast.kvm_table = sum(1 << n for n in kvm_handlers if isinstance(n, int) and 0 <= n < 64)
    fast.kvm_unknown = honest and all(isinstance(n, int) and 0 <= n < 64 for n in kvm_handlers)
    fast.vcpu_apic_id = host.vcpu_apic_id if apic_id_fits else 0
    host.device_maps.kvm_key = key


class DeviceMaps:
    """The host's IO and MMIO device tables as C sees them, rebuilt only
    when a table, a device's range or a PCI function changes."""

    def __init__(self):
        self.kvm_key = None  # the KVM table compiled_paths last read (_kvm)
        self.pointed = None  # the CPUID table, MSR stores and APIC the native host points to
        self.stores = None  # pointers to each vCPU's MSR store (select)
        self._key = None
        self._maps = (None, None)
        self._keep: list = []  # native objects C points into

    def current(self, host):
        """(io map, mmio map) as ctypes pointers; None: that table is Python's."""
        key = _key(host)
        if self._key is None or len(key) != len(self._key) \
                or not all(map(operator.is_, key, self._key)):
            self._keep = []
            self._maps = (self._build(host.io_devices, self._io_entry),
                          self._build(host.mmio_devices, self._mmio_entry))
            self._key = key
        return self._maps

    def _build(self, devices, entry):
        table = native.Devices(count=len(devices))
        if len(devices) > native.DEVICE_SLOTS:
            return None
        for i, device in enumerate(devices):
            fields = entry(device)
            if fields is None:
                return None
            table.devices[i] = native.Device(*fields)
        self._keep.append(table)
        return ctypes.pointer(table)

    def _io_entry(self, d):
        ports = getattr(d, "ports", None)
        if type(ports) is not range or ports.step != 1 or not 0 <= ports.start <= ports.stop:
            return None
        first, end = ports.start, ports.stop
        if type(d) is Serial and ports == range(d.base, d.base + 8):
            return first, end, native.DEVICE_SERIAL, self._address(d.state)
        if type(d) is PmTimer and _clock_of(d.clock) is not None and type(d.regs) is bytearray \
                and len(d.regs) == PM_SIZE and ports == range(d.base, d.base + PM_SIZE):
            state = native.PmTimer(regs=self._bytes(d.regs),
                                   clock=ctypes.pointer(_clock_of(d.clock).state))
            return first, end, native.DEVICE_PM_TIMER, self._address(state)
        if type(d) is PciHost and self._pci(d):
            return first, end, native.DEVICE_PCI, self._address(d.state)
        return first, end, native.DEVICE_PYTHON, None

    def _mmio_entry(self, d):
        if type(d) is MmioDevice and len(d._mem) == d.size:
            return d.base, d.base + d.size, native.DEVICE_MMIO_SCRATCH, \
                ctypes.cast(self._bytes(d._mem), native.ptr)
        if type(d) is PciEcam and type(d.pci) is PciHost and self._pci(d.pci):
            return d.base, d.base + d.size, native.DEVICE_ECAM, self._address(d.pci.state)
        return None

    def _pci(self, pci: PciHost) -> bool:
        """Copy the PCI functions' table into pci.state (False: C cannot)."""
        functions = pci.functions
        if len(functions) > native.PCI_FUNCTIONS:
            return False
        for i, (key, space) in enumerate(functions.items()):
            if not (type(key) is tuple and len(key) == 3 and type(space) is bytearray
                    and all(type(k) is int for k in key)
                    and 0 <= key[0] < 256 and 0 <= key[1] < 32 and 0 <= key[2] < 8):
                return False
            bus, dev, fn = key
            pci.state.functions[i] = native.PciFunction(
                bus << 8 | dev << 3 | fn, self._bytes(space), len(space))
        pci.state.count = len(functions)
        return True

    def _bytes(self, buffer: bytearray):
        """A pointer to Python's own bytes (no copy; the bytearray cannot be
        resized while C points into it)."""
        array = (ctypes.c_uint8 * len(buffer)).from_buffer(buffer)
        self._keep.append(array)
        return ctypes.cast(array, ctypes.POINTER(ctypes.c_uint8))

    def _address(self, state) -> int:
        self._keep.append(state)
        return ctypes.addressof(state)


_SEPARATOR = object()


def _key(host) -> list:
    """What the device maps depend on, compared by identity: the devices,
    their ranges, the PM timer's clock, the PCI functions."""
    key = [*host.io_devices, _SEPARATOR, *host.mmio_devices, _SEPARATOR]
    for d in host.io_devices:
        key.append(getattr(d, "ports", None))
        if type(d) is PmTimer:
            key.append(d.clock)
    for d in (*host.io_devices, *host.mmio_devices):
        pci = d if type(d) is PciHost else getattr(d, "pci", None)
        if type(pci) is PciHost:
            key += [pci, *pci.functions, *pci.functions.values()]
    return key


def _clock_of(read):
    """The Clock whose `now` `read` is (None: some other function)."""
    clock = getattr(read, "__self__", None)
    return clock if type(clock) is Clock and getattr(read, "__func__", None) is Clock.now \
        else None
