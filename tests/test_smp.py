"""Several vCPUs in one TD: the bundled `smp` guest (ACPI MP-wakeup mailbox,
IPIs), TDG.VP.INFO per vCPU, deterministic interleaving per seed."""
from __future__ import annotations

from tdxsim import TD, TdConfig
from tdxsim.image import bundled_guest
from tdxsim.toolchain import build


def smp_td(vcpus: int = 1, **kw) -> TD:
    return TD(build([bundled_guest("smp")]), config=TdConfig(vcpus=vcpus), **kw)


def test_smp_guest_on_one_vcpu_has_no_ap_to_wake():
    result = smp_td().run()
    assert result.ok, result.describe()
    assert result.console == "smp: BSP up, 1 vCPUs\nsmp: every AP reported\n"
