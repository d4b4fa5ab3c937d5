"""tdxsim's compiled hooks (tdxsim/_native.c and the .c files beside the
Python they mirror), loaded with ctypes, and the ctypes mirrors of the state
they share with Python (native.h).

The structures exist with or without the compiled library: Python keeps its
own state in them either way, so there is one copy of each value.  Without
the library (no C compiler at install time, or TDXSIM_NATIVE=0 in the
environment) every hook falls back to Python.
"""
from __future__ import annotations

import ctypes
import os
import warnings

from unicorn.unicorn_py3 import unicorn as _binding

from .native_sources import source_digest


u64, u32, u8 = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint8
ptr = ctypes.c_void_p
_library = None

uc_emu_stop = ctypes.cast(_binding.uclib.uc_emu_stop, ptr)


def library():
    """The compiled library, loaded once per process (or None).
    TDXSIM_NATIVE=0 turns it off: the test suite runs both ways."""
    global _library
    if _library is None and os.environ.get("TDXSIM_NATIVE") == "0":
        _library = False
    elif _library is None:
        try:
            from . import _native
        except ImportError:
            _library = False
        else:
            _library = _matching(ctypes.CDLL(_native.__file__))
    return _library or None


def _matching(library):
    """The library, or False (Python only, with a warning) when it was built
    from other sources than those installed beside it."""
    built = (ctypes.c_char * 17).in_dll(library, "tdxsim_source_digest").value.decode()
    here = source_digest()
    if here is None or built == here:
        return library
    warnings.warn("tdxsim: the compiled hooks were built from other sources than these "
                  "(rebuild them: pip install -e . or make); running without them", stacklevel=3)
    return False


def add_hook(uc, kind: int, function: str, state, begin: int = 1, end: int = 0) -> int:
    """Install the library's `function` as a Unicorn hook with `state` (a
    ctypes object the caller keeps alive) as its user data."""
    handle = _binding.uc_hook_h()
    err = _binding.uclib.uc_hook_add(
        uc._uch, ctypes.byref(handle), kind, ctypes.cast(getattr(library(), function), ptr),
        ctypes.cast(ctypes.byref(state), ptr), u64(begin), u64(end))
    if err:
        raise RuntimeError(f"uc_hook_add({function}) failed with error {err}")
    return handle.value


class Unicorn(ctypes.Structure):
    _fields_ = [("emu_stop", ptr), ("reg_read", ptr), ("reg_write", ptr),
                ("reg_read_batch", ptr), ("reg_write_batch", ptr), ("mem_read", ptr),
                ("gpr_ids", ctypes.c_int * 16), ("rip_id", ctypes.c_int),
                ("rflags_id", ctypes.c_int), ("mem_write", ptr), ("rsp_id", ctypes.c_int),
                ("cs_id", ctypes.c_int), ("ss_id", ctypes.c_int), ("idtr_id", ctypes.c_int),
                ("cr3_id", ctypes.c_int)]


COUNTER_SLOTS = 4096


class Counter(ctypes.Structure):
    _fields_ = [("count", u64), ("limit", u64), ("block_start", u64), ("block_insns", u64),
                ("enabled", u64), ("until", u64), ("stop", ptr), ("resolve", ptr),
                ("keys", u64 * COUNTER_SLOTS), ("counts", u32 * COUNTER_SLOTS)]


class Clock(ctypes.Structure):
    _fields_ = [("counter", ctypes.POINTER(Counter)), ("ns_per_insn", u64), ("added_ns", u64),
                ("exit_ns", u64), ("next_event_ns", u64)]


NO_DEADLINE = (1 << 64) - 1


class Lapic(ctypes.Structure):
    _fields_ = [("irr", u64 * 4), ("isr", u64 * 4), ("nmi_pending", u64), ("lvt", u64),
                ("initial", u64), ("divide", u64), ("tsc_deadline", u64), ("counting", u64),
                ("expiry", u64), ("clock", ctypes.POINTER(Clock))]


