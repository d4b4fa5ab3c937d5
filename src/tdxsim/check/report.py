"""Check reports as text (default), JSON, JUnit XML and SARIF 2.1.0.

Every failure carries its one-sentence message, the routine's disassembly
with the offending instruction marked, and the reproducer: the scenario
(JSON, replayable with `tdxsim check ... --replay FILE`) plus the concrete
inputs, host values and injection point it stands for.  Reports hold no
timings, so the same check always renders the same bytes.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from .. import __version__
from ..events import InterruptPosted
from ..image import Image
from ..vcpu.crash import decode
from .contracts import reg_name
from .properties import PROPERTIES
from .runner import Report, Result

MAX_LISTING = 60  # instructions; longer routines show a window around the mark


def image_bytes(image: Image, address: int, size: int) -> bytes:
    for seg in image.segments:
        if seg.vaddr <= address < seg.vaddr + len(seg.data):
            offset = address - seg.vaddr
            return seg.data[offset:offset + size]
    return b""


def routine_extent(image: Image, symbol: str) -> tuple[int, int]:
    start = image.symbols[symbol]
    size = image.sizes.get(symbol, 0)
    if not size:  # unsized label: up to the next symbol
        later = [a for a in image.symbols.values() if a > start]
        size = min(min(later, default=start + 256) - start, 1024)
    return start, start + size


def listing(image: Image, symbol: str, mark: int | None) -> list[str]:
    start, end = routine_extent(image, symbol)
    rows = list(decode(image_bytes(image, start, end - start), start))
    at = next((i for i, row in enumerate(rows) if row[0] == mark), None)
    if len(rows) > MAX_LISTING:
        centre = at if at is not None else 0
        rows = rows[max(0, centre - MAX_LISTING // 2):][:MAX_LISTING]
    labels = [f"{address:#x} <{symbol}+{address - start:#x}>:" for address, _, _ in rows]
    width = max(map(len, labels), default=0)
    lines = [f"{'=>' if address == mark else '  '} {label:<{width}} {raw.hex(' '):<24} {text}"
             for label, (address, raw, text) in zip(labels, rows)]
    if mark is not None and at is None:
        lines.append(f"=> {image.describe(mark)} (outside the listing)")
    return lines


def reproducer_lines(report: Report, result: Result) -> list[str]:
    """The concrete values a failing run used."""
    o, c = result.observation, report.contract
    sc = o.scenario
    lines = []
    if c.flags is not None:
        lines.append(f"flags: {c.flag_names(sc.flags)} ({sc.flags:#x}) in {reg_name(c.flags)}")
    if sc.module_status:
        lines.append(f"module: fails the TDCALL with RAX = {sc.module_status:#x}")
    if sc.inject is not None:
        posted = next((e for e in o.result.events if isinstance(e, InterruptPosted)), None)
        where = f", before {report.image.describe(posted.rip)}" if posted else ""
        lines.append(f"interrupt: pending after {sc.inject} instructions of the routine{where}")
    if o.values.inputs:
        lines.append("inputs: " + " ".join(f"{reg_name(r)}={v:#x}"
                                           for r, v in sorted(o.values.inputs.items())))
    if o.result.exits:
        taken = o.result.exits[0].returned
        lines.append("host wrote: " + (" ".join(f"{reg_name(r)}={v:#x}" for r, v in
                                                sorted(taken.items())) or "nothing selected"))
    return lines


def scenario_json(result: Result) -> str:
    return json.dumps(result.observation.scenario.to_json(), separators=(", ", ": "))


REPLAY = "tdxsim check ... --replay FILE"


def render_text(report: Report, replay_hint: str = REPLAY) -> str:
    c = report.contract
    what = "replayed 1 scenario" if report.replayed else f"{report.runs} runs"
    out = [f"tdxsim check: {report.symbol} in {report.stub}, contract {c.name} ({what})"]
    for r in report.results:
        out.append(f"  {r.status.upper():<5} {r.id:<14} {r.message}")
    for r in report.failed:
        out += ["", f"{r.id}: {r.message}", f"  {report.symbol}:"]
        out += [f"    {line}" for line in listing(report.image, report.symbol, r.finding.rip)]
        out.append("  reproducer:")
        out += [f"    {line}" for line in reproducer_lines(report, r)]
        out.append(f"    scenario: {scenario_json(r)}")
        out.append(f"    replay: put the scenario in FILE, then {replay_hint}")
    counts = {s: sum(r.status == s for r in report.results) for s in ("pass", "fail", "skip")}
    out += ["", f"{counts['fail']} failed, {counts['pass']} passed, {counts['skip']} not exercised"]
    return "\n".join(out) + "\n"


def to_json(report: Report, replay_hint: str = REPLAY) -> dict:
    props = []
    for r in report.results:
        item = {"id": r.id, "status": r.status, "message": r.message}
        if r.status == "fail":
            item["rip"] = None if r.finding.rip is None else f"{r.finding.rip:#x}"
            item["offenders"] = list(r.finding.offenders)
            item["disassembly"] = listing(report.image, report.symbol, r.finding.rip)
            item["reproducer"] = r.observation.scenario.to_json()
            item["values"] = reproducer_lines(report, r)
            item["replay"] = replay_hint
        props.append(item)
    return {"tool": "tdxsim check", "stub": report.stub, "symbol": report.symbol,
            "contract": report.contract.name, "runs": report.runs,
            "passed": not report.failed, "properties": props}


def render_json(report: Report, replay_hint: str = REPLAY) -> str:
    return json.dumps(to_json(report, replay_hint), indent=2) + "\n"


def render_junit(report: Report, replay_hint: str = REPLAY) -> str:
    suite = ET.Element("testsuite", name=f"tdxsim check {report.symbol} ({report.contract.name})",
                       tests=str(len(report.results)), failures=str(len(report.failed)),
                       errors="0", skipped=str(sum(r.status == "skip" for r in report.results)))
    for r in report.results:
        case = ET.SubElement(suite, "testcase", classname=f"tdxsim.check.{report.symbol}",
                             name=r.id)
        if r.status == "fail":
            body = listing(report.image, report.symbol, r.finding.rip)
            body += reproducer_lines(report, r) + [f"scenario: {scenario_json(r)}",
                                                   f"replay: {replay_hint}"]
            ET.SubElement(case, "failure", message=r.message, type=r.id).text = "\n".join(body)
        elif r.status == "skip":
            ET.SubElement(case, "skipped", message=r.message)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def render_sarif(report: Report, replay_hint: str = REPLAY) -> str:
    """SARIF 2.1.0: one result per failed property, at the offending
    instruction's source file and line (DWARF), else at the stub with the
    symbol+offset as a logical location, so code scanning shows it inline."""
    rules = [{"id": p.id, "name": p.id.title().replace("-", ""),
              "shortDescription": {"text": p.holds},
              "defaultConfiguration": {"level": "error"}} for p in PROPERTIES]
    index = {p.id: i for i, p in enumerate(PROPERTIES)}
    results = []
    for r in report.failed:
        text = (f"{r.message} Reproducer: {scenario_json(r)}; replay: put it in FILE, then "
                f"{replay_hint}.")
        results.append({"ruleId": r.id, "ruleIndex": index[r.id], "level": "error",
                        "message": {"text": text},
                        "locations": [sarif_location(report, r.finding.rip)]})
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "tdxsim check", "version": __version__, "rules": rules}},
        "automationDetails": {"id": f"tdxsim-check/{report.symbol}/{report.contract.name}/"},
        "results": results}]}
    return json.dumps(log, indent=2) + "\n"


def sarif_location(report: Report, rip: int | None) -> dict:
    image = report.image
    where = {"fullyQualifiedName": image.describe(rip).split(" ", 1)[-1].strip("<>")
             if rip is not None else report.symbol, "kind": "function"}
    line = source_line(image, rip)
    if line:
        path, number = line
        physical = {"artifactLocation": {"uri": artifact_uri(path)},
                    "region": {"startLine": number}}
    else:
        physical = {"artifactLocation": {"uri": artifact_uri(report.stub.split(" ")[0])}}
    return {"physicalLocation": physical, "logicalLocations": [where]}


def source_line(image: Image, rip: int | None) -> tuple[str, int] | None:
    """The DWARF row at or just before rip, within the same routine."""
    if rip is None or not image.lines:
        return None
    if rip in image.lines:
        return image.lines[rip]
    hit = image.symbol_at(rip)
    start = rip - hit[1] if hit else rip
    rows = [a for a in image.lines if start <= a <= rip]
    return image.lines[max(rows)] if rows else None


def artifact_uri(path: str) -> str:
    """Relative to the working directory (the repository root in CI) when
    inside it, else an absolute file URI."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    if not relative.startswith(".."):
        return Path(relative).as_posix()
    return Path(absolute).as_uri()


RENDERERS = {"text": render_text, "json": render_json, "junit": render_junit,
             "sarif": render_sarif}
