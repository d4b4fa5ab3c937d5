"""Every constant of the TDX guest <-> module <-> host interface.

Each group names the public source it comes from, with the tags of
shared/spec/tdx-interface.md (section numbers in brackets), and each is
spelled once.  The C hooks take theirs from here (setup.py generates
tdxsim_abi.h); x86 architecture numbers the vCPU needs (paging bits,
interrupt gates, EFER) live with the code that models them (vcpu/).
"""
from __future__ import annotations

from enum import IntEnum

# --- General-purpose register indices (spec 0.1; Intel SDM encoding order) ---
GPR_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI = range(8)
R8, R9, R10, R11, R12, R13, R14, R15 = range(8, 16)


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
    # TD-scope metadata (TDG.VM.RD/WR; [M-err] tdx_error_codes_defs.h)
    METADATA_FIELD_ID_INCORRECT = 0xC000_0C00_0000_0000
    METADATA_FIELD_NOT_WRITABLE = 0xC000_0C01_0000_0000
    METADATA_FIELD_VALUE_NOT_VALID = 0xC000_0C03_0000_0000
    METADATA_FIRST_FIELD_ID_IN_CONTEXT = 0x0000_0C0B_0000_0000  # a warning


# Operand ids above the GPRs in status bits 31:0 ([M-err] tdx_error_codes_defs.h)
OPERAND_ID_RTMR = 168  # the TDCS RTMR lock (TDG.MR.REPORT, TDG.MR.RTMR.EXTEND: BUSY, spec 13.2)


def operand_invalid(operand: int) -> int:
    """TDX_OPERAND_INVALID with the offending GPR index in bits 31:0 (spec 2.1)."""
    return Status.OPERAND_INVALID | operand


# --- TDG.VP.VMCALL control word in RCX (spec 3.1, 3.2; [M-vmcall]) ---
GPR_SELECT_MASK = 0xFFFF
XMM_SELECT_SHIFT = 16
XMM_SELECT_MASK = 0xFFFF
RCX_RESERVED_MASK = 0xFFFF_FFFF_0000_0000
NEVER_SELECTABLE = 1 << RAX | 1 << RCX | 1 << RSP  # 0x0013
RBP_SELECT = 1 << RBP  # 0x0020, refused when the TD has NO_RBP_MOD

# Masks seen in guest code (spec 0.1)
MASK_R10_R15 = 0xFC00  # seed, Linux v5.19-v6.2, td-shim
MASK_LINUX_63 = 0xFFCC  # Linux v6.3+
MASK_OLD_EDK2 = 0xFFEC  # 0xFFCC + RBP, invalid under NO_RBP_MOD

# VMX basic exit reasons (spec 0.1; Intel SDM)
EXIT_REASON_CPUID = 10
EXIT_REASON_HLT = 12
EXIT_REASON_IO = 30
EXIT_REASON_MSR_READ = 31
EXIT_REASON_MSR_WRITE = 32
EXIT_REASON_EPT_VIOLATION = 48
EXIT_REASON_TDCALL = 77

# EPT-violation exit qualification (spec 8.2; SDM vol. 3, Table 28-7 "Exit
# Qualification for EPT Violations"; [M-api] vmx_exit_qualification_t).
# Bits 5:3 hold the EPT entry's R/W/X permissions: always 0 here, as a pending
# SEPT entry and KVM's MMIO SPTE grant nothing.
EPT_QUAL_READ = 1 << 0
EPT_QUAL_WRITE = 1 << 1
EPT_QUAL_FETCH = 1 << 2
EPT_QUAL_GLA_VALID = 1 << 7
EPT_QUAL_TRANSLATED = 1 << 8  # the access itself, not a paging-structure entry