class Sti(ctypes.Structure):
    pass  # its fields below, after VCpu


class Traps(ctypes.Structure):
    _fields_ = [("hit", u64), ("rip", u64), ("armed", u64), ("only", u64), ("stop", ptr),
                ("sti", ctypes.POINTER(Sti))]


class Serial(ctypes.Structure):
    _fields_ = [("base", u64), ("regs", u8 * 8), ("output", ctypes.POINTER(u8)),
                ("length", u64), ("capacity", u64)]


class PmTimer(ctypes.Structure):
    _fields_ = [("regs", ctypes.POINTER(u8)), ("clock", ctypes.POINTER(Clock))]


PCI_FUNCTIONS = 32


class PciFunction(ctypes.Structure):
    _fields_ = [("bdf", u64), ("space", ctypes.POINTER(u8)), ("length", u64)]


class Pci(ctypes.Structure):
    _fields_ = [("address", u64), ("count", u64), ("functions", PciFunction * PCI_FUNCTIONS)]


# enum tdxsim_device_kind
(DEVICE_PYTHON, DEVICE_SERIAL, DEVICE_PM_TIMER, DEVICE_PCI, DEVICE_ECAM,
 DEVICE_MMIO_SCRATCH) = range(6)
DEVICE_SLOTS = 16


class Device(ctypes.Structure):
    _fields_ = [("first", u64), ("end", u64), ("kind", u64), ("state", ptr)]


class Devices(ctypes.Structure):
    _fields_ = [("count", u64), ("devices", Device * DEVICE_SLOTS)]


CPUID_ENTRIES = 256


class CpuidEntry(ctypes.Structure):
    _fields_ = [("leaf", u64), ("subleaf", u64), ("regs", u64 * 4)]


class Cpuid(ctypes.Structure):
    _fields_ = [("count", u64), ("entries", CpuidEntry * CPUID_ENTRIES)]


MSR_SLOTS = 512
MSR_WRITABLE, MSR_PYTHON = 1, 2


class Msr(ctypes.Structure):
    _fields_ = [("key", u64), ("value", u64), ("flags", u64), ("reserved", u64),
                ("clock", ctypes.POINTER(Clock)), ("apic", ctypes.POINTER(Lapic))]


class Msrs(ctypes.Structure):
    _fields_ = [("slots", Msr * MSR_SLOTS)]


class Host(ctypes.Structure):
    _fields_ = [("io", u64), ("mmio", u64), ("io_devices", ctypes.POINTER(Devices)),
                ("mmio_devices", ctypes.POINTER(Devices)), ("gpaw", u64),
                ("answer_all", u64), ("answer_mask", u64), ("answer", u64 * 16),
                ("info", u64), ("info_bitmap", u64),
                ("cpuid_table", ctypes.POINTER(Cpuid)), ("cpuid", u64),
                ("msrs", ctypes.POINTER(Msrs)), ("rdmsr", u64), ("wrmsr", u64),
                ("kvm", u64), ("kvm_table", u64), ("kvm_unknown", u64),
                ("enforce_pv_cpuid", u64), ("vcpu_apic_id", u64),
                ("notify", u64), ("notify_vector", u64), ("hlt", u64),
                ("lapic", ctypes.POINTER(Lapic))]


class Reply(ctypes.Structure):
    _fields_ = [("mask", u64), ("gprs", u64 * 16), ("woke", u64)]


class ExitRecord(ctypes.Structure):
    _fields_ = [("time_ns", u64), ("rip", u64), ("rcx", u64), ("exposed", u64 * 16),
                ("returned_mask", u64), ("returned", u64 * 16), ("woke", u64), ("woke_ns", u64)]


class Ve(ctypes.Structure):
    _fields_ = [("valid", u64), ("exit_reason", u64), ("qualification", u64), ("gla", u64),
                ("gpa", u64), ("instr_len", u64), ("instr_info", u64), ("gets", u64)]


