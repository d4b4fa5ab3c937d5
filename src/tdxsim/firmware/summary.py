"""The summary printed at the end of a firmware run (`tdxsim run --firmware`)."""
from __future__ import annotations

from collections import Counter

from .. import abi
from ..events import MemoryConverted, VeRaised, VmcallRecord

_EXIT_REASONS = {abi.EXIT_REASON_CPUID: "CPUID", abi.EXIT_REASON_HLT: "HLT",
                 abi.EXIT_REASON_IO: "IO", abi.EXIT_REASON_MSR_READ: "RDMSR",
                 abi.EXIT_REASON_MSR_WRITE: "WRMSR", abi.EXIT_REASON_EPT_VIOLATION: "EPT violation"}


def _counts(counter: Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common()) or "none"


class Tally:
    """What the summary reports, gathered one event at a time (a run's
    `on_event`), so that a boot of any length needs no event log: TD exits
    by name, #VE by exit reason, conversions, and the ports, MSRs and MMIO
    pages the firmware asked the host about."""

    def __init__(self):
        self.exits, self.ves = Counter(), Counter()
        self.converted = {True: 0, False: 0}  # bytes, by shared
        self.touched = {"ports": set(), "MSRs": set(), "MMIO pages": set()}

    def __call__(self, event) -> None:
        if isinstance(event, VmcallRecord):
            self.exits[event.name] += 1
            self._touch(event.exposed)
        elif isinstance(event, VeRaised):
            self.ves[_EXIT_REASONS.get(event.exit_reason, str(event.exit_reason))] += 1
        elif isinstance(event, MemoryConverted) and event.ok:
            self.converted[event.shared] += event.size

    def _touch(self, g: tuple[int, ...]) -> None:
        if g[abi.R10]:
            return
        sub = g[abi.R11]
        if sub == abi.SubFn.IO:
            self.touched["ports"].add(g[abi.R14] & 0xFFFF)
        elif sub in (abi.SubFn.RDMSR, abi.SubFn.WRMSR):
            self.touched["MSRs"].add(g[abi.R12])
        elif sub == abi.SubFn.MMIO:
            self.touched["MMIO pages"].add(g[abi.R14] >> 12 << 12)


def render(td, result, wall_s: float, tally: Tally) -> list[str]:
    observer = td.observer
    exits = sum(tally.exits.values())
    gets = sum(vp.ve.state.gets for vp in td.module.vps)
    leaves = observer.leaves + Counter({'VP_VMCALL': exits, 'VP_VEINFO_GET': gets})
    lines = [f"firmware {td.firmware.path}: {result.reason}",
             f"  TDCALL leaves: {_counts(leaves)}",
             f"  TDG.VP.VMCALL: {_counts(tally.exits)}",
             f"  #VE by exit reason: {_counts(tally.ves)}"]
    for what, values in tally.touched.items():
        shown = " ".join(f"{v:#x}" for v in sorted(values)[:24])
        more = f" (+{len(values) - 24} more)" if len(values) > 24 else ""
        lines.append(f"  {what} touched: {shown or 'none'}{more}")
    lines += [f"  memory accepted: {len(observer.accepted) * abi.PAGE_SIZE >> 10} KiB in "
              f"{len(observer.accepted)} TDG.MEM.PAGE.ACCEPT; converted to shared: "
              f"{tally.converted[True] >> 10} KiB, to private: "
              f"{tally.converted[False] >> 10} KiB",
              f"  MRTD    {td.module.measurements.mrtd.hex()}"]
    lines += [f"  RTMR[{i}] {value.hex()}" for i, value in enumerate(td.module.measurements.rtmr)]
    lines.append(f"  time: {result.time_ns / 1e9:.3f} s virtual, {result.instructions} "
                 f"instructions, {wall_s:.1f} s wall")
    return lines
