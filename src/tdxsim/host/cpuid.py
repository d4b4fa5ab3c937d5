"""Instruction.CPUID (R11 = 10): R12 = leaf, R13 = sub-leaf -> R12..R15 =
EAX, EBX, ECX, EDX (spec 4.3, 6.2).  KVM applies no operand check."""
from __future__ import annotations

from .. import abi, native
from ..abi import VmcallStatus
from ..exits import VmExit, VmResume


def _regs(text: str) -> tuple[int, int, int]:
    """A 12-character vendor string as the three registers that carry it."""
    raw = text.encode()
    return tuple(int.from_bytes(raw[i:i + 4], "little") for i in (0, 4, 8))


_GENU, _INEI, _NTEL = _regs("GenuineIntel")
_KVM1, _KVM2, _KVM3 = _regs("KVMKVMKVM\0\0\0")

# A plausible Sapphire Rapids TD: leaf 1 has the hypervisor bit (ECX[31]) and
# x2APIC (ECX[21]); leaf 0x40000000 is KVM's signature.
DEFAULT_CPUID = {
    (0x0, 0): (0x1F, _GENU, _NTEL, _INEI),  # EAX, EBX, ECX, EDX
    (0x1, 0): (0x000806F8, 0x00000800, 0xF7FA3223, 0x0FABFBFF),
    (0x7, 0): (0x2, 0xF3BFBFEF, 0x1B415F6E, 0xFFDC4432),
    # TSC / core crystal clock: the TDX module fixes ECX at 25 MHz (abi.py)
    (0x15, 0): (1, abi.TSC_HZ // abi.CORE_CRYSTAL_HZ, abi.CORE_CRYSTAL_HZ, 0),
    (0x40000000, 0): (0x40000001, _KVM1, _KVM2, _KVM3),
    # KVM PV features QEMU offers a TD (TDX_SUPPORTED_KVM_FEATURES): NOP_IO_DELAY,
    # PV_UNHALT, PV_TLB_FLUSH, PV_SEND_IPI, POLL_CONTROL, PV_SCHED_YIELD, MSI_EXT_DEST_ID
    (0x40000001, 0): (0xBA82, 0x0, 0x0, 0x0),
    (0x80000000, 0): (0x80000008, 0, 0, 0),
    (0x80000008, 0): (0x3034, 0, 0, 0),
}


class CpuidTable:
    """Configurable CPUID answers; leaves not in the table read as zeros.

    The compiled CPUID path (host/cpuid.c) answers from a copy in `state`,
    made when `set` changes the table and, for changes made to `entries`
    directly, when a run starts (`exported`)."""

    def __init__(self, entries: dict | None = None):
        self.entries = dict(DEFAULT_CPUID if entries is None else entries)
        self.state = native.Cpuid()
        self._exported: dict | None = None  # the entries `state` holds (None: not exportable)
        self._copied: dict | None = None

    def set(self, leaf: int, subleaf: int, eax: int, ebx: int, ecx: int, edx: int) -> None:
        self.entries[(leaf, subleaf)] = (eax, ebx, ecx, edx)
        self.exported()

    def lookup(self, leaf: int, subleaf: int) -> tuple[int, int, int, int]:
        return self.entries.get((leaf, subleaf)) or self.entries.get((leaf, 0)) or (0, 0, 0, 0)

    def exported(self) -> bool:
        """Whether `state` holds the table as it is now (copied if it
        changed); False when some entry is not C's kind of entry (a key
        other than two 32-bit ints, a value other than four 64-bit ints):
        Python then answers CPUID."""
        if self._copied == self.entries:
            return self._exported is not None
        self._copied = dict(self.entries)
        self._exported = self._copied if _copy(self._copied, self.state) else None
        return self._exported is not None


def _u(value, bits: int) -> bool:
    return type(value) is int and 0 <= value < 1 << bits


def _copy(entries: dict, state: native.Cpuid) -> bool:
    if len(entries) > native.CPUID_ENTRIES:
        return False
    for i, (key, regs) in enumerate(entries.items()):
        if not (type(key) is tuple and len(key) == 2 and all(_u(k, 32) for k in key)
                and type(regs) is tuple and len(regs) == 4 and all(_u(r, 64) for r in regs)):
            return False
        entry = state.entries[i]
        entry.leaf, entry.subleaf = key
        entry.regs[:] = regs
    state.count = len(entries)
    return True


def handle(host, exit: VmExit) -> VmResume:
    eax, ebx, ecx, edx = host.cpuid.lookup(exit.r12 & 0xFFFF_FFFF, exit.r13 & 0xFFFF_FFFF)
    return VmResume.status(VmcallStatus.SUCCESS, r12=eax, r13=ebx, r14=ecx, r15=edx)
