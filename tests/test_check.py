"""`tdxsim check`: the conformance checker for hypercall stubs (spec 9, 10).

The corpus in tests/check_corpus/ is our own: a correct stub per contract
and variants with exactly one defect each.  Every variant must be flagged
by exactly its intended property, in the text, JSON and JUnit reports.
Expected property ids and numbers are literals from the issue and the spec.
The command line, its formats and SARIF are tested in test_check_cli.py.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import pytest

from conftest import compiled
from tdxsim.check import Harness, Scenario, check, load
from tdxsim.check.properties import judge_all
from tdxsim.check.report import render_json, render_junit, render_text
from tdxsim.errors import TdxsimError
from tdxsim.toolchain import build, library_sources

CORPUS = Path(__file__).parent / "check_corpus"
HC = "__tdx_hypercall"
ALL_IDS = {"leaf", "mask-valid", "no-leak", "scrub", "callee-saved", "stack", "frame-pointer",
           "sti-shadow", "failure-traps", "output-copy", "return-value", "host-pointer"}

# (stub, symbol, ABI, the exact set of failing property ids)
CASES = [
    ("seed_good.S", HC, "seed", set()),
    ("seed_leaf.S", HC, "seed", {"leaf"}),
    ("seed_mask_ffec.S", HC, "seed", {"mask-valid"}),
    ("seed_r10_unselected.S", HC, "seed", {"mask-valid"}),
    ("seed_leak_r15.S", HC, "seed", {"no-leak"}),
    ("seed_leak_stack.S", HC, "seed", {"no-leak"}),
    ("seed_scrub_r10.S", HC, "seed", {"scrub"}),
    ("seed_callee_rbx.S", HC, "seed", {"callee-saved"}),
    ("seed_stack_ret8.S", HC, "seed", {"stack"}),
    ("seed_flags_in_rbp.S", HC, "seed", {"frame-pointer"}),
    ("seed_sti_nop.S", HC, "seed", {"sti-shadow"}),
    ("seed_sti_early.S", HC, "seed", {"sti-shadow"}),
    ("seed_rax_unchecked.S", HC, "seed", {"failure-traps"}),
    ("seed_copy_always.S", HC, "seed", {"output-copy"}),
    ("seed_return_r11.S", HC, "seed", {"return-value"}),
    ("seed_caller_saved.S", HC, "seed", set()),
    ("seed_live_many.S", HC, "seed", {"scrub"}),
    ("seed_unbalanced.S", HC, "seed", {"stack"}),
    ("seed_leak_retaddr.S", HC, "seed", {"no-leak"}),
    ("seed_leak_text.S", HC, "seed", {"no-leak"}),
    ("seed_r10_not_rax.S", HC, "seed", {"failure-traps"}),
    ("l67_good.S", HC, "linux-6.7", set()),
    ("l67_rsi_live.S", HC, "linux-6.7", {"scrub"}),
    ("l67_pointer_reload.S", HC, "linux-6.7", {"host-pointer"}),
    ("l67_version.S", HC, "linux-6.7", set()),
    ("l63_good.S", HC, "linux-6.3", set()),
    ("l63_flags_in_rbp.S", HC, "linux-6.3", {"frame-pointer"}),
    ("l64_good.S", HC, "linux-6.4", set()),
    ("l64_rsi_live.S", HC, "linux-6.4", {"scrub"}),
    ("l64ret_good.S", "__tdx_hypercall_ret", "linux-6.4-ret", set()),
    ("l64ret_no_rdx.S", "__tdx_hypercall_ret", "linux-6.4-ret", {"output-copy"}),
    ("tdshim_good.S", "asm_td_vmcall", "td-shim-vmcall", set()),
    ("tdshim_rdi_clobbered.S", "asm_td_vmcall", "td-shim-vmcall", {"callee-saved"}),
    ("tdshim_ret_r11.S", "asm_td_vmcall", "td-shim-vmcall", {"return-value"}),
    ("tdshim_ex_good.S", "asm_td_vmcall_ex", "td-shim-vmcall-ex", set()),
    ("tdshim_ex_sti_early.S", "asm_td_vmcall_ex", "td-shim-vmcall-ex", {"sti-shadow"}),
    ("tdshim_ex_rdx_live.S", "asm_td_vmcall_ex", "td-shim-vmcall-ex", {"scrub"}),
    ("edk2_good.S", "TdVmCall", "edk2-tdvmcall", set()),
    ("edk2_good.S", "TdVmCall", str(CORPUS / "edk2_tdvmcall.toml"), set()),
    ("edk2_mask_ffec.S", "TdVmCall", "edk2-tdvmcall", {"mask-valid"}),
    ("edk2_good.nasm", "TdVmCall", "edk2-tdvmcall", set()),
    ("edk2_mask_ffec.nasm", "TdVmCall", "edk2-tdvmcall", {"mask-valid"}),
    ("edk2_status_r10.S", "TdVmCall", "edk2-tdvmcall", {"failure-traps"}),
    ("edk2_p4_shadow.S", "TdVmCall", "edk2-tdvmcall", {"no-leak"}),
    ("edk2_rsi_clobbered.S", "TdVmCall", "edk2-tdvmcall", {"callee-saved"}),
    ("rbx_struct.S", "tdvmcall_rbx", str(CORPUS / "rbx_struct.toml"), set()),
    ("regs_args.S", "tdvmcall_regs", str(CORPUS / "regs_args.toml"), set()),
    ("regs_args_leak.S", "tdvmcall_regs", str(CORPUS / "regs_args.toml"), {"no-leak"}),
]


@lru_cache(maxsize=None)
def report_for(stub: str, symbol: str, abi: str):
    image = build([CORPUS / stub], symbol, with_library=False)
    return check(image, symbol, load(abi), stub)


def failing_text(text: str) -> set[str]:
    rows = [line.split() for line in text.splitlines() if line.startswith("  ")]
    return {row[1] for row in rows if row and row[0] == "FAIL"}


def failing_json(text: str) -> set[str]:
    props = json.loads(text)["properties"]
    assert {p["id"] for p in props} == ALL_IDS and len(props) == len(ALL_IDS)
    assert all(p["status"] in ("pass", "fail", "skip") and p["message"] for p in props)
    return {p["id"] for p in props if p["status"] == "fail"}


def failing_junit(text: str) -> set[str]:
    suite = ET.fromstring(text).find("testsuite")
    cases = suite.findall("testcase")
    assert {c.get("name") for c in cases} == ALL_IDS
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert suite.get("failures") == str(len(failed))
    return failed


def test_corpus_has_a_variant_for_every_property():
    """Twelve properties, each owned by at least one one-defect variant."""
    assert set().union(*(ids for *_, ids in CASES)) == ALL_IDS


@pytest.mark.parametrize("stub,symbol,abi,expected", CASES,
                         ids=[f"{c[0]}-{Path(c[2]).stem}" for c in CASES])
def test_each_stub_fails_exactly_its_property_in_every_format(stub, symbol, abi, expected):
    report = report_for(stub, symbol, abi)
    assert failing_text(render_text(report)) == expected
    assert failing_json(render_json(report)) == expected
    assert failing_junit(render_junit(report)) == expected


@pytest.mark.parametrize("stub,symbol,abi,expected",
                         [c for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]])
def test_a_failure_marks_one_instruction_and_carries_a_reproducer(stub, symbol, abi, expected):
    props = json.loads(render_json(report_for(stub, symbol, abi)))["properties"]
    [prop] = [p for p in props if p["status"] == "fail"]
    assert prop["message"].endswith(".") and "\n" not in prop["message"]
    assert sum(line.startswith("=>") for line in prop["disassembly"]) == 1
    assert set(prop["reproducer"]) == {"flags", "module_status", "inject", "inputs", "host"}


def test_our_guest_library_checks_clean():
    """The project's own __tdx_hypercall (guest/tdcall.S) meets spec 9.1."""
    image = build(library_sources(), HC, with_library=False)
    report = check(image, HC, load("seed"))
    assert report.failed == []
    assert {r.id for r in report.results if r.status == "skip"} == set()


