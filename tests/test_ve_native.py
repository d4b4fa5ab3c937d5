"""The guest library's #VE emulation of IN and MMIO loads against what the
same instruction does natively (spec 13.3, bug class B20; CVE-2024-47727 for
B15).

The oracle is the CPU itself: a bare Unicorn engine (no TDX, no tdxsim)
runs the very same instruction bytes against the same device contents, IN
answered by an instruction hook with the device's value, MMIO from a plain
page holding the device's registers.  tdxsim runs them through the TDX
module's #VE and the library's handler (tdx_ve_entry), which turns them into
Instruction.IO / #VE.RequestMMIO TDVMCALLs.  Both must leave identical
registers, so a 4-byte IN zero-extends RAX[63:32] and 1/2-byte INs keep the
upper bits, exactly as the hardware does.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, Uc
from unicorn import x86_const as X

from tdxsim import TD
from tdxsim.events import VeRaised

PORT = 0x510
DEVICE = 0x89AB_CDEF  # what the port returns, cut to the access size
PRESET = 0xAAAA_BBBB_CCCC_DDDD
STOP = 0x7000  # bare engine: the return address, where emulation stops

IN_GUEST = """
        .text
        .globl  gates, in8, in16, in32, in8_imm, in32_imm
gates:  push    %rbp
        mov     %rsp, %rbp
        lea     idt(%rip), %rdi
        mov     $20, %esi
        lea     tdx_ve_entry(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)
        pop     %rbp
        ret
in8:      in      (%dx), %al
          ret
in16:     in      (%dx), %ax
          ret
in32:     in      (%dx), %eax
          ret
in8_imm:  in      $0x51, %al
          ret
in32_imm: in      $0x51, %eax
          ret
        .section .rodata
idt_ptr: .word  256 * 16 - 1
        .quad   idt
        .data
        .balign 16
idt:    .fill   256 * 16, 1, 0
"""


class PortDevice:
    """An I/O device that answers DEVICE on its ports, cut to the size."""
    ports = range(0x51, 0x52)

    def __init__(self, port: int):
        self.ports = range(port, port + 1)

    def read(self, port: int, size: int) -> int:
        return DEVICE & ((1 << 8 * size) - 1)

    def write(self, port: int, size: int, value: int) -> None:
        return None


def bare_run(code: bytes, base: int, entry: int, regs: dict[str, int], data=None,
             in_value=None) -> dict[str, int]:
    """Run `code` (loaded at base) from entry until it returns, natively."""
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(base & ~0xFFF, 0x10000)
    uc.mem_write(base, code)
    uc.mem_map(0x6000, 0x2000)  # stack, with the stop address as return address
    uc.mem_write(0x7F00, STOP.to_bytes(8, "little"))
    if data is not None:
        address, content = data
        uc.mem_map(address & ~0xFFF, 0x1000)
        uc.mem_write(address & ~0xFFF, content)
    if in_value is not None:
        uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, _: in_value(port, size),
                    None, 1, 0, X.UC_X86_INS_IN)
    names = {"rax": X.UC_X86_REG_RAX, "rdx": X.UC_X86_REG_RDX, "rsi": X.UC_X86_REG_RSI,
             "rdi": X.UC_X86_REG_RDI, "r9": X.UC_X86_REG_R9}
    for name, value in regs.items():
        uc.reg_write(names[name], value)
    uc.reg_write(X.UC_X86_REG_RSP, 0x7F00)
    uc.emu_start(entry, STOP)
    return {name: uc.reg_read(reg) for name, reg in names.items()}


# --- IN ---

@pytest.fixture(scope="module")
def in_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("vein") / "in.S"
    path.write_text(IN_GUEST)
    return TD.from_source(path).image


@pytest.mark.parametrize("label,port", [("in8", PORT), ("in16", PORT), ("in32", PORT),
                                        ("in8_imm", 0x51), ("in32_imm", 0x51)])
def test_in_emulation_matches_the_native_instruction(in_image, label, port):
    td = TD(in_image)
    td.host.io_devices.append(PortDevice(port))
    td.call("gates")
    regs = {"rax": PRESET, "rdx": PORT}
    result = td.call_result(label, regs=regs)
    assert result.reason == "return", result.describe()
    assert any(isinstance(e, VeRaised) for e in result.events)  # it went through #VE
    text = min(s.vaddr for s in in_image.segments if s.executable)
    code = td.read(text, 0x1000)
    native = bare_run(code, text, td.symbol(label), regs,
                      in_value=lambda p, size: PortDevice(port).read(p, size) if p == port else 0)
    assert td.gprs()["rax"] == native["rax"]


def test_in32_zero_extends_and_in8_keeps_the_upper_bits(in_image):
    """The values themselves (spec 13.3), independent of the engine."""
    td = TD(in_image)
    td.host.io_devices.append(PortDevice(PORT))
    td.call("gates")
    assert td.call("in32", regs={"rax": PRESET, "rdx": PORT}) == DEVICE
    assert td.call("in8", regs={"rax": PRESET, "rdx": PORT}) == 0xAAAA_BBBB_CCCC_DDEF
    assert td.call("in16", regs={"rax": PRESET, "rdx": PORT}) == 0xAAAA_BBBB_CCCC_CDEF


# --- MMIO ---

GUEST = Path(__file__).parent / "guests" / "ept_ve.S"
MMIO_LA = 0xFFFF_8000_FEB0_0000  # the device through tdxsim's shared window
PATTERN = 0x8877_6655_4433_80F0
NATIVE_PAGE = 0x300000  # where the bare engine keeps the device's registers


@pytest.fixture(scope="module")
def mmio_image(tmp_path_factory):
    window = tmp_path_factory.mktemp("vemm") / "window.S"
    window.write_text(".globl mmio_window\n.set mmio_window, 0xFFFFFFFF80200000\n")
    return TD.from_source(GUEST, window).image


@pytest.mark.parametrize("label,regs", [
    ("mmio_load8", {"rax": PRESET}), ("mmio_load16", {"rax": PRESET}),
    ("mmio_load32", {"rax": PRESET}), ("mmio_load64", {"rax": PRESET}),
    ("mmio_load_sil", {"rsi": PRESET}), ("mmio_load_sib", {"rsi": 0x3FE}),
    ("mmio_movzbl", {"rax": PRESET}), ("mmio_movzwq", {"rax": PRESET}),
    ("mmio_movsbl", {"rax": PRESET}), ("mmio_movswq", {"rax": PRESET}),
    ("mmio_movsbw", {"rax": PRESET}),
])
def test_mmio_emulation_matches_the_native_instruction(mmio_image, label, regs):
    """The bare engine reads the device page at a low address (it has no
    paging to put it at the kernel window); the instruction is the same."""
    td = TD(mmio_image)
    td.call("library_gates")
    td.call("mmio_store64", MMIO_LA + 8, PATTERN)
    offset = -0xFF8 if label == "mmio_load_sib" else 8  # the SIB form adds 8 + 4 * 0x3FE
    full = {"rax": 0, "rdx": 0, "rsi": 0, "r9": 0} | regs
    result = td.call_result(label, regs=full | {"rdi": MMIO_LA + offset})
    assert result.reason == "return", result.describe()
    assert [e.exposed[11] for e in result.exits] == [48]  # one #VE.RequestMMIO
    device = td.host.mmio_devices[0]
    page = device.read(device.base, 0x1000).to_bytes(0x1000, "little")
    text = min(s.vaddr for s in mmio_image.segments if s.executable)
    native = bare_run(td.read(text, 0x2000), text, td.symbol(label),
                      full | {"rdi": NATIVE_PAGE + offset}, data=(NATIVE_PAGE, page))
    mine = td.gprs() | {"rdi": native["rdi"]}
    assert {k: mine[k] for k in native} == native


def test_mmio_to_a_user_half_address_is_refused(mmio_image):
    """Spec 13.3 (CVE-2024-47727): the GLA must be a kernel address, even at
    CPL 0.  Through own_tables the device is also at linear 0x40000000."""
    td = TD(mmio_image)
    td.call("library_gates")
    td.call("own_tables", 0xFEB0_0000 | 1 << 47 | 3)
    result = td.call_result("window_load")
    assert result.reason == "fatal" and "user-space address" in result.message
    assert result.exits[-1].exposed[11] == 0x10003  # ReportFatalError, no MMIO call


def test_mmio_to_the_kernel_half_alias_of_the_same_page_works(mmio_image):
    td = TD(mmio_image)
    td.call("library_gates")
    td.call("own_tables", 0xFEB0_0000 | 1 << 47 | 3)
    assert td.call("window_riprel") == 0x5358_4454


# --- interrupts stay blocked from #VE delivery until VEINFO.GET ---

BLOCK_GUEST = """
        .text
        .globl  gates, do_in, tick