# #VE for I/O (spec 8.2; SDM vol. 3, Table 28-5 "Exit Qualification for I/O
# Instructions").  Bits 5 (REP) and 6 (immediate port) are SDM-only.
IO_QUAL_IN = 1 << 3
IO_QUAL_STRING = 1 << 4
IO_QUAL_REP = 1 << 5
IO_QUAL_IMMEDIATE = 1 << 6
IO_QUAL_PORT_SHIFT = 16
# VM-exit instruction information for INS/OUTS (SDM vol. 3, Table 28-8)
INSN_INFO_ADDR_SIZE_SHIFT = 7  # 1 = 32-bit, 2 = 64-bit
INSN_INFO_SEGMENT_SHIFT = 15
# CPUID leaves that always raise #VE: the hypervisor range ([M-cpuid] td_cpuid.c)
CPUID_HYPERVISOR_FIRST = 0x4000_0000
CPUID_HYPERVISOR_LAST = 0x4FFF_FFFF
# CPUID(0x21) is fixed by the module: EBX, EDX, ECX spell "IntelTDX    " ([M-cpuid] cpuid_configurations.c)
CPUID_TDX_LEAF = 0x21
CPUID_TDX_VALUES = (0, 0x6574_6E49, 0x2020_2020, 0x5844_546C)  # EAX, EBX, ECX, EDX
# TDG.VP.CPUIDVE.SET control in RCX (spec 1.3; [M-api] tdg_vp_cpuidve_set.c)
CPUIDVE_SUPERVISOR = 1 << 0  # #VE for every CPUID at CPL 0
CPUIDVE_USER = 1 << 1  # ... at CPL > 0
CPUIDVE_RESERVED = ~3 & 0xFFFF_FFFF_FFFF_FFFF

# --- Measurement and attestation (spec 1.3; [M-api] tdx_api_defs.h, tdg_mr_*.c) ---
SHA384_SIZE = 48
NUM_RTMRS = 4
RTMR_EXTEND_ALIGN = 64
TDREPORT_SIZE = 1024  # also its GPA alignment
REPORTDATA_SIZE = 64  # also its GPA alignment
REPORT_TYPE_TDX = 0x81
REPORT_SUBTYPE_TDX = 0
# TDREPORT_STRUCT offsets: REPORTMACSTRUCT (256 B), TEE_TCB_INFO (239 B),
# 17 reserved bytes, TDINFO (512 B)
REPORT_TEE_TCB_INFO_HASH = 32
REPORT_TEE_INFO_HASH = 80
REPORTDATA_OFFSET = 128
REPORT_MAC = 224
REPORT_MAC_SIZE = 32
REPORT_TEE_TCB_INFO = 256
TEE_TCB_INFO_SIZE = 239
REPORT_TDINFO = 512
TDINFO_SIZE = 512
TDINFO_ATTRIBUTES = 0  # offsets within TDINFO
TDINFO_XFAM = 8
TDINFO_MRTD = 16
TDINFO_MRCONFIGID = 64
TDINFO_MROWNER = 112
TDINFO_MROWNERCONFIG = 160
TDINFO_RTMR = 208  # RTMR[i] at 208 + 48 i
# MRTD build records: 128-byte headers "MEM.PAGE.ADD" / "MR.EXTEND" with the
# GPA at byte 16; MR.EXTEND covers 256-byte chunks (TDH.MEM.PAGE.ADD, TDH.MR.EXTEND)
MR_EXTEND_CHUNK = 256

