"""`tdxsim check` / `tdxsim fuzz`: a conformance checker for hypercall stubs.

contracts  what a stub is held to (built-in ABIs and TOML contract files)
harness    runs the stub once per scenario on a reused TD and observes it
properties the judges, one per property id
runner     the deterministic check plan, verdicts and minimisation
report     text, JSON and JUnit output
fuzz       random scenarios in worker processes
"""
from .builtin import BUILTIN
from .contracts import Contract
from .schema import load
from .harness import Harness, Scenario
from .properties import IDS, PROPERTIES
from .runner import Report, check

__all__ = ["BUILTIN", "Contract", "Harness", "IDS", "PROPERTIES", "Report", "Scenario",
           "check", "load"]
