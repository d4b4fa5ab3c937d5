"""`tdxsim bench` rows for `tdxsim check --prove` (issue 18): a full proof
of the seed stub (the guest library's `__tdx_hypercall`) in a fresh process
pinned to one core, with its peak memory.  Target: under 10 s."""
from __future__ import annotations

import os
import subprocess
import sys

from ..check.bench import row

PROOF = ("import re, time\n"
         "from tdxsim.check import load\n"
         "from tdxsim.toolchain import build, library_sources\n"
         "from tdxsim.prove import prove\n"
         "start = time.perf_counter()\n"
         "image = build(library_sources(), '__tdx_hypercall', with_library=False)\n"
         "proof = prove(image, '__tdx_hypercall', load('seed'))\n"
         "seconds = time.perf_counter() - start\n"
         "assert all(v.status == 'proven' for v in proof.verdicts), proof.verdicts\n"
         "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
         "print(seconds, int(peak) / 1024, proof.paths)\n")


def measure() -> list[dict]:
    try:
        import triton  # noqa: F401
    except ImportError:
        return []  # the extra is not installed: no rows
    pin = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) \
        if hasattr(os, "sched_setaffinity") else None
    out = subprocess.run([sys.executable, "-c", PROOF], capture_output=True, text=True,
                         check=True, preexec_fn=pin).stdout.split()
    seconds, peak, paths = float(out[0]), float(out[1]), int(out[2])
    return [
        row(f"check --prove of the seed stub ({paths} paths)", "s", seconds, None,
            "one core: build, explore, 12 properties, replays", "< 10 s", seconds < 10),
        row("check --prove peak memory", "MiB", peak, None, "peak RSS of that process",
            "-", None),
    ]