# --- TD-scope metadata field IDs for TDG.VM.RD/WR ([M-api] tdr_tdcs_fields_lookup.c) ---
# A field is matched by CLASS_CODE (bits 61:56) and FIELD_CODE (23:0); size,
# context and write-mask-valid bits are ignored, other reserved bits must be 0.
FIELD_ID_MATCH_MASK = 0x3F00_0000_00FF_FFFF
FIELD_ID_RESERVED_MASK = 0x4083_FFFC_FF00_0000  # reserved, LAST_ELEMENT, LAST_FIELD
FIELD_ID_NA = 0xFFFF_FFFF_FFFF_FFFF
FIELD_ATTRIBUTES = 0x1110_0003_0000_0000
FIELD_XFAM = 0x1110_0003_0000_0001
FIELD_MAX_VCPUS = 0x1110_0002_0000_0002
FIELD_GPAW = 0x1110_0000_0000_0003  # 0 = 48 bits, 1 = 52 bits
FIELD_NUM_VCPUS = 0x9010_0002_0000_0001
FIELD_NOTIFY_ENABLES = 0x9110_0003_0000_0010  # Linux writes it as 0x9100000000000010
FIELD_CONFIG_FLAGS = 0x9110_0003_0000_0016
FIELD_MRTD = 0x1310_0003_0000_0000  # 6 elements of 8 bytes
# TD-scope controls (spec 13.2; [LX-sh] asm/shared/tdx.h; [M-api] metadata_td.c)
FIELD_TD_CTLS = 0x1110_0003_0000_0017
FIELD_TOPOLOGY_ENUM_CONFIGURED = 0x9110_0000_0000_0019  # 1 byte; Linux: 0x9100000000000019
CONFIG_FLAGS_GPAW52 = 1 << 0
CONFIG_FLAGS_FLEXIBLE_PENDING_VE = 1 << 1  # the guest may change TD_CTLS.PENDING_VE_DISABLE
CONFIG_FLAGS_NO_RBP_MOD = 1 << 2
TD_CTLS_PENDING_VE_DISABLE = 1 << 0  # a pending-page access exits to the host, no #VE
TD_CTLS_ENUM_TOPOLOGY = 1 << 1  # CPUID 0xB/0x1F answered by the module
TD_CTLS_VIRT_CPUID2 = 1 << 2  # CPUID 2 answered by the module
TD_CTLS_REDUCE_VE = 1 << 3  # implies ENUM_TOPOLOGY and VIRT_CPUID2; unknown leaves read 0
TD_CTLS_LOCK = 1 << 63  # no further change
TD_CTLS_GUEST_WRITABLE = 0xF | TD_CTLS_LOCK  # [uncertain: the ABI JSON's guest write mask]
# CPUID leaves td_cpuid.c answers only under a TD control (else #VE); 9, 0xF,
# 0x10 and 0x1B also need their feature (DCA, RDT, PCONFIG) absent, as here
CPUID_LEAVES_VIRT_CPUID2 = frozenset({0x2})
CPUID_LEAVES_TOPOLOGY = frozenset({0xB, 0x1F})  # EDX = the vCPU's x2APIC ID
CPUID_LEAVES_REDUCE_VE = frozenset({0x6, 0x9, 0xC, 0xF, 0x10, 0x16, 0x17, 0x1B,
                                    0x8000_0002, 0x8000_0003, 0x8000_0004, 0x8000_0005})

# TDX 1.5 metadata (spec 13.2): vCPU scope ([M-api] tdvps_fields_lookup.c),
# module scope (Linux arch/x86/virt/vmx/tdx/tdx.h, "global_metadata.json")
FIELD_VP_CPUID_CONTROL = 0xA120_0000_0000_0000  # 1 byte per CPUID table entry, 128
CPUID_CONTROL_ENTRIES = 128
CPUID_CONTROL_GUEST_WRITABLE = 0x3  # bit 0 #VE at CPL 0, bit 1 at CPL > 0
FIELD_SYS_VENDOR_ID = 0x0800_0002_0000_0000
FIELD_SYS_MINOR_VERSION = 0x0800_0001_0000_0003
FIELD_SYS_MAJOR_VERSION = 0x0800_0001_0000_0004
FIELD_SYS_UPDATE_VERSION = 0x0800_0001_0000_0005
FIELD_SYS_INTERNAL_VERSION = 0x0800_0001_0000_0006
FIELD_SYS_BUILD_DATE = 0x8800_0002_0000_0001
FIELD_SYS_BUILD_NUM = 0x8800_0001_0000_0002
FIELD_SYS_ATTRIBUTES = 0x0A00_0002_0000_0000
FIELD_SYS_TDX_FEATURES0 = 0x0A00_0003_0000_0008
TDX_FEATURES0_PENDING_EPT_VIOLATION_V2 = 1 << 16
TDX_FEATURES0_ENUM_TOPOLOGY = 1 << 20
TDX_VENDOR_INTEL = 0x8086
MD_LIST_SIZE = 4096  # TDG.SYS.RDALL: one 4 KiB private page, 4 KiB aligned
# TDG.MEM.PAGE.ATTR.RD/WR ([M-api] gpa_mapping_and_flags_t): level 2:0, GPA 51:12
PAGE_ATTR_PENDING = 1 << 62
PAGE_ATTR_MAX_LEVEL = 2  # verify_page_info_input(.., LVL_PT, LVL_PDPT)


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
FATAL_CODE_RESERVED = 0xFFFF  # QEMU rejects codes with bits 15:0 set, stops the VM anyway

