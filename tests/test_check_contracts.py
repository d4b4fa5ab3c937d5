"""Contract keys and the typed contract-file schema (issues 12 and 19).

Expected facts come from the public ABIs: SysV AMD64 (callee-saved RBX,
RBP, R12-R15; 7th argument at [RSP+8]), Microsoft x64 (also RDI, RSI,
XMM6-15; 5th argument at [RSP+0x28] past the 32-byte shadow space), and
spec 9.2 / 1.2 for Linux's tdx_module_args and its u8 version.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tdxsim.check import BUILTIN, check, load
from tdxsim.check.contracts import Stack
from tdxsim.cli import main
from tdxsim.errors import TdxsimError
from tdxsim.toolchain import build

CORPUS = Path(__file__).parent / "check_corpus"


def contract_file(tmp_path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


def failing(tmp_path, source: str, symbol: str, contract) -> set[str]:
    stub = tmp_path / "stub.S"
    stub.write_text(source)
    image = build([stub], symbol, with_library=False)
    return {r.id for r in check(image, symbol, contract).failed}


def test_the_edk2_contract_file_equals_the_bundled_contract():
    """Every key of an EFIAPI routine with stack arguments: arg5 (P4) at
    [RSP+0x28], the output pointer arg6 at [RSP+0x30]."""
    from_file = load(str(CORPUS / "edk2_tdvmcall.toml"))
    assert from_file == BUILTIN["edk2-tdvmcall"]
    assert from_file.args == Stack(0x30, 6) and from_file.reg_args[15] == Stack(0x28, 5)
    assert from_file.reg_args[11] == 1  # arg1 = RCX under Microsoft x64


@pytest.mark.parametrize("convention,saved,arg7", [
    ("sysv", (3, 5, 12, 13, 14, 15), Stack(0x08, 7)),
    ("ms", (3, 5, 7, 6, 12, 13, 14, 15), Stack(0x38, 7)),
])
def test_convention_sets_callee_saved_and_argument_slots(tmp_path, convention, saved, arg7):
    c = load(contract_file(tmp_path, f'mask = 0xFC00\nconvention = "{convention}"\n'
                                     'flags = "arg7"\n'))
    assert c.callee_saved == saved and c.flags == arg7
    assert c.xmm_saved == (() if convention == "sysv" else tuple(range(6, 16)))


def test_builtin_contracts_hold_only_what_the_abi_promises():
    """Spec 9.1 (revised): RDI, RSI, RDX, R8, R9 are caller-saved under
    SysV; Microsoft x64 adds RDI and RSI to the callee-saved set."""
    for c in BUILTIN.values():
        want = {3, 5, 12, 13, 14, 15} | ({6, 7} if c.convention == "ms" else set())
        assert set(c.unchanged) == want, c.name


SYSV_STACK_ARG = """
        .globl  go
go:                             # u64 go(a1..a6, u64 *out /* 7th: [RSP+8] */)
        push    %r12
        mov     %rdi, %r12
        mov     $0x1000, %ecx
        xor     %eax, %eax
        tdcall
        test    %rax, %rax
        jnz     1f
        mov     16(%rsp), %rdx  # the 7th argument, past the pushed R12
        mov     %r12, (%rdx)
        xor     %eax, %eax
        pop     %r12
        ret
1:      ud2
"""


def test_sysv_seventh_argument_as_output_pointer(tmp_path):
    c = load(contract_file(tmp_path, 'mask = 0x1000\nargs = "arg7"\nreturns = "none"\n'
                                     'inputs = []\n[struct]\nr12 = 0\n'
                                     '[register_args]\nr12 = "arg1"\n'))
    assert failing(tmp_path, SYSV_STACK_ARG, "go", c) == set()
    wrong = SYSV_STACK_ARG.replace("mov     16(%rsp), %rdx", "mov     8(%rsp), %rdx")
    assert failing(tmp_path, wrong, "go", c) == {"output-copy"}


NARROW = """
        .globl  go
go:                             # u32 field at offset 0 -> R12, written back as 32 bits
        push    %r12
        movl    0(%rdi), %r12d
        mov     $0x1000, %ecx
        xor     %eax, %eax
        tdcall
        test    %rax, %rax
        jnz     1f
        movl    %r12d, 0(%rdi)
        xor     %eax, %eax
        pop     %r12
        ret
