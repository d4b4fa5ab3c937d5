"""Issue 19, part 5: property-based robustness.  Random ELF headers, contract
files, option values, replay documents and guest byte strings must each
end with a sane reason and exit code, never an exception.

Seeded (derandomize) and short inside `make test`; `make soak` runs the
same properties with TDXSIM_SOAK=N examples each (README, "Limits and
failure modes", gives the last soak's figure)."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tdxsim import TD
from tdxsim.check.schema import KEYS
from tdxsim.cli import main
from tdxsim.image import Image, Segment

CORPUS = Path(__file__).parent / "check_corpus"
SOAK = int(os.environ.get("TDXSIM_SOAK", "0"))
REASONS = {"exit", "fatal", "crash", "halted", "budget", "timeout", "error"}
GUEST = """\
    .globl _start
    .type _start, @function
_start:                      # TDG.VP.VMCALL Instruction.IO: OUT 7 to port 0xF4
    xor %eax, %eax
    mov $0xfc00, %ecx
    xor %r10d, %r10d
    mov $30, %r11d
    mov $1, %r12d
    mov $1, %r13d
    mov $0xf4, %r14d
    mov $7, %r15d
    tdcall
    .size _start, . - _start
    .data
    .quad 1
"""


def examples(n: int):
    """n examples in `make test`, TDXSIM_SOAK examples in `make soak`."""
    return settings(max_examples=SOAK or n, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def files():
    """A small guest ELF and the seed stub as an ELF (no assembler per example)."""
    tmp = Path(tempfile.mkdtemp(prefix="tdxsim-hyp-"))
    (tmp / "g.S").write_text(GUEST)
    for name, source, entry in (("guest", tmp / "g.S", "_start"),
                                ("stub", CORPUS / "seed_good.S", "__tdx_hypercall")):
        subprocess.run(["as", "--64", "-o", tmp / f"{name}.o", source], check=True)
        subprocess.run(["ld", "-m", "elf_x86_64", "-static", "-nostdlib", "-e", entry,
                        "-Ttext=0x100000", "-o", tmp / f"{name}.elf", tmp / f"{name}.o"],
                       check=True)
    return tmp


def tdxsim(capsys, *argv) -> int:
    """`tdxsim ARGV` in this process: its exit code; any exception fails the test."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage error: exit code 2 and one line
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if code == 2:
        assert err.strip(), "exit code 2 without a message"
    return code


def check_stub(files, capsys, document: str, *options: str) -> int:
    """`tdxsim check` of the seed stub with `document` as the file of the last option."""
    path = files / "document"
    path.write_text(document, encoding="utf-8", errors="surrogateescape")
    return tdxsim(capsys, "check", str(files / "stub.elf"), "--symbol", "__tdx_hypercall",
                  *options, str(path))


# --- random ELF headers ---
EHDR = {"e_type": (16, "H"), "e_machine": (18, "H"), "e_entry": (24, "Q"), "e_phoff": (32, "Q"),
        "e_shoff": (40, "Q"), "e_phentsize": (54, "H"), "e_phnum": (56, "H"),
        "e_shentsize": (58, "H"), "e_shnum": (60, "H"), "e_shstrndx": (62, "H")}
PHDR = {"p_type": (0, "I"), "p_flags": (4, "I"), "p_offset": (8, "Q"), "p_vaddr": (16, "Q"),
        "p_filesz": (32, "Q"), "p_memsz": (40, "Q")}
WIDTH = {"H": 16, "I": 32, "Q": 64}
interesting = {"H": st.sampled_from([0, 1, 2, 3, 0x3E, 56, 64, 0xFFFF]),
               "I": st.sampled_from([0, 1, 2, 5, 7, 0xFFFFFFFF]),
               "Q": st.sampled_from([0, 1, 0x1000, 0xFFFF, 0x100000, 0x10000000, 1 << 47,
                                     (1 << 63), (1 << 64) - 1, (1 << 64) - 0x1000])}


def field_value(kind: str):
    return st.one_of(interesting[kind], st.integers(0, (1 << WIDTH[kind]) - 1))


@st.composite
def elf_mutation(draw):
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(EHDR)))
            at, kind = EHDR[name]
        else:
            index = draw(st.integers(0, 3))
            name = draw(st.sampled_from(sorted(PHDR)))
            at, kind = 64 + 56 * index + PHDR[name][0], PHDR[name][1]
        edits.append((at, kind, draw(field_value(kind))))
    cut = draw(st.one_of(st.none(), st.integers(0, 0x3000)))
    return edits, cut


