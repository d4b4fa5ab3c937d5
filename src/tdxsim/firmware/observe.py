"""What a firmware run did, for its summary and for tests: TDCALL leaves by
count, the pages accepted in order, where each boot phase was first seen,
and the virtual time a TD exit to the host costs on this platform.

Virtual time is otherwise the instruction count (1 ns each), which makes a
polling loop over the ACPI PM timer through #VE and TDG.VP.VMCALL crawl: a
real exit to the VMM's user space costs microseconds, and firmware delays
are written against that.  The firmware TD's clock therefore charges
EXIT_COST_NS for each exit to the host (clock.py exit_ns).
"""
from __future__ import annotations

from collections import Counter

from ..abi import Leaf

EXIT_COST_NS = 10_000  # a #VE-emulated port access served by QEMU: order of 10 us


class FirmwareObserver:
    def __init__(self, td):
        self.td = td
        self.leaves: Counter[str] = Counter()
        self.accepted: list[int] = []  # TDG.MEM.PAGE.ACCEPT operands (RCX) that succeeded
        self.first_64bit_rip: int | None = None
        module = td.module
        for leaf, handler in list(module.handlers.items()):
            # the compiled TDG.VP.VMCALL and VEINFO.GET paths stay usable:
            # the summary counts those two from the exits and VeState
            if leaf not in (Leaf.VP_VMCALL, Leaf.VP_VEINFO_GET):
                module.handlers[leaf] = self._counted(leaf, handler)

    def _counted(self, leaf: int, handler):
        name = Leaf(leaf).name if leaf in Leaf._value2member_map_ else f"leaf {leaf}"

        def counted(module, regs, time_ns):
            self.leaves[name] += 1
            rcx = regs.get(1)
            if self.first_64bit_rip is None:
                self.first_64bit_rip = regs.rip  # TDCALL runs only in 64-bit mode
            outcome = handler(module, regs, time_ns)
            if leaf == Leaf.MEM_PAGE_ACCEPT and regs.get(0) == 0:
                self.accepted.append(rcx)
            return outcome
        return counted
