"""Speed of `tdxsim check` and `tdxsim fuzz` (rows for `tdxsim bench`).

The baseline for executions is the same stub called through `td.call_result`
with a host that answers a constant (on the compiled path, as the checker's
marker host is): tdxsim's own cost per call, which the checker cannot go below.  Targets (issue 6): 20,000 executions/s per core,
a full check of the seed stub in under 2 s.
"""
from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time

from ..exits import VmResume
from ..host import ConstantHost
from ..toolchain import build, library_sources
from ..td import TD
from .schema import load
from .fuzz import boundaries, fuzz, scenario
from .harness import Harness
from .scenario import Scenario
from .properties import judge_all
from .runner import check

SYMBOL = "__tdx_hypercall"
RUNS = 3000
CAMPAIGN = 48_000  # long enough that starting the workers (~0.1 s) does not dominate
PAIRS = 3  # campaigns with 1 and 2 workers, alternating


def _rate(fn, count: int) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def measure() -> list[dict]:
    image = build(library_sources(), SYMBOL, with_library=False)
    seed = load("seed")
    td = TD(image)
    # The compiled path answers, as for the checker's marker host.
    td.plug_host(ConstantHost(VmResume(gprs={r: 0xB057 for r in range(10, 16)})))
    args = td.stack_top - 0x10000

    def bare() -> None:
        for _ in range(RUNS):
            td.call_result(SYMBOL, args, 1, timeout=0)

    harness = Harness(image, SYMBOL, seed)
    plain = Scenario(flags=1)
    span = boundaries(harness)
    mix = [scenario(seed, 0, i, span) for i in range(RUNS)]
    baseline = _rate(bare, RUNS)
    plain_rate = _rate(lambda: [judge_all(seed, harness.run(plain)) for _ in range(RUNS)], RUNS)
    fuzz_rate = _rate(lambda: [judge_all(seed, harness.run(s)) for s in mix], RUNS)
    start = time.perf_counter()
    report = check(image, SYMBOL, seed)
    check_s = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tdxsim.cli", "check", str(library_sources()[0]),
                    "--symbol", SYMBOL, "--abi", "seed"], capture_output=True, check=True)
    wall = time.perf_counter() - start
    one, two, cpu_one, cpu_two = scaling(image, seed)
    base = "td.call_result, constant host (tdxsim's cost per call)"
    return [
        row("check: execution + judging, plain", "exec/s", plain_rate, baseline, base,
             ">= 20k/s per core", plain_rate >= 20e3),
        row("fuzz: execution + judging, random mix", "exec/s", fuzz_rate, baseline, base,
             ">= 20k/s per core", fuzz_rate >= 20e3),
        row(f"check of the seed stub ({report.runs} runs)", "exec/s", report.runs / check_s,
             baseline, base, "-", None),
        row("tdxsim check seed stub, wall time", "s", wall, None,
             "new process: imports, as/ld, TD, all runs, report", "< 2 s", wall < 2),
        row("tdxsim fuzz, 2 worker processes", "exec/s", two, one,
             f"1 worker; {CAMPAIGN} executions incl. process start, {PAIRS} alternating pairs",
             ">= 1.8x", two >= 1.8 * one),
        # Wall time needs a free second core; CPU time per execution tells
        # whether two workers cost more than one however loaded the machine is.
        row("  fuzz CPU time per execution, 2 workers", "us", cpu_two * 1e6, cpu_one * 1e6,
            "1 worker, same pairs (ratio ~1: the workers do not contend)", "-", None),
    ]


def scaling(image, seed) -> tuple[float, float, float, float]:
    """Campaign rates with one worker and with two, and each one's CPU
    seconds per execution (the workers' and the parent's): medians of
    alternating pairs, since the machine's load drifts."""
    rates, cpus = {1: [], 2: []}, {1: [], 2: []}
    for _ in range(PAIRS):
        for workers in (1, 2):
            before = _cpu_seconds()
            campaign = fuzz(image, SYMBOL, seed, runs=CAMPAIGN, seed=0, workers=workers)
            cpus[workers].append((_cpu_seconds() - before) / CAMPAIGN)
            rates[workers].append(campaign.rate)
    return (*(statistics.median(rates[w]) for w in (1, 2)),
            *(statistics.median(cpus[w]) for w in (1, 2)))


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended."""
    return sum(getattr(resource.getrusage(who), field) for who in
               (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))


def check_loop(runs: int, mix: bool = False):
    """A function that checks the seed stub `runs` times: the plain
    scenario, or the fuzzer's random mix."""
    image = build(library_sources(), SYMBOL, with_library=False)
    seed = load("seed")
    harness = Harness(image, SYMBOL, seed)
    span = boundaries(harness)
    scenarios = [scenario(seed, 0, i, span) if mix else Scenario(flags=1) for i in range(runs)]
    return lambda: [judge_all(seed, harness.run(s)) for s in scenarios]


def row(name, unit, value, baseline, baseline_name, target, met) -> dict:
    return dict(name=name, unit=unit, value=value, baseline=baseline,
                baseline_name=baseline_name, target=target, met=met,
                ratio=value / baseline if baseline else None)