def test_seed_plan_covers_flags_failures_and_every_injection_point():
    """4 flag values (HAS_OUTPUT 1, ISSUE_STI 2), each run with the patterns
    and four sets of ordinary values (inputs 0, inputs all-ones, host 0,
    host R10 = 0), with the module failing twice on the patterns and once
    on zero inputs, plus one injection run per boundary before the TDCALL
    for the two flag values with ISSUE_STI: seed_good.S executes 18
    instructions up to and including its TDCALL on the STI path."""
    report = report_for("seed_good.S", HC, "seed")
    assert report.runs == 4 * (1 + 4) + 4 * (2 + 1) + 2 * 18


def test_sti_nop_reproducer_names_the_injection_point():
    """`sti; nop; tdcall`: an interrupt pending from the start is taken
    right before the TDCALL when ISSUE_STI (2) is set."""
    report = report_for("seed_sti_nop.S", HC, "seed")
    [failed] = report.failed
    scenario = failed.observation.scenario
    assert (scenario.flags, scenario.inject, scenario.module_status) == (2, 0, 0)
    text = render_text(report)
    assert "flags: ISSUE_STI (0x2) in RSI" in text
    assert "interrupt: pending after 0 instructions" in text
    marked = [line for line in text.splitlines() if line.strip().startswith("=>")]
    assert len(marked) == 1 and marked[0].endswith("tdcall")


