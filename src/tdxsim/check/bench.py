"""Speed of `tdxsim check` and `tdxsim fuzz` (rows for `tdxsim bench`).

The baseline for executions is the same stub called through `td.call_result`
with a host that answers a constant (on the compiled path, as the checker's
marker host is): tdxsim's own cost per call, which the checker cannot go below.  Targets (issue 6): 20,000 executions/s per core,
a full check of the seed stub in under 2 s.
"""
from __future__ import annotations

import multiprocessing as mp
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
    scale = scaling(image, seed)
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
        row("tdxsim fuzz, 2 worker processes", "exec/s", scale["rate2"], scale["rate1"],
             f"1 worker; {CAMPAIGN} executions incl. process start, {PAIRS} alternating pairs",
             ">= 1.8x", scale["rate2"] >= 1.8 * scale["rate1"]),
        # Wall time needs a free second core; CPU time per execution tells
        # whether two workers cost more than one however loaded the machine is,
        # and a plain Python loop what two processes can get now at all.
        row("  fuzz CPU time per execution, 2 workers", "us", scale["cpu2"] * 1e6,
            scale["cpu1"] * 1e6, "1 worker, same pairs (ratio ~1: the workers do not contend)",
            "-", None),
        row("  the machine: 2 processes of a Python loop", "loops/s", scale["machine2"],
            scale["machine1"], "1 process, same pairs (the workers' ceiling)", "-", None),
    ]


def scaling(image, seed) -> dict[str, float]:
    """Campaign rates with one worker and with two, each one's CPU seconds
    per execution (the workers' and the parent's), and what the machine
    gives one and two processes of a plain Python loop at the same time:
    medians of alternating pairs, since the machine's load drifts."""
    samples: dict[str, list[float]] = {}
    for _ in range(PAIRS):
        for workers in (1, 2):
            before = _cpu_seconds()
            campaign = fuzz(image, SYMBOL, seed, runs=CAMPAIGN, seed=0, workers=workers)
            samples.setdefault(f"cpu{workers}", []).append((_cpu_seconds() - before) / CAMPAIGN)
            samples.setdefault(f"rate{workers}", []).append(campaign.rate)
            samples.setdefault(f"machine{workers}", []).append(_loops_per_s(workers))
    return {key: statistics.median(values) for key, values in samples.items()}


def _loops_per_s(processes: int) -> float:
    """Plain Python loops finished per second by `processes` forked
    processes running at once: the machine's own scaling, the ceiling of
    the workers'."""
    ctx = mp.get_context("fork")
    start = time.perf_counter()
    procs = [ctx.Process(target=_loop) for _ in range(processes)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return processes / (time.perf_counter() - start)


def _loop(n: int = 3_000_000) -> None:
    total = 0
    for i in range(n):
        total += i & 7


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