gates:  push    %rbp
        mov     %rsp, %rbp
        lea     idt(%rip), %rdi
        mov     $20, %esi
        lea     ve_trap(%rip), %rdx
        call    tdx_set_gate
        orb     $1, idt + 20 * 16 + 5(%rip)     # a trap gate: IF stays 1
        lea     idt(%rip), %rdi
        mov     $0x30, %esi
        lea     tick(%rip), %rdx
        call    tdx_set_gate
        lidt    idt_ptr(%rip)
        pop     %rbp
        ret
do_in:  sti
        in      (%dx), %al
        ret
ve_trap:                                # IF = 1 here
        nop
        nop
        nop
        jmp     tdx_ve_entry            # VEINFO.GET is its first TDCALL
tick:   incq    ticks(%rip)
        iretq
        .section .rodata
idt_ptr: .word  256 * 16 - 1
        .quad   idt
        .data
        .balign 16
        .globl  ticks
ticks:  .quad   0
idt:    .fill   256 * 16, 1, 0
"""


def test_interrupts_are_blocked_until_veinfo_get(tmp_path):
    """An interrupt pending when #VE is delivered through a trap gate is not
    taken in the handler's first instructions (IF = 1 there): only after
    the handler's TDG.VP.VEINFO.GET (spec 13.3, 8.3)."""
    from tdxsim.events import InterruptDelivered
    path = tmp_path / "block.S"
    path.write_text(BLOCK_GUEST)
    td = TD.from_source(path)
    td.host.io_devices.append(PortDevice(PORT))
    td.call("gates")
    td.lapic.post(0x30)
    td.vcpu.regs.rflags = 0x2
    result = td.call_result("do_in", regs={"rdx": PORT})
    assert result.reason == "return", result.describe()
    [delivered] = [e for e in result.events if isinstance(e, InterruptDelivered)]
    # not in ve_trap's nops, where IF = 1 already; right after a TDCALL:
    # the handler's VEINFO.GET (inside __tdx_module_call)
    assert not td.symbol("ve_trap") <= delivered.rip <= td.symbol("ve_trap") + 3
    assert td.read(delivered.rip - 4, 4) == bytes.fromhex("66 0f 01 cc")
    assert td.read(td.symbol("ticks"), 8) == (1).to_bytes(8, "little")