class Module(ctypes.Structure):
    _fields_ = [("enabled", u64), ("no_rbp_mod", u64), ("clock", ctypes.POINTER(Clock)),
                ("host", ctypes.POINTER(Host)),
                ("records", ctypes.POINTER(ExitRecord)), ("recorded", u64), ("capacity", u64),
                ("recorded_woke", u64), ("recorded_mixed", u64),
                ("served", u64), ("bridge", ptr), ("bridged", u64), ("bridge_time_ns", u64),
                ("bridge_rip", u64), ("bridge_view", u64 * 16), ("bridge_reply", Reply),
                ("veinfo", u64), ("veinfo_served", u64), ("ve", ctypes.POINTER(Ve)),
                ("failure", u64), ("failed", u64)]


# VMCALL_* in native.h: what became of a TDG.VP.VMCALL the bridge answered
VMCALL_COMPLETE, VMCALL_RECORD, VMCALL_STOP, VMCALL_STOP_TDCALL, VMCALL_WOKE = 2, 4, 8, 16, 32
WOKE = 0x100  # ExitRecord.woke: WOKE | the vector that ended a HLT at once
BRIDGE = ctypes.CFUNCTYPE(u64)


OBSERVE_STACK_MAX = 1040


class TdcallSeen(ctypes.Structure):
    _fields_ = [("rip", u64), ("rflags", u64), ("count", u64), ("time_ns", u64),
                ("before", u64 * 16), ("after", u64 * 16), ("stack", u8 * OBSERVE_STACK_MAX)]


class Observer(ctypes.Structure):
    _fields_ = [("seen", ctypes.POINTER(TdcallSeen)), ("count", u64), ("capacity", u64),
                ("overflow", u64), ("stack_base", u64), ("stack_len", u64)]


SHADOW_SLOTS = 256
WALK_SLOTS = 64  # native.h: the MMU's walks C may use (vcpu/deliver.c)
WALK_READ, WALK_WRITE = 1, 2
FALLBACK = ctypes.CFUNCTYPE(ctypes.c_bool, ptr, ptr)


class VCpu(ctypes.Structure):
    _fields_ = [("uc", Unicorn), ("fallback", FALLBACK), ("module", ctypes.POINTER(Module)),
                ("observer", ctypes.POINTER(Observer)),
                ("shadow_pages", u64 * SHADOW_SLOTS), ("shadow_backing", u64 * SHADOW_SLOTS),
                ("stop_tdcall", u64), ("apic", ctypes.POINTER(Lapic)), ("end_slice", u64),
                ("if_watch", ctypes.POINTER(Traps)), ("walk_on", u64), ("walk_cr3", u64),
                ("walk_keys", u64 * WALK_SLOTS), ("walk_backing", u64 * WALK_SLOTS)]


class Delivery(ctypes.Structure):  # vcpu/deliver.c
    _fields_ = [("vector", u64), ("has_error", u64), ("error_code", u64), ("handler", u64),
                ("rip", u64)]


Sti._fields_ = [("vcpu", ctypes.POINTER(VCpu)), ("counter", ctypes.POINTER(Counter)),
                ("boundary", ctypes.POINTER(Traps)), ("enabled", u64), ("done", u64),
                ("rip", u64), ("shadow", u64), ("count", u64)]


class Slice(ctypes.Structure):
    _fields_ = [("uc", ptr), ("emu_start", ptr), ("counter", ctypes.POINTER(Counter)),
                ("trap", ctypes.POINTER(Traps)), ("boundary", ctypes.POINTER(Traps)),
                ("if_watch", ctypes.POINTER(Traps)), ("vcpu", ctypes.POINTER(VCpu)),
                ("rip", u64), ("step", u64), ("end_rip", u64)]


# SLICE_* in native.h: what stopped the engine in one tdxsim_slice
SLICE_TDCALL, SLICE_TRAP, SLICE_BOUNDARY, SLICE_IF_WATCH, SLICE_END, SLICE_STI = 1, 2, 4, 8, 16, 32
SLICE_ERROR_SHIFT = 32
