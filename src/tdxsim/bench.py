"""`tdxsim bench`: speed figures, each with a baseline measured in the same run.

The machine is noisy, so every figure is the median of several repetitions
and is reported as a ratio to its baseline; nothing here is asserted.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_HOOK_INSN_INVALID, UC_MODE_64, Uc
from unicorn import x86_const as X

from .check.bench import measure as measure_check
from .explore import explore_wakeups
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


def measure() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "bench.S"
        src.write_text(NULL_LOOP)
        td = TD.from_source(src)
        explore_src = Path(tmp) / "explore.S"
        explore_src.write_text(EXPLORE_ROUTINE)
        explore_td = TD.from_source(explore_src)
    null_s = _median_time(lambda: td.call("null_loop", max_insns=10**8))
    null_base = _raw_unicorn(RAW_NULL, hook=True)
    spin_s = _median_time(lambda: td.call("spin", max_insns=10**9))
    spin_base = _raw_unicorn(RAW_SPIN, hook=False)
    explore_s = _median_time(lambda: explore_wakeups(explore_td, "halt50"))
    insns = 3 * LOOP_ITERATIONS
    return [
        dict(name="null TDVMCALL round trips", unit="calls/s", value=NULL_CALLS / null_s,
             baseline=NULL_CALLS / null_base,
             baseline_name="bare Unicorn + Python TDCALL hook (RIP += 4 only)"),
        dict(name="guest instructions between exits", unit="insns/s", value=insns / spin_s,
             baseline=insns / spin_base, baseline_name="bare Unicorn, no hooks"),
        dict(name="explorer, 50-instruction halt routine", unit="s", value=explore_s,
             baseline=None, baseline_name="(51 injection runs)"),
    ]


def _fmt(value: float, unit: str) -> str:
    return f"{value:.3f} s" if unit == "s" else f"{value / 1e6:.3f} M{unit}" \
        if value >= 1e6 else f"{value / 1e3:.1f} k{unit}"


def main(json_output: bool = False) -> int:
    rows = measure() + measure_check()  # check/fuzz rows: tdxsim/check/bench.py
    for row in rows:
        row["ratio"] = row["value"] / row["baseline"] if row["baseline"] else None
    if json_output:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"tdxsim bench (median of {REPEATS})")
    for row in rows:
        base = f"{_fmt(row['baseline'], row['unit'])} {row['baseline_name']}" \
            if row["baseline"] else row["baseline_name"]
        ratio = f"  ratio {row['ratio']:.2f}" if row["ratio"] else ""
        print(f"  {row['name']:<40} {_fmt(row['value'], row['unit']):>16}{ratio}\n"
              f"  {'':<40} baseline: {base}")
    return 0
