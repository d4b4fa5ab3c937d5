"""`tdxsim fuzz`: seeded, reproducible whatever the number of workers,
failures minimised and saved for `tdxsim check --replay`, and an emulator
crash in one worker process loses nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdxsim.check import load
from tdxsim.check.fuzz import fuzz
from tdxsim.cli import main
from tdxsim.toolchain import build

CORPUS = Path(__file__).parent / "check_corpus"
HC = "__tdx_hypercall"


@pytest.fixture(scope="module")
def sti_nop():
    return build([CORPUS / "seed_sti_nop.S"], HC, with_library=False)


def test_same_seed_same_findings_whatever_the_workers(sti_nop):
    one = fuzz(sti_nop, HC, load("seed"), runs=200, seed=5, workers=1)
    two = fuzz(sti_nop, HC, load("seed"), runs=200, seed=5, workers=2)
    assert one.failures == two.failures
    assert set(one.failures) == {"sti-shadow"}


def test_failure_is_minimised_to_the_essential_scenario(sti_nop):
    """Whatever random values found it, the reproducer keeps only what
    matters: ISSUE_STI (2) and an interrupt pending from the start."""
    failure = fuzz(sti_nop, HC, load("seed"), runs=200, seed=9, workers=1).failures["sti-shadow"]
    s = failure.scenario
    assert (s.flags, s.inject, s.module_status, s.inputs, s.host) == (2, 0, 0, (), ())


def test_a_crashed_worker_loses_nothing(sti_nop):
    """One execution kills its worker process (as a Unicorn segfault would):
    it is recorded, a new worker continues after it, every other execution
    still runs, and the findings are those of a campaign without the crash."""
    clean = fuzz(sti_nop, HC, load("seed"), runs=60, seed=5, workers=2)
    victim = clean.failures["sti-shadow"].index + 1
    seen = []
    crashed = fuzz(sti_nop, HC, load("seed"), runs=60, seed=5, workers=2, crash_at=victim,
                   progress=lambda campaign, executed: seen.append(executed))
    assert crashed.crashes == [victim]
    assert seen[-1] == 60
    assert crashed.failures == clean.failures


def test_cli_fuzz_saves_replayable_reproducers(tmp_path, capsys):
    stub = CORPUS / "seed_scrub_r10.S"
    code = main(["fuzz", str(stub), "--symbol", HC, "--abi", "seed", "--runs", "100",
                 "--seed", "1", "--workers", "1", "--out", str(tmp_path), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1 and "FAIL  scrub" in out and "Traceback" not in out + err
    saved = json.loads((tmp_path / "scrub.json").read_text())
    assert (saved["property"], saved["seed"]) == ("scrub", 1)
    code = main(["check", str(stub), "--symbol", HC, "--abi", "seed",
                 "--replay", str(tmp_path / "scrub.json")])
    out, _ = capsys.readouterr()
    assert code == 1 and "  FAIL  scrub" in out


def test_cli_fuzz_clean_stub_exits_0(tmp_path, capsys):
    code = main(["fuzz", str(CORPUS / "l67_good.S"), "--symbol", HC, "--abi", "linux-6.7",
                 "--runs", "300", "--workers", "1", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0 and "no property failed" in out
    assert "fuzz: 300/300 executions" in err
    assert not list(tmp_path.iterdir())
