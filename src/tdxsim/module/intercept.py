"""What the TDX module does when the TD executes an instruction it
intercepts (spec 8.1, 8.2): HLT and IN/OUT/INS/OUTS always raise #VE; CPUID and
RDMSR/WRMSR are answered natively or raise #VE (msr.py for the MSRs).

VE info holds the VM exit's reason, qualification, instruction length and
information ([M-ve] tdx_inject_ve); GLA and GPA are 0 for these exits
(td_generic_ve_exit passes 0 for both).
"""
from __future__ import annotations

import functools

from .. import abi
from . import msr, td_ctls
from .ve import VeInfo

# CPUID leaves the module answers itself from the TD's configured values:
# its lookup table minus the leaves that fault without REDUCE_VE, VIRT_CPUID2
# or ENUM_TOPOLOGY, which td_ctls.py adds under those controls ([M-cpuid]
# td_cpuid.c, cpuid_configurations.c).  Every other leaf raises #VE, or reads
# as zeros under REDUCE_VE.
NATIVE_CPUID_LEAVES = frozenset({
    0x0, 0x1, 0x3, 0x4, 0x5, 0x7, 0x8, 0xA, 0xD, 0xE, 0x11, 0x12, 0x13, 0x14, 0x15, 0x19,
    0x1A, 0x1C, 0x1D, 0x1E, 0x20, 0x21, 0x22, 0x23,
    0x8000_0000, 0x8000_0001, 0x8000_0007, 0x8000_0008})


def intercept(module, insn, regs, time_ns: int):
    """VeInfo to raise #VE, a vector to inject, or None once emulated."""
    if insn.kind == "hlt":  # with its prefixes: the length counts them
        return VeInfo(abi.EXIT_REASON_HLT, instr_len=insn.length)
    if insn.kind in ("in", "out"):
        return io_ve(insn, regs)
    if insn.kind == "cpuid":
        return cpuid(module, insn, regs)
    return msr.intercept(module, insn, regs, time_ns)


def io_ve(insn, regs) -> VeInfo:
    """Exit qualification for I/O (spec 8.2): size - 1, IN, string, REP,
    immediate port, port; INS/OUTS also report address size and segment."""
    return _io_info(insn, regs.get(abi.RDX) & 0xFFFF if insn.port is None else insn.port)


@functools.lru_cache(maxsize=4096)  # a guest polls the same ports: PM timer, UART
def _io_info(insn, port: int) -> VeInfo:
    qualification = ((insn.size - 1) | abi.IO_QUAL_IN * (insn.kind == "in")
                     | abi.IO_QUAL_STRING * insn.string | abi.IO_QUAL_REP * insn.rep
                     | abi.IO_QUAL_IMMEDIATE * (insn.port is not None)
                     | port << abi.IO_QUAL_PORT_SHIFT)
    info = 0
    if insn.string:
        info = ({16: 0, 32: 1}.get(insn.address_size, 2) << abi.INSN_INFO_ADDR_SIZE_SHIFT
                | insn.segment << abi.INSN_INFO_SEGMENT_SHIFT)
    return VeInfo(abi.EXIT_REASON_IO, qualification, instr_len=insn.length, instr_info=info)


def cpuid(module, insn, regs) -> VeInfo | None:
    """The hypervisor range always raises #VE, then TDG.VP.CPUIDVE.SET for
    the current CPL, then leaves outside the native set.  Native values are
    the TD's CPUID configuration, which the VMM supplies at TD creation (the
    host's CPUID table), except the fixed TDX leaf.  [uncertain] The module
    also fixes bits of other leaves (e.g. CPUID(0).EAX) and maps leaves above
    the maximum to the maximum basic leaf; tdxsim does not."""
    leaf, subleaf = regs.get(abi.RAX) & 0xFFFF_FFFF, regs.get(abi.RCX) & 0xFFFF_FFFF
    forced = abi.CPUIDVE_USER if regs.cpl else abi.CPUIDVE_SUPERVISOR
    if (abi.CPUID_HYPERVISOR_FIRST <= leaf <= abi.CPUID_HYPERVISOR_LAST or module.vp.cpuid_ve & forced
            or module.vp.cpuid_control.get(leaf, 0) & forced):  # TDG.VP.WR CPUID_CONTROL
        return VeInfo(abi.EXIT_REASON_CPUID, instr_len=insn.length)
    native = td_ctls.cpuid_native(module, leaf, leaf in NATIVE_CPUID_LEAVES)
    if native is False:
        return VeInfo(abi.EXIT_REASON_CPUID, instr_len=insn.length)
    if native is None:  # REDUCE_VE: a leaf outside the module's table reads as zeros
        values = (0, 0, 0, 0)
    elif leaf == abi.CPUID_TDX_LEAF:
        values = abi.CPUID_TDX_VALUES
    else:
        values = module.cpuid.lookup(leaf, subleaf)
    if leaf in abi.CPUID_LEAVES_TOPOLOGY:  # EDX: the vCPU's x2APIC ID (its index here)
        values = (*values[:3], module.vp.index)
    regs.set_gprs(dict(zip((abi.RAX, abi.RBX, abi.RCX, abi.RDX), values)))
    regs.rip = regs.rip + insn.length
    return None
