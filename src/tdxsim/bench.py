"""`tdxsim bench`: speed figures, each with a baseline measured in the same run.

The machine is noisy, so every figure is the median of several repetitions
and is reported as a ratio to its baseline; nothing here is asserted.  Each
row names its target (the performance issue's) and whether it was met.
"""
from __future__ import annotations

import cProfile
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_HOOK_INSN_INVALID, UC_MODE_64, Uc
from unicorn import x86_const as X

from .check.bench import check_loop, measure as measure_check, row as _row
from .errors import TdxsimError
from .explore import explore_wakeups
from .firmware.bench import measure as measure_firmware
from .prove.bench import measure as measure_prove
from .bench_exits import measure as measure_exits
from .bench_memory import measure as measure_memory
from .bench_smp import measure as measure_smp
from .td import TD

REPEATS = 5
NULL_CALLS = 20_000
LOOP_ITERATIONS = 20_000_000  # 3 instructions each

# A loop of TDG.VP.VMCALL<KVM_HC_VAPIC_POLL_IRQ> (R10 = 1), the cheapest
# complete hypercall: full module rules, host dispatch, no device work.
NULL_LOOP = f"""
        .globl null_loop, spin
null_loop:
        mov     ${NULL_CALLS}, %rbx
1:      xor     %eax, %eax
        mov     $0xFC00, %ecx
        mov     $1, %r10d
        tdcall
        dec     %rbx
        jnz     1b
        ret
spin:
        mov     ${LOOP_ITERATIONS}, %rbx
2:      inc     %rax
        dec     %rbx
        jnz     2b
        ret
"""
# The same loops as raw machine code for the bare-Unicorn baselines.
RAW_NULL = (bytes.fromhex("48c7c3") + NULL_CALLS.to_bytes(4, "little")
            + bytes.fromhex("31c0 b900fc0000 41ba01000000 660f01cc 48ffcb 75ec"))
RAW_SPIN = (bytes.fromhex("48c7c3") + LOOP_ITERATIONS.to_bytes(4, "little")
            + bytes.fromhex("48ffc0 48ffcb 75f8"))

EXPLORE_ROUTINE = "\n".join(["        .globl halt50", "halt50:"] + ["        nop"] * 40 + [
    "        xor %eax, %eax", "        mov $0xFC00, %ecx", "        xor %r10d, %r10d",
    "        mov $12, %r11d", "        xor %r12d, %r12d", "        sti", "        tdcall",
    "        ret"])


def _median_time(fn) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _raw_unicorn(code: bytes, hook: bool) -> float:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0x10_0000, 0x10_0000)
    uc.mem_write(0x10_0000, code)

    def skip_tdcall(uc, _):
        uc.reg_write(X.UC_X86_REG_RIP, uc.reg_read(X.UC_X86_REG_RIP) + 4)
        return True

    if hook:
        uc.hook_add(UC_HOOK_INSN_INVALID, skip_tdcall)
    return _median_time(lambda: uc.emu_start(0x10_0000, 0x10_0000 + len(code)))


def _hook_rate() -> float:
    """Calls/s of the minimal-hook baseline, measured now."""
    return NULL_CALLS / _raw_unicorn(RAW_NULL, hook=True)