1:      ud2
"""


def test_narrow_field(tmp_path):
    c = load(contract_file(tmp_path, 'mask = 0x1000\nreturns = "none"\n'
                                     '[struct]\nr12 = { offset = 0, size = 4 }\n'))
    assert c.struct_size == 8 and c.size(12) == 4
    assert failing(tmp_path, NARROW, "go", c) == set()
    # A u64 store writes 4 bytes past the field: guard data outside the struct.
    assert failing(tmp_path, NARROW.replace("movl    %r12d, 0(%rdi)", "mov     %r12, 0(%rdi)"),
                   "go", c) == {"output-copy"}


def test_fixed_u8_version_field(tmp_path):
    """Newer Linux reads a u8 version at offset 104 into RAX[23:16] (spec
    1.2: TDG.VP.VMCALL is version 0).  Without the fixed field the byte is
    guard data and the stub selects a bad version (leaf); with it, clean."""
    image = build([CORPUS / "l67_version.S"], "__tdx_hypercall", with_library=False)
    assert check(image, "__tdx_hypercall", BUILTIN["linux-6.7"]).failed == []
    fields = "\n".join(f"{r} = {8 * i}" for i, r in enumerate(
        "rcx rdx r8 r9 r10 r11 r12 r13 r14 r15 rbx rdi rsi".split()))
    bare = load(contract_file(tmp_path, f"mask = 0xFFCC\n[struct]\n{fields}\n"))
    assert {r.id for r in check(image, "__tdx_hypercall", bare).failed} >= {"leaf"}


def test_frame_pointer_and_on_failure_policies(tmp_path):
    """Defaults stay strict; the policies relax only what they name."""
    base = 'mask = 0xFC00\n[struct]\nr10 = 0\nr11 = 8\nr12 = 16\nr13 = 24\nr14 = 32\nr15 = 40\n'
    stub = (CORPUS / "seed_flags_in_rbp.S").read_text()
    strict = load(contract_file(tmp_path, 'flags = "rsi"\ncopy_outputs = "never"\n' + base))
    lax = load(contract_file(tmp_path, 'flags = "rsi"\ncopy_outputs = "never"\n'
                                       'frame_pointer = "not-required"\n' + base))
    assert "frame-pointer" in failing(tmp_path, stub, "__tdx_hypercall", strict)
    assert "frame-pointer" not in failing(tmp_path, stub, "__tdx_hypercall", lax)


# --- the typed schema: every wrong type or range is a one-line rc-2 error ---
@pytest.mark.parametrize("text,words", [
    ('mask = 0xFC00\nno_rbp_mod = "no"\n', "no_rbp_mod must be true or false, not 'no'"),
    ("mask = 0xFC00\n[name]\nx = 1\n", "name must be a string, not a table"),
    ('mask = 0xFC00\nflag_bits = "has_output"\n', "[flag_bits] must be a table"),
    ('mask = 0xFC00\nregister_args = ["rdi"]\n', "[register_args] must be a table"),
    ("mask = 0xFC00\ninterrupts = 1\n", "interrupts must be a string"),
    ('mask = 0xFC00\nargs = "rsp"\n', "args must name a general-purpose register other than rsp"),
    ("mask = 0xFC00\nmax_insns = 0\n", "max_insns must be an integer in 0x1..0x989680"),
    ("mask = 0xFC00\nmax_insns = 100000000000\n", "max_insns must be an integer"),
    ('mask = 0xFC00\nmax_insns = "lots"\n', "max_insns must be an integer"),
    ("mask = true\n", "mask must be an integer"),
    ('mask = 0xFC00\nconvention = "fastcall"\n', 'convention must be "sysv" or "ms"'),
    ('mask = 0xFC00\nframe_pointer = "maybe"\n', 'frame_pointer must be "required"'),
    ('mask = 0xFC00\non_failure = "ignore"\n', 'on_failure must be "trap" or "return-status"'),
    ('mask = 0xFC00\nargs = "arg17"\n', "arguments are numbered arg1"),
    ("mask = 0xFC00\n[flag_bits]\nx = 0\n", "flag bit x must be an integer"),
    ("mask = 0xFC00\n[struct]\nr10 = { offset = 0, size = 3 }\n", "size must be 1, 2, 4 or 8"),
    ("mask = 0xFC00\n[struct]\nversion = { offset = 104, size = 1, value = 256 }\n",
     "struct.version.value must be an integer in 0x0..0xff"),
    ("mask = 0xFC00\n[struct]\nversion = { offset = 104, size = 1 }\n",
     "each key of [struct] without a value"),
    ('mask = 0xFC00\ncallee_saved = "rbx"\n', "callee_saved must be a list"),
    ("mask = 0xFC00\nname = 7\n", "name must be a string"),
])
def test_contract_schema_errors(tmp_path, text, words):
    with pytest.raises(TdxsimError) as info:
        load(contract_file(tmp_path, text))
    assert words in str(info.value)


def test_schema_errors_exit_2_without_traceback(tmp_path, capsys):
    bad = contract_file(tmp_path, 'mask = 0xFC00\nno_rbp_mod = "no"\n')
    code = main(["check", str(CORPUS / "seed_good.S"), "--symbol", "__tdx_hypercall",
                 "--abi", bad])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1
