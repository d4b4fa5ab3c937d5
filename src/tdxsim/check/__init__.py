"""`tdxsim check` / `tdxsim fuzz`: a conformance checker for hypercall stubs.

contracts    what a stub is held to: the Contract and its pieces
builtin      the bundled contracts (spec 9, public ABIs)
schema       contract files: the typed TOML schema
scenario     what one run varies, its JSON form and reproducer files
values       the values a run starts from: patterns, the layout, images
observation  what a run observed
harness      runs the stub once per scenario on a reused TD (orchestration)
facts        facts about a run that several judges share
properties   the judges, one per property id
runner       the deterministic check plan, verdicts, skip reasons, minimisation
report       text, JSON, JUnit and SARIF output
fuzz         random scenarios in worker processes
"""
from .builtin import BUILTIN
from .contracts import Contract
from .harness import Harness
from .scenario import Scenario
from .schema import load
from .properties import IDS, PROPERTIES
from .runner import Report, check

__all__ = ["BUILTIN", "Contract", "Harness", "IDS", "PROPERTIES", "Report", "Scenario",
           "check", "load"]
