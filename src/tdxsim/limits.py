"""The bounds tdxsim puts on what a user asks for, each checked before use
(README, "Limits and failure modes").  A value outside them is bad input:
a TdxsimError naming the option, which the CLI prints with exit code 2."""
from __future__ import annotations

import argparse
import math

from .errors import TdxsimError

# The C instruction counter (vcpu/counter.c) is a u64 that keeps counting
# across runs of one TD: a budget up to 2**63 - 1 leaves room for 2**63
# instructions of earlier runs, more than any TD executes.
MAX_INSNS = (1 << 63) - 1
# Unicorn takes its watchdog timeout in microseconds as a u64; a year is
# far below that and far above any useful wall-clock limit.
MAX_TIMEOUT = 365 * 24 * 3600.0
MAX_WORKERS = 256  # fuzz worker processes
# `check` and `fuzz`: TDCALLs one call of a stub may make.  A stub that loops
# on TDCALL is stopped at the next one and judged as never returning; what a
# run keeps stays small whatever the stub's instruction budget.
TDCALLS_PER_RUN = 16
# `check`'s deterministic plan: every combination of up to 6 flag bits; with
# more, FLAG_VALUES of them (none, all, each bit alone, all but each bit,
# then a seeded sample).  Interrupt injection points: every instruction
# boundary before the TDCALL while they fit in PLAN_INJECTIONS for all flag
# values together, else the last half of each share and the rest evenly
# spaced before them (timing bugs sit next to the TDCALL).
FLAG_VALUES = 64
PLAN_INJECTIONS = 1024
# vCPUs of one TD: each is a register context on the one Unicorn engine,
# scheduled in quanta of virtual time (smp.py); x2APIC IDs in physical
# destination mode and the KVM_HC_SEND_IPI bitmap cover far more.
MAX_VCPUS = 64


def vcpus(value: int, what: str = "--vcpus") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VCPUS:
        raise TdxsimError(f"{what} must be a whole number from 1 to {MAX_VCPUS}, not {value!r}")
    return value


def budget(value: int, what: str = "--max-insns") -> int:
    """An instruction budget: a whole number 1 .. MAX_INSNS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INSNS:
        raise TdxsimError(f"{what} must be a whole number of instructions from 1 to "
                          f"{MAX_INSNS} (2**63 - 1, the instruction counter's range), "
                          f"not {value!r}")
    return value


def timeout(value: float, what: str = "--timeout", zero_means_none: bool = False) -> float:
    """A wall-clock limit in seconds: finite and positive (0 = none, where allowed)."""
    low = "0 (none) or more" if zero_means_none else "more than 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not zero_means_none) or value > MAX_TIMEOUT:
        raise TdxsimError(f"{what} must be a finite number of seconds, {low} and at most "
                          f"{MAX_TIMEOUT:.0f} (a year), not {value!r}")
    return float(value)


def symbol_name(text: str) -> str:
    """An ELF symbol named on the command line (argparse type): no NUL
    byte, which no symbol holds and no tool can be passed."""
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a symbol name: it holds a NUL byte")
    return text


def count(value: int, what: str, high: int) -> int:
    """A positive count with an upper bound (--runs, --workers)."""
    if not 1 <= value <= high:
        raise TdxsimError(f"{what} must be from 1 to {high}, not {value}")
    return value
