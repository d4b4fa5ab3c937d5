"""The typed objects that cross the module/host boundary.

A TD exit is a value: the host receives a `VmExit` holding only what the TDX
module let through (unselected registers read as 0, spec 3.3) and answers with
a `VmResume` naming the registers it wrote.  The module copies back only the
selected ones (spec 3.4), so a host cannot reach what the guest did not expose.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import abi


def subfn_name(r10: int, r11: int) -> str:
    """Human name of a TDVMCALL request, for traces and diagnostics."""
    if r10 != 0:  # dict lookups: a ValueError per unknown number costs ~5 us
        hc = abi.KvmHc._value2member_map_.get(r10)
        return f"KVM_HC_{hc.name}" if hc else f"KVM hypercall {r10}"
    fn = abi.SubFn._value2member_map_.get(r11)
    return fn.name if fn else f"sub-function {r11:#x}"


@dataclass(frozen=True)
class VmExit:
    gpr_select: int
    xmm_select: int
    gprs: tuple[int, ...]  # 16 slots in spec 0.1 order (spec 3.3): RAX = exit reason 77,
    #                        RCX = exit qualification, selected = guest value, others 0
    xmms: tuple[int, ...]  # 16 slots, 128-bit; unselected are 0
    time_ns: int = 0
    vcpu: int = 0  # the index of the vCPU that exited (KVM: which struct kvm_vcpu)

    def reg(self, index: int) -> int:
        return self.gprs[index]

    def selected(self, index: int) -> bool:
        return bool(self.gpr_select >> index & 1)

    @property
    def r10(self) -> int:
        return self.gprs[abi.R10]

    @property
    def r11(self) -> int:
        return self.gprs[abi.R11]

    @property
    def r12(self) -> int:
        return self.gprs[abi.R12]

    @property
    def r13(self) -> int:
        return self.gprs[abi.R13]

    @property
    def r14(self) -> int:
        return self.gprs[abi.R14]

    @property
    def r15(self) -> int:
        return self.gprs[abi.R15]

    @property
    def name(self) -> str:
        return subfn_name(self.r10, self.r11)


@dataclass(frozen=True)
class Halt:
    """The vCPU blocks in the host until a wake event (spec 7.4)."""
    irq_blocked: bool


@dataclass(frozen=True)
class Yield:
    """The vCPU gives up the rest of its quantum to vCPU `to` (KVM_HC_SCHED_YIELD,
    KVM_HC_KICK_CPU); with one vCPU nothing changes."""
    to: int


@dataclass(frozen=True)
class GuestExit:
    """The guest asked to end the run (debug-exit port)."""
    code: int


@dataclass(frozen=True)
class FatalError:
    """TDG.VP.VMCALL<ReportFatalError>: the TD is stopped (spec 4.6)."""
    error_code: int
    message: str
    gpa: int | None
    note: str = ""  # the host's own diagnosis, e.g. a rejected error code


@dataclass(frozen=True)
class EptExit:
    """An EPT-violation TD exit (spec 8.1; [M-ve] tdx_ept_violation_exit_to_vmm):
    the GPA with bits 11:0 cleared, shared bit as accessed; pending is the
    extended exit qualification for an access to a pending private page."""
    gpa: int
    pending: bool = False


@dataclass
class VmResume:
    """The host's answer: registers it wrote, and what the vCPU does next."""
    gprs: dict[int, int] = field(default_factory=dict)
    xmms: dict[int, int] = field(default_factory=dict)
    action: Halt | Yield | GuestExit | FatalError | None = None

    @classmethod
    def status(cls, r10: int, **regs: int) -> "VmResume":
        """A reply with R10 = status and named outputs, e.g. r11=value."""
        gprs = {abi.R10: r10}
        for name, value in regs.items():
            gprs[_GPR_INDEX[name]] = value & abi.MASK64
        return cls(gprs=gprs)


_GPR_INDEX = {name: i for i, name in enumerate(abi.GPR_NAMES)}
