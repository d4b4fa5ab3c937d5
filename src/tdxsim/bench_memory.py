"""`tdxsim bench` rows for memory in run length (issue 14): peak RSS of a
run of 10 k and of 10 M TD exits, and `--trace-out` of a long run writing
one line per event.  Each runs in a fresh process, so that its peak is
its own."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from .devices.debug_exit import DEBUG_EXIT_PORT

SHORT, LONG = 10_000, 10_000_000
TRACE_EXITS = 200_000  # --trace-out writes ~40 k lines/s: `bench --long` does 10 M


def exit_loop_source(calls: int) -> str:
    """A guest (`_start`, no library): `calls` KVM_HC_VAPIC_POLL_IRQ, then
    Instruction.IO to the debug-exit port, which ends the run with code 0:
    calls + 1 TD exits."""
    return f"""
        .globl _start
_start: mov     ${calls}, %rbx
1:      xor     %eax, %eax
        mov     $0xFC00, %ecx
        mov     $1, %r10d
        tdcall
        dec     %rbx
        jnz     1b
        xor     %eax, %eax
        mov     $0xFC00, %ecx
        xor     %r10d, %r10d
        mov     $30, %r11d
        mov     $1, %r12d
        mov     $1, %r13d
        mov     ${DEBUG_EXIT_PORT:#x}, %r14d
        xor     %r15d, %r15d
        tdcall
        ud2
"""


def _run(calls: int, *argv: str) -> subprocess.CompletedProcess:
    """`tdxsim run` of the exit loop in a fresh process, then its peak RSS
    (VmHWM) on stderr's last line."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "loop.S"
        src.write_text(exit_loop_source(calls))
        code = ("import re, sys\nfrom tdxsim.cli import main\n"
                "code = main(sys.argv[1:])\n"
                "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())\n"
                "print(peak.group(1), file=sys.stderr)\nsys.exit(code)\n")
        return subprocess.run([sys.executable, "-c", code, "run", str(src), "--no-library",
                               "--max-insns", str(10 * calls + 100), "--timeout", "3600", *argv],
                              capture_output=True, text=True)


def peak_rss_mib(calls: int) -> float:
    done = _run(calls)
    if done.returncode:
        raise RuntimeError(f"bench exit loop of {calls}: {done.stderr.strip()}")
    return int(done.stderr.split()[-1]) / 1024


def trace_lines(calls: int) -> int:
    """Lines `--trace-out` wrote for a run of calls + 1 exits."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "trace.txt"
        done = _run(calls, "--trace-out", str(out))
        if done.returncode:
            raise RuntimeError(f"bench trace of {calls}: {done.stderr.strip()}")
        with open(out, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def measure(row, long: bool = False) -> list[dict]:
    short, many = peak_rss_mib(SHORT), peak_rss_mib(LONG)
    traced = LONG if long else TRACE_EXITS
    lines = trace_lines(traced)
    return [
        row(f"peak RSS after {LONG // 10**6} M exits", "MiB", many, short,
            f"peak RSS after {SHORT // 1000} k exits", "within 20 MiB", many - short <= 20),
        row(f"--trace-out of {traced + 1} exits: lines", "lines", lines, traced + 1,
            "one per exit", "all of them", lines == traced + 1),
    ]
