"""The summary printed at the end of a firmware run (`tdxsim run --firmware`)."""
from __future__ import annotations

from collections import Counter

from .. import abi
from ..events import MemoryConverted, VeRaised

_EXIT_REASONS = {abi.EXIT_REASON_CPUID: "CPUID", abi.EXIT_REASON_HLT: "HLT",
                 abi.EXIT_REASON_IO: "IO", abi.EXIT_REASON_MSR_READ: "RDMSR",
                 abi.EXIT_REASON_MSR_WRITE: "WRMSR", abi.EXIT_REASON_EPT_VIOLATION: "EPT violation"}


def _counts(counter: Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common()) or "none"


def _touched(exits) -> dict[str, set[int]]:
    """Ports, MSRs and MMIO pages the firmware asked the host about."""
    touched = {"ports": set(), "MSRs": set(), "MMIO pages": set()}
    for e in exits:
        if e.exposed[abi.R10]:
            continue
        sub, r12, r14 = e.exposed[abi.R11], e.exposed[abi.R12], e.exposed[abi.R14]
        if sub == abi.SubFn.IO:
            touched["ports"].add(r14 & 0xFFFF)
        elif sub in (abi.SubFn.RDMSR, abi.SubFn.WRMSR):
            touched["MSRs"].add(r12)
        elif sub == abi.SubFn.MMIO:
            touched["MMIO pages"].add(r14 >> 12 << 12)
    return touched


def render(td, result, wall_s: float) -> list[str]:
    observer = td.observer
    exits = result.exits
    ves = Counter(_EXIT_REASONS.get(e.exit_reason, str(e.exit_reason))
                  for e in result.events if isinstance(e, VeRaised))
    converted = [e for e in result.events if isinstance(e, MemoryConverted) and e.ok]
    to_shared = sum(e.size for e in converted if e.shared)
    lines = [f"firmware {td.firmware.path}: {result.reason}",
             f"  TDCALL leaves: {_counts(observer.leaves + Counter({'VP_VMCALL': len(exits)}))}",
             f"  TDG.VP.VMCALL: {_counts(Counter(e.name for e in exits))}",
             f"  #VE by exit reason: {_counts(ves)}"]
    for what, values in _touched(exits).items():
        shown = " ".join(f"{v:#x}" for v in sorted(values)[:24])
        more = f" (+{len(values) - 24} more)" if len(values) > 24 else ""
        lines.append(f"  {what} touched: {shown or 'none'}{more}")
    lines += [f"  memory accepted: {len(observer.accepted) * abi.PAGE_SIZE >> 10} KiB in "
              f"{len(observer.accepted)} TDG.MEM.PAGE.ACCEPT; converted to shared: "
              f"{to_shared >> 10} KiB, to private: "
              f"{sum(e.size for e in converted if not e.shared) >> 10} KiB",
              f"  MRTD    {td.module.measurements.mrtd.hex()}"]
    lines += [f"  RTMR[{i}] {value.hex()}" for i, value in enumerate(td.module.measurements.rtmr)]
    lines.append(f"  time: {result.time_ns / 1e9:.3f} s virtual, {result.instructions} "
                 f"instructions, {wall_s:.1f} s wall")
    return lines
