"""`tdxsim bench` rows for several vCPUs: guest instructions per second with
four vCPUs (switched on the one engine in quanta of virtual time) against
one vCPU running the same loop."""
from __future__ import annotations

import statistics
import time

from .module import TdConfig

REPEATS = 5
ITERATIONS = 4_000_000  # per vCPU, 3 instructions each
VCPUS = 4

# Every vCPU runs the loop on its own stack and counts itself in; vCPU 0
# then waits for the others and ends the run, the others park.
SPIN = f"""
        .globl  _start
_start: lea     stacks(%rip), %rsp
        lea     1(%rsi), %rax
        shl     $12, %rax
        add     %rax, %rsp
        mov     %rsi, %rbx
        mov     ${ITERATIONS}, %ecx
1:      inc     %rax
        dec     %rcx
        jnz     1b
        lock incq done(%rip)
        test    %rbx, %rbx
        jnz     park
        mov     $TdxVcpus, %eax
2:      cmp     %rax, done(%rip)
        jb      2b
        xor     %edi, %edi
        call    tdx_debug_exit
park:   cli
        mov     $1, %edi
        call    tdx_halt
        jmp     park
        .data
done:   .quad   0
        .bss
        .balign 16
stacks: .fill   {VCPUS} * 4096, 1, 0
"""


def _rate(td) -> float:
    """Guest instructions per second over one whole run."""
    before, start = td.vcpu.instructions, time.perf_counter()
    result = td.run(max_insns=10**9)
    elapsed = time.perf_counter() - start
    if not result.ok:
        raise RuntimeError(f"the SMP bench guest failed: {result.describe()}")
    return (result.instructions - before) / elapsed


def measure(row, bench_td) -> list[dict]:
    """The two TDs run alternately, so that load from other jobs hits both
    alike; the medians are compared."""
    tds = (bench_td(SPIN.replace("TdxVcpus", "1")),
           bench_td(SPIN.replace("TdxVcpus", str(VCPUS)), config=TdConfig(vcpus=VCPUS)))
    rates = ([], [])
    for _ in range(REPEATS):
        for td, found in zip(tds, rates):
            found.append(_rate(td))
    one, four = (statistics.median(r) for r in rates)
    return [row(f"guest instructions, {VCPUS} vCPUs (all together)", "insns/s", four, one,
                "the same loop on 1 vCPU", "within 20 %", four >= 0.8 * one)]
