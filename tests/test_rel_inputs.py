"""Issue 19, part 1: every bad input is refused before use with exit code 2
and one paragraph naming the input, never a traceback or a run that
pretends to be the guest's fault.

Each test here failed on main before the change (noted per test): the ELF
cases with MemoryError/OSError or a guest crash (rc 1), the option cases
with ValueError or a run that wrapped or started elsewhere, the replay case
with RecursionError."""
from __future__ import annotations

import json
import struct
import subprocess
import textwrap
from pathlib import Path

import pytest

from tdxsim.cli import main

CORPUS = Path(__file__).parent / "check_corpus"
# Elf64_Ehdr: e_phoff at 32, e_phentsize/e_phnum at 54/56; Elf64_Phdr fields
# (System V gABI): p_type 0, p_flags 4, p_offset 8, p_vaddr 16, p_paddr 24,
# p_filesz 32, p_memsz 40, p_align 48.
P_OFFSET, P_VADDR, P_FILESZ, P_MEMSZ = 8, 16, 32, 40

GUEST = """\
    .globl _start
    .type _start, @function
_start:                      # TDG.VP.VMCALL Instruction.IO: OUT 7 to port 0xF4
    xor %eax, %eax           # leaf 0 (spec 1.3)
    mov $0xfc00, %ecx        # R10..R15 exposed
    xor %r10d, %r10d         # GHCI
    mov $30, %r11d           # Instruction.IO (spec 4.3)
    mov $1, %r12d            # size
    mov $1, %r13d            # write
    mov $0xf4, %r14d         # tdxsim's debug-exit port
    mov $7, %r15d
    tdcall
local_label:
    jmp local_label
    .size _start, . - _start
    .data
    .globl table
table: .quad 1
"""


@pytest.fixture
def run(capsys):
    def invoke(*argv):
        code = main(["run", *map(str, argv)])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err
    return invoke


@pytest.fixture(scope="module")
def elf(tmp_path_factory) -> bytes:
    """A static x86-64 executable built by GNU as and ld (exits with 7)."""
    tmp = tmp_path_factory.mktemp("elf")
    (tmp / "g.S").write_text(GUEST)
    subprocess.run(["as", "--64", "-o", tmp / "g.o", tmp / "g.S"], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-static", "-nostdlib", "-Ttext=0x100000",
                    "-o", tmp / "g.elf", tmp / "g.o"], check=True)
    return (tmp / "g.elf").read_bytes()


def first_load(data: bytes) -> int:
    """File offset of the program header of the code segment (PT_LOAD = 1, PF_X = 1)."""
    phoff, = struct.unpack_from("<Q", data, 32)
    size, count = struct.unpack_from("<HH", data, 54)
    for i in range(count):
        kind, flags = struct.unpack_from("<II", data, phoff + i * size)
        if kind == 1 and flags & 1:
            return phoff + i * size
    raise AssertionError("no PT_LOAD")


