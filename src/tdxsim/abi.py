"""Every constant of the TDX guest <-> module <-> host interface.

Each group names the public source it comes from, with the tags of
shared/spec/tdx-interface.md (section numbers in brackets).  Nothing else in
tdxsim spells an ABI number.
"""
from __future__ import annotations

from enum import IntEnum

# --- General-purpose register indices (spec 0.1; Intel SDM encoding order) ---
GPR_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI = range(8)
R8, R9, R10, R11, R12, R13, R14, R15 = range(8, 16)


def gpr_bit(index: int) -> int:
    return 1 << index


# --- TDCALL instruction (spec 1.1; [LX-call]) ---
TDCALL_BYTES = bytes.fromhex("66 0F 01 CC")
TDCALL_LEN = 4
UD2_BYTES = bytes.fromhex("0F 0B")
VMCALL_BYTES = bytes.fromhex("0F 01 C1")

# RAX on input (spec 1.2; [M-disp])
RAX_LEAF_MASK = 0xFFFF
RAX_VERSION_SHIFT = 16
RAX_VERSION_MASK = 0xFF
RAX_RESERVED_MASK = 0xFFFF_FFFF_FF00_0000


class Leaf(IntEnum):
    """TDCALL leaf numbers, RAX[15:0] (spec 1.3; [M-api])."""
    VP_VMCALL = 0
    VP_INFO = 1
    MR_RTMR_EXTEND = 2
    VP_VEINFO_GET = 3
    MR_REPORT = 4
    VP_CPUIDVE_SET = 5
    MEM_PAGE_ACCEPT = 6
    VM_RD = 7
    VM_WR = 8
    VP_RD = 9
    VP_WR = 10
    SYS_RD = 11
    SYS_RDALL = 12
    SERVTD_RD = 18
    SERVTD_WR = 19
    MR_VERIFYREPORT = 22
    MEM_PAGE_ATTR_RD = 23
    MEM_PAGE_ATTR_WR = 24
    VP_ENTER = 25
    VP_INVEPT = 26
    VP_INVVPID = 27


# Leaves that accept a nonzero version (<= 1) in RAX[23:16] (spec 1.2).
VERSIONED_LEAVES = {Leaf.VM_RD: 1, Leaf.VP_VEINFO_GET: 1}


# --- TDX module completion status in RAX (spec 2; [M-err]) ---
class Status:
    SUCCESS = 0x0000_0000_0000_0000
    NON_RECOVERABLE_VCPU = 0x4000_0001_0000_0000
    NON_RECOVERABLE_TD = 0x6000_0002_0000_0000
    INTERRUPTED_RESUMABLE = 0x8000_0003_0000_0000
    OPERAND_INVALID = 0xC000_0100_0000_0000  # | operand id (GPR index)
    OPERAND_ADDR_RANGE_ERROR = 0xC000_0101_0000_0000
    OPERAND_BUSY = 0x8000_0200_0000_0000
    RND_NO_ENTROPY = 0x8000_0203_0000_0000
    VCPU_STATE_INCORRECT = 0xC000_0700_0000_0000
    NO_VALID_VE_INFO = 0xC000_0704_0000_0000
    PAGE_ALREADY_ACCEPTED = 0x0000_0B0A_0000_0000
    PAGE_SIZE_MISMATCH = 0xC000_0B0B_0000_0000


def operand_invalid(operand: int) -> int:
    """TDX_OPERAND_INVALID with the offending GPR index in bits 31:0 (spec 2.1)."""
    return Status.OPERAND_INVALID | operand


# --- TDG.VP.VMCALL control word in RCX (spec 3.1, 3.2; [M-vmcall]) ---
GPR_SELECT_MASK = 0xFFFF
XMM_SELECT_SHIFT = 16
XMM_SELECT_MASK = 0xFFFF
RCX_RESERVED_MASK = 0xFFFF_FFFF_0000_0000
NEVER_SELECTABLE = gpr_bit(RAX) | gpr_bit(RCX) | gpr_bit(RSP)  # 0x0013
RBP_SELECT = gpr_bit(RBP)  # 0x0020, refused when the TD has NO_RBP_MOD

# Masks seen in guest code (spec 0.1)
MASK_R10_R15 = 0xFC00  # seed, Linux v5.19-v6.2, td-shim
MASK_LINUX_63 = 0xFFCC  # Linux v6.3+
MASK_OLD_EDK2 = 0xFFEC  # 0xFFCC + RBP, invalid under NO_RBP_MOD

