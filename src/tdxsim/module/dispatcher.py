"""The TDX module: decodes RAX and dispatches TDCALL to one handler per leaf.

Mirrors the module's td_dispatcher (spec 1.2, 3.6): a bad RAX is answered with
a status, never #UD, and every status return resumes after the TDCALL.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable, Protocol

from .. import abi, limits, native
from ..clock import Clock
from ..abi import Leaf
from ..errors import TdxsimError
from ..exits import VmExit, VmResume
from . import (cpuidve_set, page_accept, page_attr, report, rtmr_extend, sys_rd, td_ctls, veinfo,
               vm_rd_wr, vmcall, vp_info, vp_rd_wr)
from .common import complete
from .bridge import VmcallBridge
from .ept_violation import ept_violation
from .intercept import intercept
from .locks import TdLock
from .measurement import Measurements, mrtd
from .msr import MsrPolicy
from .tdvps import Tdvps


class NotModelled(TdxsimError):
    """A guest used an architectural feature tdxsim does not model yet."""


@dataclass
class TdConfig:
    """TD-scope configuration the module applies (TD_PARAMS, spec 1.3, 3.2)."""
    no_rbp_mod: bool = True  # KVM always sets TDX_CONFIG_FLAGS_NO_RBP_MOD [KVM]
    flexible_pending_ve: bool = True  # CONFIG_FLAGS: the guest may set PENDING_VE_DISABLE (13.2)
    topology_enum_configured: bool = True  # the VMM configured the x2APIC IDs (13.2)
    gpaw: int = abi.GPAW_DEFAULT
    attributes: int = 0
    vcpus: int = 1  # vCPUs the TD runs, indices 0 (the BSP) .. vcpus - 1
    num_vcpus: int | None = None  # NUM_VCPUS reported (TDG.VP.INFO, TDG.VM.RD); default vcpus
    max_vcpus: int | None = None  # MAX_VCPUS (TD_PARAMS); default vcpus
    legacy_nested_ve_gp: bool = False  # SDV: nested #VE -> #GP(0), not #DF
    xfam: int = 0x3  # x87 and SSE, which every TD has
    mrconfigid: bytes = bytes(48)  # owner-supplied IDs, reported in TDINFO
    mrowner: bytes = bytes(48)
    mrownerconfig: bytes = bytes(48)
    report_key: bytes = b"tdxsim simulated TDREPORT MAC key"  # see measurement.py

    def __post_init__(self):
        limits.vcpus(self.vcpus, "TdConfig.vcpus")
        if self.num_vcpus is None:
            self.num_vcpus = self.vcpus
        if self.max_vcpus is None:
            self.max_vcpus = max(self.vcpus, self.num_vcpus)


LEAF_HANDLERS: dict[int, Callable] = {
    Leaf.VP_VMCALL: vmcall.handle,
    Leaf.VP_INFO: vp_info.handle,
    Leaf.VP_VEINFO_GET: veinfo.handle,
    Leaf.MR_RTMR_EXTEND: rtmr_extend.handle,
    Leaf.MR_REPORT: report.handle,
    Leaf.VP_CPUIDVE_SET: cpuidve_set.handle,
    Leaf.MEM_PAGE_ACCEPT: page_accept.handle,
    Leaf.VM_RD: vm_rd_wr.handle_rd,
    Leaf.VM_WR: vm_rd_wr.handle_wr,
    Leaf.VP_RD: vp_rd_wr.handle_rd,
    Leaf.VP_WR: vp_rd_wr.handle_wr,
    Leaf.SYS_RD: sys_rd.handle_rd,
    Leaf.SYS_RDALL: sys_rd.handle_rdall,
    Leaf.MEM_PAGE_ATTR_RD: page_attr.handle_rd,
    Leaf.MEM_PAGE_ATTR_WR: page_attr.handle_wr,
}


class HostLike(Protocol):
    """What the module needs of a host: an answer to each TD exit.  A host
    may also offer `compiled_paths() -> native.Host`, what host/fast.c may
    serve for it (host/vmm.py, host/constant.py)."""

    def handle(self, exit: VmExit) -> VmResume: ...


class TdxModule:
    """Applies the architectural TDCALL rules; talks to the host only through
    `host.handle(VmExit) -> VmResume`."""

    def __init__(self, config: TdConfig, host: HostLike, clock: Clock,
                 record: Callable[[object], None] | None = None, *, memory=None,
                 cpuid=None, apics=(), lock_contender: Callable[[], bool] | None = None,
                 bridge_outcome=None, bridge_stop: Callable[[], bool] = lambda: False):
        """memory: the TD's guest memory (memory.TdMemory); cpuid: the
        CPUID values the VMM configured at TD creation (host/cpuid.py);
        apics: each vCPU's virtual APIC page (apicv.VirtualApic); lock_contender:
        who else may hold the TD's locks (the hostile host, locks.py);
        bridge_outcome, bridge_stop: the run loop's side of the host bridge
        (bridge.py)."""
        self.config = config
        self.host = host
        self.clock = clock
        self._fast_host = None  # the native.Host that fast.host points to
        self._armed = None  # (enabled, bridged, no_rbp_mod, failure, veinfo) last stored into fast
        self.record = record or (lambda event: None)
        self.handlers = dict(LEAF_HANDLERS)
        # Per-vCPU state (TDVPS), one per vCPU; `vp` is the running vCPU's.
        apics = [*apics, *[None] * (config.vcpus - len(apics))]
        self.vps = [Tdvps(i, config.legacy_nested_ve_gp, apic) for i, apic in enumerate(apics)]
        self.vp = self.vps[0]
        self.fast = native.Module(clock=ctypes.pointer(clock.state), ve=self.vp.ve.pointer)
        self.measurements = Measurements(config)
        self.msr_policy = MsrPolicy()
        self.notify_enables = 0  # TDCS.NOTIFY_ENABLES
        self.td_ctls = td_ctls.initial(config)  # TDCS.TD_CTLS (td_ctls.py)
        self.rtmr_lock = TdLock(abi.OPERAND_ID_RTMR, lock_contender)  # OPERAND_BUSY (locks.py)
        self.memory, self.cpuid = memory, cpuid
        # Fault injection (spec 10 B9): nonzero makes every valid
        # TDG.VP.VMCALL fail with this RAX, without a TD exit.
        self.vmcall_failure = 0
        # Python's host for exits vmcall.c's host rules decline
        self.bridge = VmcallBridge(self, bridge_outcome, bridge_stop)

    def finalize(self, build_pages) -> None:
        """TDH.MR.FINALIZE: MRTD from the VMM's build records, (GPA, content)
        per added page, content None where the page was not extended."""
        self.measurements.mrtd = mrtd(build_pages)

    def select(self, index: int) -> None:
        """The vCPU with this index runs from now on: TDCALLs, #VEs and
        intercepted instructions use its TDVPS."""
        self.vp = self.vps[index]
        self.fast.ve = self.vp.ve.pointer  # veinfo.c

    @property
    def ve(self):
        """The running vCPU's VE information (ve.VeState)."""
        return self.vp.ve

    @property
    def apic(self):
        """The running vCPU's virtual APIC (apicv.VirtualApic)."""
        return self.vp.apic

    def plug_host(self, host: HostLike) -> None:
        """Send TD exits to `host` from now on."""
        self.host = host

    def arm_compiled_vmcall(self, observed: bool) -> None:
        """The one place that decides whether vmcall.c serves this run's
        TDG.VP.VMCALLs: only where it does exactly what vmcall.handle would.
        That handler is in place, no Python observer must see each call
        (`observed`), and the host says what its C fast paths serve
        (compiled_paths); anything they decline goes to Python.  An
        injected failure (vmcall_failure) needs no host: vmcall.c answers
        it whenever the handler is in place and no Python observer watches.
        veinfo.c serves TDG.VP.VEINFO.GET likewise while veinfo.handle is in
        place and no Python observer watches (it needs no host)."""
        paths = getattr(self.host, "compiled_paths", None)
        fast_host = paths() if paths is not None else None
        handlers = self.handlers
        ours = not observed and handlers.get(Leaf.VP_VMCALL) is vmcall.handle
        enabled = ours and fast_host is not None
        armed = (enabled, enabled and self.bridge.outcome is not None, self.config.no_rbp_mod,
                 self.vmcall_failure if ours else 0,
                 not observed and handlers.get(Leaf.VP_VEINFO_GET) is veinfo.handle)
        if armed != self._armed:  # stored into C on a change only: the checker arms per run
            fast = self.fast
            fast.enabled, bridged, fast.no_rbp_mod, fast.failure, fast.veinfo = armed
            fast.bridge = self.bridge.address if bridged else None
            self._armed = armed
        if fast_host is not None and fast_host is not self._fast_host:
            self.fast.host = ctypes.pointer(fast_host)
            self._fast_host = fast_host

    def tdcall(self, regs, time_ns: int = 0):
        """Execute one TDCALL at regs.rip; returns the host's action or None."""
        rax = regs.get(abi.RAX)
        leaf = rax & abi.RAX_LEAF_MASK
        version = rax >> abi.RAX_VERSION_SHIFT & abi.RAX_VERSION_MASK
        if rax & abi.RAX_RESERVED_MASK or version > abi.VERSIONED_LEAVES.get(leaf, 0):
            return complete(regs, abi.operand_invalid(abi.RAX))
        handler = self.handlers.get(leaf)
        if handler is None:
            if leaf in Leaf._value2member_map_:
                raise NotModelled(f"TDCALL leaf {leaf} (TDG.{Leaf(leaf).name.replace('_', '.')}) "
                                  f"at {regs.rip:#x} is not modelled by tdxsim yet")
            return complete(regs, abi.operand_invalid(abi.RAX))
        return handler(self, regs, time_ns)

    def intercept(self, insn, regs, time_ns: int = 0):
        """An intercepted instruction (IN/OUT/CPUID/MSR) at regs.rip: VeInfo
        to raise #VE, a vector to inject, or None once emulated."""
        return intercept(self, insn, regs, time_ns)

    def ept_violation(self, violation):
        """A guest access the EPT refused: VeInfo to raise #VE, or the
        EptExit the host sees."""
        return ept_violation(self, violation)

