"""`tdxsim bench` rows for several vCPUs: guest instructions per second with
four vCPUs (switched on the one engine in quanta of virtual time) against
one vCPU running the same loop."""
from __future__ import annotations

import statistics
import time

from .module import TdConfig

REPEATS = 7
ITERATIONS = 16_000_000  # over all vCPUs, 3 instructions each: both runs do the same work
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
        mov     $TdxIterations, %ecx
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
    """Guest instructions per second of CPU time over one whole run (the
    process's CPU time: on a machine shared with other jobs, wall time
    mostly measures their load)."""
    before, start = td.vcpu.instructions, time.process_time()
    result = td.run(max_insns=10**9)
    elapsed = time.process_time() - start
    if not result.ok:
        raise RuntimeError(f"the SMP bench guest failed: {result.describe()}")
    return (result.instructions - before) / elapsed


def source(vcpus: int, iterations: int = ITERATIONS) -> str:
    return SPIN.replace("TdxVcpus", str(vcpus)).replace("TdxIterations", str(iterations // vcpus))


def measure(row, bench_td) -> list[dict]:
    """The two TDs do the same work and run alternately, so that load from
    other jobs hits both alike; the medians are compared."""
    tds = (bench_td(source(1)), bench_td(source(VCPUS), config=TdConfig(vcpus=VCPUS)))
    rates = ([], [])
    for _ in range(REPEATS):
        for td, found in zip(tds, rates):
            found.append(_rate(td))
    one, four = (statistics.median(r) for r in rates)
    return [row(f"guest instructions, {VCPUS} vCPUs (all together)", "insns/s", four, one,
                "the same loop on 1 vCPU", "within 20 %", four >= 0.8 * one)]
