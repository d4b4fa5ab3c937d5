"""TDG.VP.INFO (leaf 1): TD and vCPU information (spec 1.3; [M-api])."""
from __future__ import annotations

from .. import abi
from .common import complete


def handle(module, regs, time_ns: int):
    cfg = module.config
    return complete(regs, abi.Status.SUCCESS, {
        abi.RCX: cfg.gpaw,
        abi.RDX: cfg.attributes,
        abi.R8: cfg.num_vcpus | cfg.max_vcpus << 32,
        abi.R9: module.vp.index,
        abi.R10: 1,  # bit 0: TDG.SYS.RD available (sys_rd.py)
        abi.R11: 0,
    })
