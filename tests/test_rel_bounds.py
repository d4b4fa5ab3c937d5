"""Issue 19, part 3: every resource `check` and `fuzz` use is bounded.

A stub that loops on TDCALL is stopped at its 17th TDCALL of a call (the
TDCALL budget per run, 16) and judged as never returning; the plan takes
every combination of up to 6 flag bits and at most 1,024 interrupt
injections, sampled beyond that (README, "Limits and failure modes").
On main before this change the looping stub's `check` peaked at 1.1 GB
(measured with the seed contract; 4.9 GB with a larger max_insns), and 16
flag bits expanded to 196,608 runs."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tdxsim.check import check, load
from tdxsim.check.fuzz import fuzz
from tdxsim.check.contracts import sampled_flags
from tdxsim.check.runner import injection_points
from tdxsim.toolchain import build

LOOP = """\
    .globl stub
    .type stub, @function
stub:                         # TDG.VP.VMCALL with the seed mask, forever
    push %rbp
    mov %rsp, %rbp
1:  mov 0(%rdi), %r10
    mov 8(%rdi), %r11
    xor %eax, %eax
    mov $0xfc00, %ecx
    test $2, %rsi
    jz 2f
    sti
2:  tdcall
    jmp 1b
    .size stub, . - stub
"""


def wide_contract(bits: int, max_insns: int) -> str:
    flags = "\n".join(f"f{i} = {1 << (i + 2)}" for i in range(bits - 2))
    return textwrap.dedent(f"""\
        name = "wide"
        mask = 0xFC00
        args = "rdi"
        flags = "rsi"
        copy_outputs = "has_output"
        interrupts = "issue_sti"
        max_insns = {max_insns}

        [struct]
        r10 = 0
        r11 = 8

        [flag_bits]
        has_output = 1
        issue_sti = 2
        """) + flags + "\n"


@pytest.fixture
def loop(tmp_path) -> Path:
    (tmp_path / "loop.S").write_text(LOOP)
    return tmp_path / "loop.S"


MEASURE = ("import resource, subprocess, sys; "
           "rc = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
           "print(rc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
           "print(rc.stdout)")


def test_a_stub_looping_on_tdcall_is_checked_in_bounded_memory(loop, tmp_path):
    """16 flag bits and a budget of 10 million instructions per run."""
    (tmp_path / "wide.toml").write_text(wide_contract(16, 10_000_000))
    out = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "tdxsim.cli",
                          "check", str(loop), "--symbol", "stub", "--abi",
                          str(tmp_path / "wide.toml")], capture_output=True, text=True,
                         timeout=300).stdout
    code, peak_kib = map(int, out.split("\n", 1)[0].split())
    assert code == 1, out
    assert peak_kib < 300 * 1024, peak_kib
    assert "FAIL  return-value" in out and "more than 16 TDCALLs in one call" in out


def test_the_plan_is_capped_when_flag_bits_would_explode_it(loop, tmp_path):
    (tmp_path / "wide.toml").write_text(wide_contract(16, 100_000))
    contract = load(str(tmp_path / "wide.toml"))
    assert len(contract.flag_values()) == 64
    report = check(build([loop], entry="stub", with_library=False), "stub", contract)
    # per flags value: 1 + 4 ordinary + 3 failure runs; injections at most 1,024
    assert report.runs <= 64 * 8 + 1024


def test_sampled_flag_values_keep_the_telling_combinations():
    bits = [1 << i for i in range(20)]
    values = sampled_flags(bits)
    every = (1 << 20) - 1
    assert len(values) == 64 and values == tuple(sorted(set(values)))
    assert {0, every} | set(bits) | {every & ~b for b in bits} <= set(values)
    assert sampled_flags(bits) == values  # deterministic


def test_injection_points_keep_the_boundaries_next_to_the_tdcall():
    assert injection_points(10, 64) == list(range(10))
    points = injection_points(100_000, 64)
    assert len(points) == 64 and points[0] == 0
    assert points[-32:] == list(range(100_000 - 32, 100_000))


def test_fuzzing_a_looping_stub_ends_quickly_with_a_verdict(loop):
    image = build([loop], entry="stub", with_library=False)
    campaign = fuzz(image, "stub", load("seed"), runs=40, seed=1, workers=1)
    assert "return-value" in campaign.failures