def _rss_mib(memory: int) -> float:
    """Peak resident memory of a fresh process that builds a TD of `memory`
    bytes and runs the demo guest in it (0: only imports tdxsim)."""
    code = ("import re, tdxsim\n"
            "from tdxsim import TD, image\n"
            f"m = {memory}\n"
            "if m:\n"
            "    r = TD.from_source(image.bundled_guest('demo'), memory=m).run()\n"
            "    assert r.reason == 'exit', r.message\n"
            "status = open('/proc/self/status').read()\n"  # VmHWM: peak RSS of this exec
            "print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout) / 1024


def _bench_td(source: str, **kw) -> TD:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "bench.S"
        src.write_text(source)
        return TD.from_source(src, **kw)


def measure(long: bool = False) -> list[dict]:
    td, explore_td = _bench_td(NULL_LOOP), _bench_td(EXPLORE_ROUTINE)
    insns = 3 * LOOP_ITERATIONS
    spin = insns / _median_time(lambda: td.call("spin", max_insns=10**9))
    spin_base = insns / _raw_unicorn(RAW_SPIN, hook=False)
    explore_s = _median_time(lambda: explore_wakeups(explore_td, "halt50"))
    rss_base, rss_td, rss_1g = _rss_mib(0), _rss_mib(64 << 20), _rss_mib(1 << 30)
    return measure_exits(_row, _bench_td, _hook_rate, _median_time) + measure_firmware(
        _row, spin_base) + [
        _row("guest instructions between exits", "insns/s", spin, spin_base,
             "bare Unicorn, no hooks", ">= 100M/s and >= 1/3", spin >= 100e6 and spin / spin_base >= 1 / 3),
        _row("explorer, 50-instruction halt routine", "s", explore_s, None,
             "(51 injection runs)", "-", None),
        _row("peak RSS, default 64 MiB TD running demo", "MiB", rss_td, rss_base,
             "python + import tdxsim", "< 150 MiB", rss_td < 150),
        _row("peak RSS, 1 GiB TD running demo", "MiB", rss_1g, rss_base,
             "python + import tdxsim", "not ~1 GiB (lazy)", rss_1g < 512),
    ] + measure_memory(_row, long)


def profile(top: int = 15) -> None:
    """Where the time goes (cProfile, tottime): a null TDVMCALL on the Python
    reference path (the compiled path spends none in Python), and one
    checker execution with judging."""
    td = _bench_td(NULL_LOOP, native=False)
    print("\n== null TDVMCALLs on the Python reference path ==")
    _print_profile(lambda: td.call("null_loop", max_insns=10**8), top)
    for mix, what in ((False, "the plain scenario"), (True, "the fuzzer's random mix")):
        print(f"== tdxsim check: Harness.run + judge_all, 3000 times, {what} ==")
        _print_profile(check_loop(3000, mix), top)


def _print_profile(fn, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def _fmt(value: float, unit: str) -> str:
    if unit in ("s", "MiB", "lines", "us"):
        return f"{value:.3f} {unit}" if unit == "s" else f"{value:.0f} {unit}"
    if value < 1e3:
        return f"{value:.2f} {unit}"
    return f"{value / 1e6:.2f} M{unit}" if value >= 1e6 else f"{value / 1e3:.1f} k{unit}"


def main(json_output: bool = False, show_profile: bool = False, compare: str | None = None,
         long: bool = False) -> int:
    old = _load(compare) if compare else None
    rows = measure(long) + measure_smp(_row, _bench_td) + measure_check() + measure_prove()
    if json_output:
        print(json.dumps(rows, indent=2))
    else:
        print(f"tdxsim bench (median of {REPEATS}; ratio = value / baseline, same run)")
        for row in rows:
            ratio = f"ratio {row['ratio']:.2f}" if row["ratio"] else ""
            met = {True: "met", False: "NOT met", None: ""}[row["met"]]
            base = f"{_fmt(row['baseline'], row['unit'])} " if row["baseline"] else ""
            print(f"  {row['name']:<44} {_fmt(row['value'], row['unit']):>14}  {ratio:<11}"
                  f" target {row['target']}: {met}\n  {'':<44} baseline: {base}{row['baseline_name']}")
            if old is not None:
                print(f"  {'':<44} {_change(row, old.get(row['name']))}")
    if show_profile:
        profile()
    return 0


def _load(path: str) -> dict[str, dict]:
    """The rows of an earlier `tdxsim bench --json`, by name."""
    try:
        rows = json.loads(Path(path).read_text())
        return {row["name"]: row for row in rows}
    except OSError as exc:
        raise TdxsimError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, KeyError):
        raise TdxsimError(f"{path} is not the output of `tdxsim bench --json`") from None


def _change(row: dict, before: dict | None) -> str:
    """The change against the saved run: the value, and the ratio to the
    baseline (the figure that survives a machine's changing load)."""
    if before is None or before.get("unit") != row["unit"]:
        return "compare: not in the saved run"
    text = f"compare: was {_fmt(before['value'], row['unit'])}"
    if before["value"]:
        text += f" ({(row['value'] / before['value'] - 1) * 100:+.0f} %)"
    if row["ratio"] and before.get("ratio"):
        text += f", ratio {before['ratio']:.2f} -> {row['ratio']:.2f}"
    return text
