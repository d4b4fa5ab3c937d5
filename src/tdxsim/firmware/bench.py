"""`tdxsim bench` rows for booting Debian's TDVF (skipped without the image):
the wall time to milestone 3 and to the UEFI Shell's prompt on COM1
(milestone 4, see README, firmware), and the guest's instruction rate
during the first boot against bare Unicorn's."""
from __future__ import annotations

import time
from pathlib import Path

from ..module import TdConfig

OVMF = Path("/usr/share/ovmf/OVMF.fd")
BOOT_INSNS = 700_000_000  # past the DXE core's first dispatched driver (milestone 3)
SHELL_INSNS = 1_000_000_000  # the Shell's prompt is on COM1 by ~950 M (tests)
BOOT_MEMORY = 128 << 20


def boot_seconds(insns: int) -> float:
    from .boot import FirmwareTD
    td = FirmwareTD.from_path(OVMF, memory=BOOT_MEMORY, config=TdConfig(no_rbp_mod=False))
    start = time.perf_counter()
    td.run(max_insns=insns, timeout=600)
    return time.perf_counter() - start


def measure(row, spin_base: float) -> list[dict]:
    """One boot each (not a median: they take a minute)."""
    if not OVMF.exists():
        return []
    seconds, shell = boot_seconds(BOOT_INSNS), boot_seconds(SHELL_INSNS)
    return [row(f"firmware: boot to milestone 3 ({BOOT_INSNS // 10**6} M insns, 128 MiB)", "s",
                seconds, None, "(one run; apt-get install ovmf)", "< 60 s", seconds < 60),
            row("  firmware: guest instructions during that boot", "insns/s",
                BOOT_INSNS / seconds, spin_base, "bare Unicorn, no hooks", "-", None),
            row(f"firmware: boot to the UEFI Shell's prompt ({SHELL_INSNS // 10**6} M insns)",
                "s", shell, None, "(one run)", "< 60 s", shell < 60)]
