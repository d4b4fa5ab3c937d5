"""Issue 19, part 4: the instructions the TDX module intercepts (HLT, IN,
OUT, INS, OUTS, CPUID, RDMSR, WRMSR) and those the vCPU emulates (STI,
RDTSC) are recognised with every legal combination of prefixes.

The oracle is Capstone: every combination of at most one prefix from each
legacy group (SDM vol. 2, 2.1.1: F2/F3; CS/SS/DS/ES/FS/GS; 66; 67), in
every order, with or without a REX byte last, in front of each opcode,
must decode to the same instruction, length, operand size, REP, address
size and port.  Where Capstone refuses a combination (66 together with
F2/F3 in front of a 0F opcode that has no mandatory-prefix form) the CPU
emulator still executes the instruction, so tdxsim must still intercept
it: that class is checked against Unicorn itself.

On main before this change HLT with any prefix was not intercepted: the
vCPU ran on and the run ended as a runaway instead of the #VE a HLT raises."""
from __future__ import annotations

import itertools
import re

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, Uc
from unicorn.x86_const import UC_X86_INS_CPUID, UC_X86_REG_RIP

from tdxsim import TD
from tdxsim.events import VeRaised
from tdxsim.vcpu.ve_insns import decode

GROUPS = [(0xF2, 0xF3), (0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65), (0x66,), (0x67,)]
REX = [b""] + [bytes([r]) for r in range(0x40, 0x50)]
OPCODES = [b"\xf4", b"\xfb", b"\xe4\x80", b"\xe5\x80", b"\xe6\x80", b"\xe7\x80", b"\xec", b"\xed",
           b"\xee", b"\xef", b"\x6c", b"\x6d", b"\x6e", b"\x6f", b"\x0f\xa2", b"\x0f\x32",
           b"\x0f\x30", b"\x0f\x31"]
PLAIN = {"hlt", "sti", "cpuid", "rdmsr", "wrmsr", "rdtsc"}
EXIT_REASON_HLT = 12  # SDM vol. 3, Appendix C; spec 8.1


def prefix_runs():
    for n in range(len(GROUPS) + 1):
        for order in itertools.permutations(GROUPS, n):
            for legacy in itertools.product(*order):
                for rex in REX:
                    yield bytes(legacy) + rex


def capstone_view(insn):
    """(kind, length, ...) from Capstone's mnemonic and operands."""
    words = insn.mnemonic.split()
    name = words[-1]
    if name in PLAIN:
        return (name, insn.size)
    kind = "in" if name.startswith("in") else "out"
    if name.startswith(("ins", "outs")):
        address = 32 if re.search(r"\[e(si|di)\]", insn.op_str) else 64
        return (kind, insn.size, {"b": 1, "w": 2, "d": 4}[name[-1]], True,
                words[0] in ("rep", "repne"), address)
    data, port = insn.op_str.replace(" ", "").split(",")[::1 if kind == "in" else -1]
    return (kind, insn.size, {"al": 1, "ax": 2, "eax": 4}[data], None if port == "dx" else 0x80)


def tdxsim_view(insn):
    if insn is None:
        return None
    if insn.kind in PLAIN:
        return (insn.kind, insn.length)
    if insn.string:
        return (insn.kind, insn.length, insn.size, True, insn.rep, insn.address_size)
    return (insn.kind, insn.length, insn.size, insn.port)


def test_every_prefix_combination_decodes_as_capstone_decodes_it():
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    refused, checked = [], 0
    for prefixes in prefix_runs():
        for opcode in OPCODES:
            code = prefixes + opcode
            insn = next(md.disasm(code, 0x100000), None)
            if insn is None:
                refused.append(code)
                continue
            assert tdxsim_view(decode(code)) == capstone_view(insn), code.hex()
            checked += 1
    assert checked > 160_000
    # Capstone's refusals: 66 with F2/F3 before a 0F opcode, nothing else
    for code in refused:
        assert code[-2] == 0x0F and 0x66 in code and ({0xF2, 0xF3} & set(code)), code.hex()
        alone = code.replace(b"\x66", b"", 1)
        assert tdxsim_view(decode(code))[0] == capstone_view(next(md.disasm(alone, 0)))[0]


@pytest.mark.parametrize("code", ["66f20fa2", "66f22e0fa2", "f22e6667400fa2", "f36667480fa2"])
def test_where_capstone_refuses_unicorn_still_runs_cpuid(code):
    """So tdxsim must stop there too."""
    code = bytes.fromhex(code)
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0x1000, 0x1000)
    uc.mem_write(0x1000, code)
    ran = []
    uc.hook_add(UC_HOOK_INSN, lambda *_: ran.append(1) or False, None, 1, 0, UC_X86_INS_CPUID)
    uc.emu_start(0x1000, 0x1000 + len(code))
    assert ran and uc.reg_read(UC_X86_REG_RIP) == 0x1000 + len(code)
    assert decode(code).kind == "cpuid" and decode(code).length == len(code)


def test_an_instruction_longer_than_15_bytes_is_not_one():
    assert decode(b"\x66" * 14 + b"\xed").length == 15
    assert decode(b"\x66" * 14 + b"\x0f\xa2") is None
    assert decode(b"\x66" * 13 + b"\xe4\x80").length == 15


@pytest.mark.parametrize("prefixes", ["", "66", "2e", "f3", "48", "6766f32e48", "f2" * 14])
def test_hlt_with_prefixes_raises_ve_with_its_length(tmp_path, prefixes):
    """HLT in a TD is a #VE with exit reason 12 and the instruction length
    (spec 8.1, 8.2); without an IDT the #VE cannot be delivered: a crash
    report, not a runaway."""
    code = bytes.fromhex(prefixes) + b"\xf4"
    source = tmp_path / "hlt.S"
    source.write_text(".globl _start\n_start:\n    .byte " + ", ".join(map(str, code)) + "\n")
    result = TD.from_source(source, library=False).run(max_insns=10_000, timeout=10)
    ves = [e for e in result.events if isinstance(e, VeRaised)]
    assert result.reason == "crash", result.describe()
    assert ves and ves[0].exit_reason == EXIT_REASON_HLT and ves[0].rip == 0x100000
    assert ves[0].info.instr_len == len(code)