# MapGPA (spec 4.4, 6.3; [KVM]): conversion in 2 MiB steps counted from R12
MAP_GPA_CHUNK = 2 << 20

# GetQuote buffer (spec 4.5, 6.4; [QEMU], [LX-quote]): header = version u64,
# status u64, in_len u32, out_len u32; request and quote follow it
QUOTE_HEADER = "<QQII"
QUOTE_HEADER_SIZE = 24
QUOTE_VERSION = 1
QUOTE_STATUS_SUCCESS = 0x0000_0000_0000_0000
QUOTE_STATUS_IN_FLIGHT = 0xFFFF_FFFF_FFFF_FFFF
QUOTE_STATUS_ERROR = 0x8000_0000_0000_0000
QUOTE_STATUS_UNAVAILABLE = 0x8000_0000_0000_0001
QUOTE_MAX_BUFFER = 128 << 10
QUOTE_MAX_IN_FLIGHT = 16
# TDREPORT_STRUCT (TDG.MR.REPORT, spec 1.3 leaf 4; [M-api]): TDREPORT_SIZE
# bytes that start with the 256-byte REPORTMACSTRUCT = REPORTTYPE 4, reserved
# 12, CPUSVN 16, TEE_TCB_INFO_HASH 48, TEE_INFO_HASH 48, REPORTDATA 64
# (REPORTDATA_OFFSET), reserved 32, MAC 32

# SetupEventNotifyInterrupt (spec 4.7; [QEMU]); the vectors a TDX host can make
# pending, NMI besides, never exceptions 0-31 (spec 13.1; [KVM] posted interrupts)
EVENT_NOTIFY_VECTORS = EXTERNAL_VECTORS = range(32, 256)
NMI_VECTOR = 2  # IDT vector of NMIs (SDM vol. 3, 6.3)
INT80_VECTOR = 0x80  # the 32-bit syscall gate Heckler reached from outside (spec 13.4 B14)
FATAL_MESSAGE_REGS = (R14, R15, RBX, RDI, RSI, R8, R9, RDX)

# GetTdVmCallInfo leaf 1 bitmap in R11 (spec 4.7, 13.1): current KVM/QEMU set
# bit 1 only; GetQuote's bit 0 is set by pre-2025 hosts (`kvm-legacy`) only
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
# PV features in CPUID 0x40000001 EAX (include/uapi/linux/kvm_para.h); KVM
# checks them only when user space enforces PV CPUID (guest_pv_has)
KVM_CPUID_FEATURES = 0x4000_0001
KVM_FEATURE_PV_UNHALT = 7
KVM_FEATURE_PV_SEND_IPI = 11
KVM_FEATURE_PV_SCHED_YIELD = 13
KVM_MAP_GPA_RANGE_ENCRYPTED = 1 << 4  # a2: target private; clear: shared
# ICR (KVM_HC_SEND_IPI a3, x2APIC MSR 0x830; SDM vol. 3 11.6.1, 11.12.9-10, KVM
# kvm_pv_send_ipi, X2APIC_ICR_RESERVED_BITS): vector 7:0, mode 10:8, logical 11,
# busy 12, shorthand 19:18 (self/all/all but self), destination 63:32.
ICR_VECTOR, ICR_DELIVERY_MODE, ICR_DEST_LOGICAL, ICR_SHORTHAND = 0xFF, 0x700, 1 << 11, 0xC0000
MSR_X2APIC_ICR, ICR_SHORTHAND_SHIFT, ICR_DEST_SHIFT, X2APIC_CLUSTER_SHIFT = 0x830, 18, 32, 16
ICR_SELF, ICR_ALL, ICR_OTHERS, ICR_MODE_FIXED, ICR_MODE_NMI = 1, 2, 3, 0x000, 0x400
ICR_RESERVED, ICR_BUSY = 0xFFF0_0000 | 0x3 << 16 | 1 << 13, 1 << 12
KVM_EPERM = 1
KVM_E2BIG = 7
KVM_EFAULT = 14
KVM_EINVAL = 22
KVM_EOPNOTSUPP = 95
KVM_ENOSYS = 1000