def patched(data: bytes, field: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<Q", out, first_load(data) + field, value)
    return bytes(out)


def test_the_unpatched_elf_runs(run, elf, tmp_path):
    (tmp_path / "g.elf").write_bytes(elf)
    assert run(tmp_path / "g.elf")[0] == 7


@pytest.mark.parametrize("field,value,words", [
    (P_FILESZ, 1 << 62, "past the end"),  # main: MemoryError
    (P_OFFSET, 1 << 62, "past the end"),  # main: OSError (seek)
    (P_MEMSZ, 1, "smaller than p_filesz"),  # main: loaded anyway
    (P_VADDR, 0x1000, "tdxsim's own pages"),  # over the GDT and page tables
    (P_VADDR, (1 << 64) - 0x1000, "outside guest RAM"),
])
def test_bad_segment_headers_are_refused(run, elf, tmp_path, field, value, words):
    path = tmp_path / "bad.elf"
    path.write_bytes(patched(elf, field, value))
    code, out, err = run(path)
    assert code == 2 and "bad.elf" in err and words in err, err


def test_truncated_segment_data_is_refused_not_run(run, elf, tmp_path):
    """main: the cut-off segment ran only the bytes that were there and was
    reported as a guest crash (rc 1).  The section headers (at the end of
    the file) are dropped first, as a truncated download would lose them."""
    data = bytearray(elf)
    struct.pack_into("<Q", data, 40, 0)  # e_shoff
    struct.pack_into("<HH", data, 60, 0, 0)  # e_shnum, e_shstrndx
    offset, = struct.unpack_from("<Q", elf, first_load(elf) + P_OFFSET)
    path = tmp_path / "cut.elf"
    path.write_bytes(bytes(data[:offset + 4]))
    code, out, err = run(path)
    assert code == 2 and "cut.elf" in err and "truncated" in err, err


@pytest.mark.parametrize("cut", [20, 64, 100, 300])
def test_an_elf_cut_anywhere_is_refused(run, elf, tmp_path, cut):
    path = tmp_path / "cut.elf"
    path.write_bytes(elf[:cut])
    assert run(path)[0] == 2


def test_overlapping_segments_are_refused(run, elf, tmp_path):
    data = bytearray(elf)
    at = first_load(elf)  # the data segment follows the code segment
    struct.pack_into("<Q", data, at + 56 + P_VADDR, struct.unpack_from("<Q", elf, at + P_VADDR)[0])
    path = tmp_path / "overlap.elf"
    path.write_bytes(bytes(data))
    code, out, err = run(path)
    assert code == 2 and "overlap" in err, err


@pytest.mark.parametrize("argv,words", [
    (["--timeout", "nan"], "--timeout"),  # main: ValueError traceback
    (["--timeout", "inf"], "--timeout"),  # main: accepted, then OverflowError in Unicorn
    (["--timeout", "-1"], "--timeout"),
    (["--max-insns", str(1 << 64)], "--max-insns"),  # main: wrapped, ran to the timeout
    (["--max-insns", str(1 << 63)], "--max-insns"),
    (["--max-insns", "-5"], "--max-insns"),
])
def test_option_values_out_of_range(run, argv, words):
    code, out, err = run(*argv, "demo")
    assert code == 2 and words in err, err


@pytest.fixture
def guest(tmp_path):
    path = tmp_path / "g.S"
    path.write_text(GUEST)
    return path


@pytest.mark.parametrize("entry,words", [
    ("", "no entry symbol ''"),  # main: jumped to address 0 (a crash, rc 1)
    ("local_label", "local label"),  # main: silently started at _start
    ("table", "local label or data"),  # main: jumped into .data (a crash, rc 1)
])
def test_entry_must_name_a_global_function(run, guest, entry, words):
    code, out, err = run("--entry", entry, "--max-insns", "1000", guest)
    assert code == 2 and words in err and "g.S" in err, err


def test_deeply_nested_replay_is_refused(tmp_path, capsys):
    """main: RecursionError from json.loads."""
    replay = tmp_path / "deep.json"
    replay.write_text("[" * 200_000 + "]" * 200_000)
    code = main(["check", str(CORPUS / "seed_good.S"), "--symbol", "__tdx_hypercall",
                 "--abi", "seed", "--replay", str(replay)])
    err = capsys.readouterr().err
    assert code == 2 and "deep.json" in err and "Traceback" not in err, err


@pytest.mark.parametrize("doc", ['{"scenario": 5}', '{"flags": "zz"}', '{"inject": -1}',
                                 '{"inputs": {"rip": 1}}', '{"flags": 1e400}', '"x"'])
def test_replay_of_the_wrong_shape_is_refused(tmp_path, capsys, doc):
    replay = tmp_path / "r.json"
    replay.write_text(doc)
    code = main(["check", str(CORPUS / "seed_good.S"), "--symbol", "__tdx_hypercall",
                 "--abi", "seed", "--replay", str(replay)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err


@pytest.mark.parametrize("option,value", [("--workers", "0"), ("--workers", "100000"),
                                          ("--runs", "0"), ("--runs", str(10 ** 13))])
def test_fuzz_counts_out_of_range(tmp_path, capsys, option, value):
    """main: accepted (100,000 worker processes; 10**13 runs)."""
    code = main(["fuzz", str(CORPUS / "seed_good.S"), "--symbol", "__tdx_hypercall",
                 "--abi", "seed", "--out", str(tmp_path), option, value])
    err = capsys.readouterr().err
    assert code == 2 and option in err, err