@examples(60)
@given(elf_mutation())
def test_random_elf_headers(files, capsys, mutation):
    edits, cut = mutation
    data = bytearray((files / "guest.elf").read_bytes())
    for at, kind, value in edits:
        struct.pack_into("<" + kind, data, at, value)
    path = files / "mutant.elf"
    path.write_bytes(bytes(data[:cut]) if cut is not None else bytes(data))
    assert tdxsim(capsys, "run", str(path), "--max-insns", "20000", "--timeout", "5") in (1, 2, 7)


# --- random contract files ---
scalars = st.one_of(st.integers(-(1 << 70), 1 << 70), st.booleans(), st.text(max_size=12),
                    st.sampled_from(["rdi", "rsi", "rbx", "r10", "none", "rsp", "always",
                                     "never", "has_output", "sysv", "ms", "arg1", "no"]),
                    st.floats(allow_nan=False))
toml_values = st.one_of(scalars, st.lists(scalars, max_size=4),
                        st.dictionaries(st.sampled_from(["r10", "r11", "rdi", "has_output",
                                                         "x"]), scalars, max_size=3))


def toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if value == value and abs(value) != float("inf") else "0"
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(toml(v) for v in value) + "]"


def toml_document(table: dict) -> str:
    lines, tables = [], []
    for key, value in table.items():
        if isinstance(value, dict):
            tables.append(f"[{key}]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in value.items()))
        else:
            lines.append(f"{key} = {toml(value)}\n")
    return "".join(lines) + "\n".join(tables)


contracts = st.one_of(
    st.dictionaries(st.sampled_from(sorted(KEYS) + ["bogus"]), toml_values, max_size=8)
    .map(lambda d: {"mask": 0xFC00, **d}).map(toml_document),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")))


@examples(40)
@given(contracts)
def test_random_contract_files(files, capsys, document):
    assert check_stub(files, capsys, document, "--abi") in (0, 1, 2)


# --- random option values ---
numbers = st.one_of(st.integers(-(1 << 70), 1 << 70).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["nan", "inf", "-inf", "1e400", "", "0x10", "64M", "1G",
                                     "-1", "18446744073709551616", "9223372036854775807"]),
                    st.text(max_size=8))


@examples(40)
@given(timeout=numbers, budget=numbers, memory=numbers, entry=st.text(max_size=10),
       seed=numbers)
@example(timeout="1", budget="1", memory="0", entry="\0", seed="0")  # found by the soak
def test_random_option_values(files, capsys, timeout, budget, memory, entry, seed):
    options = ["--timeout", timeout, "--max-insns", budget, "--memory", memory,
               "--seed", seed, "--host", "hostile"]
    assert tdxsim(capsys, "run", str(files / "g.S"), "--entry=" + entry, *options) in (1, 2, 7)


# --- random replay documents ---
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70),
                                     st.floats(), st.text(max_size=8)),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
register_values = st.dictionaries(st.sampled_from(["rax", "r10", "r11", "rsp", "rip", "x"]),
                                  st.one_of(st.integers(-5, 1 << 65).map(hex), json_values),
                                  max_size=3)
scenarios = st.fixed_dictionaries({}, optional={
    "flags": st.one_of(st.integers(-1, 1 << 65), json_values),
    "module_status": st.one_of(st.integers(0, 1 << 64).map(hex), json_values),
    "inject": st.one_of(st.none(), st.integers(-1, 1 << 64), json_values),
    "inputs": st.one_of(register_values, json_values),
    "host": st.one_of(register_values, json_values)})
replays = st.one_of(scenarios.map(json.dumps), scenarios.map(lambda s: json.dumps({"scenario": s})),
                    json_values.map(json.dumps), st.integers(1, 50_000).map(lambda n: "[" * n),
                    st.binary(max_size=100).map(lambda b: b.decode("latin-1")))


@examples(40)
@given(replays)
def test_random_replay_documents(files, capsys, document):
    assert check_stub(files, capsys, document, "--abi", "seed", "--replay") in (0, 1, 2)


# --- random guest byte strings ---
@examples(150)
@given(st.binary(min_size=1, max_size=64))
def test_random_guest_code(code):
    image = Image("random", 0x100000, [Segment(0x100000, code, 0x1000, True)])
    result = TD(image).run(max_insns=5_000, timeout=5)
    assert result.reason in REASONS
    assert result.reason == "exit" or result.describe().strip()
