"""TD-scope controls the guest reads and writes with TDG.VM.RD/WR, and their
effects (spec 13.2; intel/tdx-module metadata_td.c md_td_write_element,
td_cpuid.c, tdh_mng_init: TD_CTLS.PENDING_VE_DISABLE starts as the
SEPT_VE_DISABLE attribute).

TDCS.TD_CTLS: bit 0 PENDING_VE_DISABLE (an access to a pending page exits to
the host instead of #VE), bit 1 ENUM_TOPOLOGY (the module answers CPUID
0xB/0x1F), bit 2 VIRT_CPUID2 (CPUID 2), bit 3 REDUCE_VE (implies the two
before; more CPUID leaves, unknown ones read 0), bit 63 LOCK.  A guest write
follows the module's rules, in its order: once LOCK is set nothing may
change; PENDING_VE_DISABLE may change only with CONFIG_FLAGS.
FLEXIBLE_PENDING_VE; REDUCE_VE turns on ENUM_TOPOLOGY and VIRT_CPUID2;
ENUM_TOPOLOGY needs TOPOLOGY_ENUM_CONFIGURED (the VMM configured every
vCPU's x2APIC ID).  Each violation is METADATA_FIELD_VALUE_NOT_VALID.
"""
from __future__ import annotations

from .. import abi
from ..abi import Status


def initial(config) -> int:
    """TD_CTLS after TD build: PENDING_VE_DISABLE = ATTRIBUTES.SEPT_VE_DISABLE."""
    return abi.TD_CTLS_PENDING_VE_DISABLE if config.attributes & abi.ATTR_SEPT_VE_DISABLE else 0


def config_flags(config) -> int:
    return (abi.CONFIG_FLAGS_GPAW52 * (config.gpaw == 52)
            | abi.CONFIG_FLAGS_FLEXIBLE_PENDING_VE * config.flexible_pending_ve
            | abi.CONFIG_FLAGS_NO_RBP_MOD * config.no_rbp_mod)


def write(module, new: int) -> int:
    """Store a guest's TD_CTLS value (already merged under the write mask);
    returns the status."""
    old = module.td_ctls
    if old & abi.TD_CTLS_LOCK:
        return Status.METADATA_FIELD_VALUE_NOT_VALID if new != old else Status.SUCCESS
    if (new ^ old) & abi.TD_CTLS_PENDING_VE_DISABLE and not module.config.flexible_pending_ve:
        return Status.METADATA_FIELD_VALUE_NOT_VALID
    if new & abi.TD_CTLS_REDUCE_VE:
        new |= abi.TD_CTLS_ENUM_TOPOLOGY | abi.TD_CTLS_VIRT_CPUID2
    if new & abi.TD_CTLS_ENUM_TOPOLOGY and not module.config.topology_enum_configured:
        return Status.METADATA_FIELD_VALUE_NOT_VALID
    module.td_ctls = new
    return Status.SUCCESS


def pending_ve_disabled(module) -> bool:
    return bool(module.td_ctls & abi.TD_CTLS_PENDING_VE_DISABLE)


def cpuid_native(module, leaf: int, known: bool) -> bool | None:
    """Whether the module answers CPUID(leaf) itself under the TD's
    controls: True (from the TD's CPUID values), False (#VE), or None when
    REDUCE_VE makes a leaf outside the module's table read as all zeros."""
    ctls = module.td_ctls
    if leaf in abi.CPUID_LEAVES_VIRT_CPUID2:
        return bool(ctls & abi.TD_CTLS_VIRT_CPUID2)
    if leaf in abi.CPUID_LEAVES_TOPOLOGY:
        return bool(ctls & abi.TD_CTLS_ENUM_TOPOLOGY)
    if leaf in abi.CPUID_LEAVES_REDUCE_VE:
        return bool(ctls & abi.TD_CTLS_REDUCE_VE)
    if known:
        return True
    return None if ctls & abi.TD_CTLS_REDUCE_VE else False