def test_failure_traps_reproducer_uses_operand_invalid_rcx():
    """The first failure the plan injects is TDX_OPERAND_INVALID for RCX,
    0xC000010000000001 (spec 2.2)."""
    [failed] = report_for("seed_rax_unchecked.S", HC, "seed").failed
    assert failed.observation.scenario.module_status == 0xC000010000000001


def test_check_is_deterministic():
    image = build([CORPUS / "seed_sti_early.S"], HC, with_library=False)
    first = render_json(check(image, HC, load("seed"), "x"))
    assert render_json(check(image, HC, load("seed"), "x")) == first


# --- contract files ---
def contract_file(tmp_path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


def test_contract_file_defaults(tmp_path):
    c = load(contract_file(tmp_path, "mask = 0xFC00\n[struct]\nr10 = 0\nr11 = 8\n"))
    assert (c.mask, c.args, c.returns, c.struct_size) == (0xFC00, 7, 10, 16)
    assert c.inputs == c.outputs == {10, 11}
    assert c.unchanged == (3, 5, 12, 13, 14, 15)  # SysV callee-saved, RSP judged by `stack`


@pytest.mark.parametrize("text,words", [
    ("mask = 0xFC00\ncolour = 1\n", "unknown key(s) colour"),
    ("args = 'rdi'\n", "'mask'"),
    ("mask = 0xFC00\n[struct]\nr10 = 0\nr11 = 4\n", "not a multiple of its size"),
    ("mask = 0xFC00\n[struct]\nr10 = 0\nr11 = { offset = 4, size = 4 }\n", "overlap"),
    ("mask = 0xFC00\n[struct]\nr99 = 0\n", "general-purpose register"),
    ("mask = 0xFC00\ninputs = ['r12']\n[struct]\nr10 = 0\n", "without a [struct] field"),
    ("mask = 0xFC00\ncopy_outputs = 'sometimes'\n", "copy_outputs must be"),
    ("mask = 0x1FFFF\n", "mask must be an integer"),
    ("mask = = 1\n", "not valid TOML"),
])
def test_contract_file_errors(tmp_path, text, words):
    with pytest.raises(TdxsimError) as info:
        load(contract_file(tmp_path, text))
    assert words in str(info.value)


# --- the pieces of tdxsim the checker relies on ---
def test_module_fault_injection_writes_only_rax(asm):
    """spec 3.2: on the failure path the module writes only RAX; RIP moves
    past the TDCALL and the host sees nothing."""
    td = asm("        .globl go\ngo:\n        tdcall\n        ret\n")
    td.module.vmcall_failure = 0x4000000100000000
    result = td.call_result("go", regs=dict(rax=0, rcx=0xFC00, r10=0x77, r11=0x1F))
    assert result.reason == "return" and result.exits == []
    gprs = td.gprs()
    assert (gprs["rax"], gprs["rcx"], gprs["r10"], gprs["r11"]) == (0x4000000100000000, 0xFC00,
                                                                   0x77, 0x1F)


def test_call_without_wall_clock_limit_still_has_a_budget(asm):
    td = asm("        .globl spin\nspin:\n        jmp spin\n")
    result = td.call_result("spin", max_insns=1000, timeout=0)
    assert result.reason == "budget"


def test_a_store_through_a_host_pointer_does_not_leak_into_the_next_run():
    """The host answers RDI = the stub's own address; the pointer-reload
    stub then writes its outputs over its own code and returns.  That is a
    host-pointer finding, and the next (plain) run still sees intact code."""
    image = build([CORPUS / "l67_pointer_reload.S"], HC, with_library=False)
    c = load("linux-6.7")
    harness = Harness(image, HC, c)
    entry = image.symbols[HC]
    hostile = harness.run(Scenario(host=((7, entry),)))  # 7: RDI
    assert hostile.returned
    [finding] = judge_all(c, hostile)
    assert finding.id == "host-pointer" and "the VMM's RDI" in finding.message
    plain = harness.run(Scenario())
    assert not plain.returned and plain.result.crash.address is not None
    assert [f.id for f in judge_all(c, plain)] == ["host-pointer"]


# --- the compiled observer against the Python one ---

def _observed(harness, scenarios):
    """Everything the judges read of each run, plus their findings."""
    out = []
    for sc in scenarios:
        o = harness.run(sc)
        out.append((o.tdcalls, o.exits, o.resumes, o.after, o.rflags, o.xmm_after,
                    o.struct_after, o.frame_after, o.last_pc, o.writes, o.result.reason,
                    o.result.events, judge_all(harness.contract, o)))
    return out


# Every correct stub, and the defects that exercise distinct observer paths
# (the newer one-defect variants add nothing new there and would only add time).
OBSERVER_CASES = [c for c in CASES[:21] if c[3]] + [c for c in CASES if not c[3]]


@compiled
@pytest.mark.parametrize("stub,symbol,abi,expected", OBSERVER_CASES)
def test_compiled_observer_sees_what_the_python_observer_sees(stub, symbol, abi, expected):
    """The checker's plan and 60 fuzzed scenarios, observed in C (where the
    compiled path also gives the marker answer) and in Python: identical
    observations and findings, run for run."""
    from tdxsim.check.fuzz import boundaries, scenario
    from tdxsim.check.runner import plan

    image = build([CORPUS / stub], symbol, with_library=False)
    contract = load(abi)
    native, python = (Harness(image, symbol, contract, native=n) for n in (True, False))
    assert native.native and not python.native
    planner = Harness(image, symbol, contract)
    scenarios = [o.scenario for o in plan(contract, planner)]
    span = boundaries(planner)
    scenarios += [scenario(contract, 3, i, span) for i in range(60)]
    assert _observed(native, scenarios) == _observed(python, scenarios)
    if not expected:  # a correct stub's calls are the compiled path's to serve
        assert native.td.module.fast.served > 0


RETRY_FOREVER = """
        .globl  __tdx_hypercall
__tdx_hypercall:                # retries while R10 != 0: the marker host never says 0
        xor     %eax, %eax
        mov     $0xfc00, %ecx
        mov     0(%rdi), %r10
        tdcall
        test    %r10, %r10
        jnz     __tdx_hypercall
        ret
"""


@compiled
def test_more_tdcalls_than_the_compiled_observer_holds(tmp_path):
    """A stub that retries forever is stopped at its 17th TDCALL, the
    checker's TDCALL budget per run (16, README "Limits and failure modes"),
    by both observers alike: the same observation and findings."""
    stub = tmp_path / "retry.S"
    stub.write_text(RETRY_FOREVER)
    image = build([stub], HC, with_library=False)
    contract = load("seed")
    native, python = (Harness(image, HC, contract, native=n) for n in (True, False))
    runs = [_observed(h, [Scenario(flags=1)]) for h in (native, python)]
    assert runs[0] == runs[1]
    [(tdcalls, *_, reason, _, findings)] = runs[0]
    assert len(tdcalls) == 16 and reason == "budget" and native.native
    assert "more than 16 TDCALLs" in native.run(Scenario(flags=1)).result.message


# --- issue 12: SysV semantics, every offender, stack faults, code addresses, ordinary values ---
def failed_json(stub: str, abi: str = "seed", symbol: str = HC) -> dict:
    props = json.loads(render_json(report_for(stub, symbol, abi)))["properties"]
    return {p["id"]: p for p in props}


def test_scrub_names_every_live_host_value():
    """Mask 0xFC00 lets the host write R10..R15 (spec 3.4); the stub zeroes
    R10 only and copies R12, R13 into RDX, R8: all three are named."""
    scrub = failed_json("seed_live_many.S")["scrub"]
    assert set(scrub["offenders"]) == {"R11", "RDX", "R8"}
    for words in ("R11 holds the VMM's R11", "RDX holds the VMM's R12", "R8 holds the VMM's R13"):
        assert words in scrub["message"]
    assert "R11" in render_text(report_for("seed_live_many.S", HC, "seed"))


def test_unbalanced_stack_fails_stack_and_skips_return_value():
    """A missing `pop %rbp`: RET pops the saved RBP, 8 bytes below the
    return address."""
    props = failed_json("seed_unbalanced.S")
    message = props["stack"]["message"]
    assert "RET popped" in message and "a stack address" in message and "-0x8 bytes" in message
    assert props["return-value"]["status"] == "skip"
    assert "see stack" in props["return-value"]["message"]


@pytest.mark.parametrize("stub,words", [
    ("seed_leak_retaddr.S", "the routine's return address in R14"),
    ("seed_leak_text.S", "an address in the loaded code"),
])
def test_code_addresses_are_secrets(stub, words):
    leak = failed_json(stub)["no-leak"]
    assert words in leak["message"] and leak["status"] == "fail"


def test_ordinary_inputs_catch_r10_tested_instead_of_rax():
    """Only an input R10 of 0 (a standard GHCI call, spec 4.1) leaves R10 = 0
    after the module fails the call (spec 3.2: the failure path writes only
    RAX); the reproducer is that run."""
    [failed] = report_for("seed_r10_not_rax.S", HC, "seed").failed
    sc = failed.observation.scenario
    assert failed.id == "failure-traps" and sc.module_status == 0xC000010000000001
    assert dict(sc.inputs)[10] == 0


def test_skip_reason_says_why(tmp_path):
    """A contract without a struct copies nothing: output-copy says so."""
    stub = tmp_path / "s.S"
    stub.write_text(RETRY_FOREVER.replace("mov     0(%rdi), %r10", "xor     %r10d, %r10d")
                    .replace("jnz     __tdx_hypercall", "nop"))
    image = build([stub], HC, with_library=False)
    report = check(image, HC, load(contract_file(tmp_path, 'mask = 0xFC00\nreturns = "none"\n')))
    skipped = {r.id: r.message for r in report.results if r.status == "skip"}
    assert skipped["output-copy"] == "the contract has no struct: nothing is copied"


def test_a_guest_constant_equal_to_a_host_value_is_not_a_finding():
    """The stub puts -1 in R9 itself; a host that writes R13 = -1 does not
    make that a live host value (found by fuzzing seed_caller_saved.S)."""
    image = build([CORPUS / "seed_caller_saved.S"], HC, with_library=False)
    c = load("seed")
    o = Harness(image, HC, c).run(Scenario(flags=1, host=((13, 2**64 - 1),)))
    assert o.returned and judge_all(c, o) == []
