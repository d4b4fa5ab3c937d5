"""Proof reports as text, JSON and JUnit XML.

A counterexample is shown exactly as a failure of the concrete checker is
(check/report.py): the message of its concrete replay, the listing with the
offending instruction marked, and the reproducer whose scenario
`tdxsim check ... --replay FILE` runs.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from ..check.report import listing, render_sarif as concrete_sarif, reproducer_lines, \
    sarif_location, scenario_json
from ..check.runner import Report
from .verdict import Proof, Verdict

REPLAY = "tdxsim check ... --replay FILE"


def _concrete(proof: Proof) -> Report:
    """The shape check/report.py's reproducer lines read."""
    return Report(proof.stub, proof.symbol, proof.contract, proof.image,
                  [v.result for v in proof.counterexamples], 0)


def _evidence(proof: Proof, v: Verdict, replay_hint: str) -> list[str]:
    r = v.result
    lines = listing(proof.image, proof.symbol, r.finding.rip)
    lines += reproducer_lines(_concrete(proof), r)
    return lines + [f"scenario: {scenario_json(r)}", "replayed concretely: the property fails",
                    f"replay: put the scenario in FILE, then {replay_hint}"]


def render_text(proof: Proof, replay_hint: str = REPLAY) -> str:
    c = proof.contract
    out = [f"tdxsim check --prove: {proof.symbol} in {proof.stub}, contract {c.name} "
           f"({proof.paths} paths)"]
    for v in proof.verdicts:
        out.append(f"  {v.status.upper():<14} {v.id:<14} {v.message}")
    for v in proof.counterexamples:
        out += ["", f"{v.id}: {v.message}", f"  {proof.symbol}:"]
        out += [f"    {line}" for line in _evidence(proof, v, replay_hint)]
    counts = {s: sum(v.status == s for v in proof.verdicts)
              for s in ("proven", "counterexample", "unknown")}
    out += ["", f"{counts['proven']} proven, {counts['counterexample']} counterexamples, "
            f"{counts['unknown']} unknown"]
    return "\n".join(out) + "\n"


def to_json(proof: Proof, replay_hint: str = REPLAY) -> dict:
    props = []
    for v in proof.verdicts:
        item = {"id": v.id, "status": v.status, "message": v.message}
        if v.result is not None:
            r = v.result
            item["rip"] = None if r.finding.rip is None else f"{r.finding.rip:#x}"
            item["disassembly"] = listing(proof.image, proof.symbol, r.finding.rip)
            item["reproducer"] = r.observation.scenario.to_json()
            item["values"] = reproducer_lines(_concrete(proof), r)
            item["replayed"] = True
            item["replay"] = replay_hint
        props.append(item)
    return {"tool": "tdxsim check --prove", "stub": proof.stub, "symbol": proof.symbol,
            "contract": proof.contract.name, "paths": proof.paths,
            "proven": not (proof.counterexamples or proof.unknown), "properties": props}


def render_json(proof: Proof, replay_hint: str = REPLAY) -> str:
    return json.dumps(to_json(proof, replay_hint), indent=2) + "\n"


def render_junit(proof: Proof, replay_hint: str = REPLAY) -> str:
    """A counterexample is a failure, an unknown verdict a skipped test
    (not proven, not refuted)."""
    suite = ET.Element("testsuite", name=f"tdxsim check --prove {proof.symbol} "
                       f"({proof.contract.name})", tests=str(len(proof.verdicts)),
                       failures=str(len(proof.counterexamples)), errors="0",
                       skipped=str(len(proof.unknown)))
    for v in proof.verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"tdxsim.prove.{proof.symbol}",
                             name=v.id)
        if v.status == "counterexample":
            ET.SubElement(case, "failure", message=v.message, type=v.id).text = \
                "\n".join(_evidence(proof, v, replay_hint))
        elif v.status == "unknown":
            ET.SubElement(case, "skipped", message=f"unknown: {v.message}")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def render_sarif(proof: Proof, replay_hint: str = REPLAY) -> str:
    """The concrete checker's SARIF with one `fail` result per
    counterexample, plus an `open` result per unknown verdict and a `pass`
    result per proven one (SARIF 2.1.0 3.27.9: level "none" for those)."""
    log = json.loads(concrete_sarif(_concrete(proof), replay_hint))
    run = log["runs"][0]
    run["tool"]["driver"]["name"] = "tdxsim check --prove"
    run["automationDetails"]["id"] = run["automationDetails"]["id"].replace(
        "tdxsim-check/", "tdxsim-check-prove/", 1)
    index = {rule["id"]: i for i, rule in enumerate(run["tool"]["driver"]["rules"])}
    for result in run["results"]:
        result["kind"] = "fail"
    where = sarif_location(_concrete(proof), None)
    run["results"] += [{"ruleId": v.id, "ruleIndex": index[v.id], "kind": kind, "level": "none",
                        "message": {"text": v.message}, "locations": [where]}
                       for v in proof.verdicts for kind in
                       [{"proven": "pass", "unknown": "open"}.get(v.status)] if kind]
    return json.dumps(log, indent=2) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "junit": render_junit,
             "sarif": render_sarif}


def exit_code(proof: Proof) -> int:
    """0 every property proven, 1 a counterexample, 3 no counterexample but
    something left unknown."""
    return 1 if proof.counterexamples else 3 if proof.unknown else 0
