"""The module's per-vCPU state (the TDVPS of each vCPU): VE information, the
CPUID #VE controls, the vCPU's index and its virtual-APIC page.

Everything else the module keeps is TD scope (TDCS: configuration,
measurements, TD_CTLS, NOTIFY_ENABLES, locks) and lives in TdxModule.  The
TD tells the module which vCPU is running (`TdxModule.select`); leaf
handlers reach this state as `module.vp`.
"""
from __future__ import annotations

from .ve import VeState


class Tdvps:
    def __init__(self, index: int, legacy_nested_ve_gp: bool = False, apic=None):
        self.index = index  # VCPU_INDEX (TDG.VP.INFO R9); also the x2APIC ID here
        self.ve = VeState(legacy_nested_ve_gp)
        self.cpuid_ve = 0  # TDG.VP.CPUIDVE.SET controls
        self.cpuid_control: dict[int, int] = {}  # CPUID_CONTROL per leaf (vp_rd_wr.py)
        self.apic = apic  # apicv.VirtualApic over this vCPU's local APIC