def kvm_error(errno: int) -> int:
    """A negated KVM errno as the 64-bit value the guest reads in R10."""
    return (-errno) & 0xFFFF_FFFF_FFFF_FFFF


# --- The console UART, a 16550 on COM1 (TI PC16550D datasheet, register
# offsets from the base port); the host's serial device model ---
COM1 = 0x3F8
UART_THR = 0  # transmit holding register (write, DLAB = 0)
UART_LCR = 3  # line control register
UART_LCR_DLAB = 0x80  # divisor latch access: THR is the divisor's low byte
UART_LSR = 5  # line status register
UART_LSR_THRE = 0x20  # transmit holding register empty
UART_LSR_TEMT = 0x40  # transmitter empty


# --- MSRs used by the host models (Intel SDM vol. 4) ---
MSR_IA32_TSC = 0x10
MSR_IA32_APIC_BASE = 0x1B
MSR_IA32_FEATURE_CONTROL = 0x3A
MSR_IA32_MISC_ENABLE = 0x1A0
MSR_IA32_TSC_DEADLINE = 0x6E0
MSR_X2APIC_EOI = 0x80B
MSR_X2APIC_LVT_TIMER = 0x832
MSR_X2APIC_TIMER_INITIAL_COUNT = 0x838
MSR_X2APIC_TIMER_CURRENT_COUNT = 0x839  # read-only
MSR_X2APIC_TIMER_DIVIDE_CONFIG = 0x83E
# The APIC timer counts at the core crystal clock over the divisor (SDM vol. 3,
# 11.5.4).  TDX fixes that clock at 25 MHz and reports it in CPUID(0x15).ECX;
# KVM follows with KVM_CAP_X86_APIC_BUS_CYCLES_NS = 40 for a TD (Linux commit
# 6fef518594bc, "KVM: x86: Add a capability to configure bus frequency for
# APIC timer").  The virtual TSC runs at 1 GHz: CPUID(0x15) EBX/EAX = 40/1.
CORE_CRYSTAL_HZ = 25_000_000
APIC_BUS_CYCLE_NS = 1_000_000_000 // CORE_CRYSTAL_HZ
TSC_HZ = 1_000_000_000
MSR_EFER = 0xC000_0080

# --- Seed __tdx_hypercall flags (spec 9.1; [Seed], [LX-call]) ---
TDX_HCALL_HAS_OUTPUT = 1
TDX_HCALL_ISSUE_STI = 2

# --- TD ATTRIBUTES (TDG.VP.INFO RDX, spec 1.3; [LX-tdx] ATTR_SEPT_VE_DISABLE) ---
# Set: an access to a pending private page exits to the host instead of #VE
# (the module's TD_CTLS.PENDING_VE_DISABLE, initialised from this bit).
ATTR_SEPT_VE_DISABLE = 1 << 28

# --- TDG.MEM.PAGE.ACCEPT RCX (spec 1.3 leaf 6; [M-api] page_info_api_input_t):
# level in bits 2:0 (0 = 4K, 1 = 2M, 2 = 1G), reserved 11:3 and 63:52, GPA 51:12.
ACCEPT_LEVEL_MASK = 0x7
ACCEPT_RESERVED_MASK = 0xFFF0_0000_0000_0FF8
ACCEPT_MAX_LEVEL = 1  # the module accepts 4K and 2M only (verify_page_info_input(.., LVL_PD))

# --- Guest-physical address width and the shared bit (spec 1.3, 4.4) ---
GPAW_DEFAULT = 48
PAGE_SIZE = 0x1000


def shared_bit(gpaw: int) -> int:
    return 1 << (gpaw - 1)


MASK64 = 0xFFFF_FFFF_FFFF_FFFF
