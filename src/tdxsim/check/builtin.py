"""The bundled contracts, written from spec 9 and the public ABI descriptions
(Linux arch/x86/coco/tdx/tdcall.S and virt/vmx/tdx/tdxcall.S, td-shim
tdx-tdcall/src/asm, EDK2 MdePkg BaseLib X64/TdVmcall.nasm).  Every one
holds only the registers its calling convention really preserves: RBX,
RBP, R12-R15 for SysV; also RDI, RSI and XMM6-15 for Microsoft x64.
"""
from __future__ import annotations

from .. import abi
from .contracts import NEVER, ON_SUCCESS, Contract, Fixed, When, argument


def _layout(*registers: int) -> dict[int, int]:
    return {r: 8 * i for i, r in enumerate(registers)}


R10_R15 = (abi.R10, abi.R11, abi.R12, abi.R13, abi.R14, abi.R15)
# struct tdx_hypercall_args of Linux v6.3-v6.6 (spec 9.2): 12 x u64
LINUX_63 = _layout(abi.R8, abi.R9, abi.R10, abi.R11, abi.R12, abi.R13, abi.R14, abi.R15,
                   abi.RDI, abi.RSI, abi.RBX, abi.RDX)
# struct tdx_module_args of Linux v6.7+ (spec 9.2): 13 x u64
LINUX_67 = _layout(abi.RCX, abi.RDX, abi.R8, abi.R9, abi.R10, abi.R11, abi.R12, abi.R13,
                   abi.R14, abi.R15, abi.RBX, abi.RDI, abi.RSI)
# td-shim TdVmcallArgsEx: RDX, RBX, RSI, RDI, R8-R15 at 0x0..0x58
TD_SHIM_EX = _layout(abi.RDX, abi.RBX, abi.RSI, abi.RDI, abi.R8, abi.R9, *R10_R15)

HAS_OUTPUT = When(bit=abi.TDX_HCALL_HAS_OUTPUT, text="has_output")


def _struct_call(name: str, mask: int, layout: dict[int, int], **kw) -> Contract:
    """A stub that takes a struct of registers, loads every field, and
    returns R10 (the GHCI status)."""
    return Contract(name=name, mask=mask, fields=layout, inputs=frozenset(layout),
                    outputs=frozenset(layout), returns=abi.R10, **kw)


BUILTIN: dict[str, Contract] = {
    # u64 __tdx_hypercall(struct tdx_hypercall_args *args, u64 flags), v5.19 (spec 9.1)
    "seed": _struct_call(
        "seed", abi.MASK_R10_R15, _layout(*R10_R15), args=abi.RDI, flags=abi.RSI,
        flag_bits={"has_output": abi.TDX_HCALL_HAS_OUTPUT, "issue_sti": abi.TDX_HCALL_ISSUE_STI},
        copy_outputs=HAS_OUTPUT,
        interrupts=When(bit=abi.TDX_HCALL_ISSUE_STI, text="issue_sti")),
    # v6.3: same signature, 12 fields, mask 0xFFCC, ISSUE_STI gone (spec 9.2)
    "linux-6.3": _struct_call(
        "linux-6.3", abi.MASK_LINUX_63, LINUX_63, args=abi.RDI, flags=abi.RSI,
        flag_bits={"has_output": abi.TDX_HCALL_HAS_OUTPUT}, copy_outputs=HAS_OUTPUT),
    # v6.4-v6.6: __tdx_hypercall(args) never writes outputs back ...
    "linux-6.4": _struct_call("linux-6.4", abi.MASK_LINUX_63, LINUX_63, copy_outputs=NEVER),
    # ... and __tdx_hypercall_ret(args) always does (spec 9.2)
    "linux-6.4-ret": _struct_call("linux-6.4-ret", abi.MASK_LINUX_63, LINUX_63),
    # v6.7+: u64 __tdx_hypercall(struct tdx_module_args *); RCX is the mask, set by the
    # stub, every field written back.  Newer tdx_module_args end in a u8 version at
    # offset 104 that TDX_MODULE_CALL puts into RAX[23:16]: 0 for TDG.VP.VMCALL.
    "linux-6.7": Contract(
        name="linux-6.7", mask=abi.MASK_LINUX_63, fields=LINUX_67,
        inputs=frozenset(LINUX_67) - {abi.RCX}, outputs=frozenset(LINUX_67),
        fixed=(Fixed("version", 104, 1, 0),)),
    # td-shim u64 asm_td_vmcall(TdVmcallArgs *args), Microsoft x64 (extern "win64")
    "td-shim-vmcall": _struct_call(
        "td-shim-vmcall", abi.MASK_R10_R15, _layout(*R10_R15), convention="ms",
        args=argument("ms", 1)),
    # td-shim u64 asm_td_vmcall_ex(TdVmcallArgsEx *args, u64 do_sti)
    "td-shim-vmcall-ex": _struct_call(
        "td-shim-vmcall-ex", abi.MASK_LINUX_63, TD_SHIM_EX, convention="ms",
        args=argument("ms", 1), flags=argument("ms", 2), flag_bits={"do_sti": 1},
        interrupts=When(bit=1, text="do_sti")),
    # EDK2 UINT64 EFIAPI TdVmCall(Leaf, P1, P2, P3, P4, UINT64 *Val): R11 = Leaf,
    # R12..R15 = P1..P4 (P4 at [RSP+0x28]), *Val (at [RSP+0x30]) = R11 when R10 = 0.
    # It zeroes RBP on purpose and returns the module's status when TDCALL fails.
    "edk2-tdvmcall": Contract(
        name="edk2-tdvmcall", mask=abi.MASK_LINUX_63, fields={abi.R11: 0},
        inputs=frozenset(), outputs=frozenset({abi.R11}), convention="ms",
        args=argument("ms", 6), copy_outputs=ON_SUCCESS,
        reg_args={abi.R11: argument("ms", 1), abi.R12: argument("ms", 2),
                  abi.R13: argument("ms", 3), abi.R14: argument("ms", 4),
                  abi.R15: argument("ms", 5)},
        frame_pointer="not-required", on_failure="return-status"),
}