# VMX basic exit reasons (spec 0.1; Intel SDM)
EXIT_REASON_CPUID = 10
EXIT_REASON_HLT = 12
EXIT_REASON_IO = 30
EXIT_REASON_TDCALL = 77


# --- GHCI sub-functions in R11 when R10 = 0 (spec 4.3) ---
class SubFn(IntEnum):
    CPUID = 10
    HLT = 12
    IO = 30
    RDMSR = 31
    WRMSR = 32
    MMIO = 48  # #VE.RequestMMIO
    WBINVD = 54
    PCONFIG = 65
    GET_TD_VM_CALL_INFO = 0x10000
    MAP_GPA = 0x10001
    GET_QUOTE = 0x10002
    REPORT_FATAL_ERROR = 0x10003
    SETUP_EVENT_NOTIFY_INTERRUPT = 0x10004
    SERVICE = 0x10005
    MIGTD = 0x10006


# R10 status codes returned by the VMM (spec 4.2; [LX-sh], [KVM], [QEMU])
class VmcallStatus:
    SUCCESS = 0x0000_0000_0000_0000
    RETRY = 0x0000_0000_0000_0001
    INVALID_OPERAND = 0x8000_0000_0000_0000
    GPA_INUSE = 0x8000_0000_0000_0001
    ALIGN_ERROR = 0x8000_0000_0000_0002
    SUBFUNC_UNSUPPORTED = 0x8000_0000_0000_0003


# Instruction.IO direction in R13 (spec 4.3; KVM tdx_emulate_io, Linux handle_in/out)
IO_READ = 0  # IN
IO_WRITE = 1  # OUT
IO_SIZES = (1, 2, 4)
# #VE.RequestMMIO (spec 4.3, 6.2)
MMIO_READ = 0
MMIO_WRITE = 1
MMIO_SIZES = (1, 2, 4, 8)

# ReportFatalError (spec 4.6; [LX-tdx], [QEMU])
FATAL_GPA_VALID = 1 << 63
FATAL_MESSAGE_REGS = (R14, R15, RBX, RDI, RSI, R8, R9, RDX)

# GetTdVmCallInfo leaf 1 bitmap in R11 (spec 4.7)
TDVMCALLINFO_GET_QUOTE = 1 << 0
TDVMCALLINFO_SETUP_EVENT_NOTIFY = 1 << 1


# --- KVM hypercalls over TDVMCALL, R10 = nr (spec 5; [KVM-hc]) ---
class KvmHc(IntEnum):
    VAPIC_POLL_IRQ = 1
    FEATURES = 3
    KICK_CPU = 5
    CLOCK_PAIRING = 9
    SEND_IPI = 10
    SCHED_YIELD = 11
    MAP_GPA_RANGE = 12


KVM_ARG_REGS = (R11, R12, R13, R14)  # a0..a3
KVM_EPERM = 1
KVM_E2BIG = 7
KVM_EFAULT = 14
KVM_EINVAL = 22
KVM_EOPNOTSUPP = 95
KVM_ENOSYS = 1000


def kvm_error(errno: int) -> int:
    """A negated KVM errno as the 64-bit value the guest reads in R10."""
    return (-errno) & 0xFFFF_FFFF_FFFF_FFFF


# --- MSRs used by the host models (Intel SDM vol. 4) ---
MSR_IA32_TSC = 0x10
MSR_IA32_APIC_BASE = 0x1B
MSR_IA32_FEATURE_CONTROL = 0x3A
MSR_IA32_MISC_ENABLE = 0x1A0
MSR_IA32_TSC_DEADLINE = 0x6E0
MSR_X2APIC_EOI = 0x80B
MSR_X2APIC_LVT_TIMER = 0x832
MSR_EFER = 0xC000_0080

# --- Seed __tdx_hypercall flags (spec 9.1; [Seed], [LX-call]) ---
TDX_HCALL_HAS_OUTPUT = 1
TDX_HCALL_ISSUE_STI = 2

# --- Guest-physical address width and the shared bit (spec 1.3, 4.4) ---
GPAW_DEFAULT = 48


def shared_bit(gpaw: int) -> int:
    return 1 << (gpaw - 1)


MASK64 = 0xFFFF_FFFF_FFFF_FFFF


def subfn_name(r10: int, r11: int) -> str:
    """Human name of a TDVMCALL request, for traces and diagnostics."""
    if r10 != 0:  # dict lookups: a ValueError per unknown number costs ~5 us
        hc = KvmHc._value2member_map_.get(r10)
        return f"KVM_HC_{hc.name}" if hc else f"KVM hypercall {r10}"
    fn = SubFn._value2member_map_.get(r11)
    return fn.name if fn else f"sub-function {r11:#x}"
