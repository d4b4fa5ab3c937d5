"""A trust domain: guest memory and one vCPU wired to the TDX module and host.

`TD.run()` executes from the entry point until the guest ends; `TD.call()`
runs one guest function with the SysV calling convention.  Both end in a
`RunResult`; nothing that happens inside the guest escapes as a traceback.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

from . import abi, image as image_mod, limits, native, toolchain
from .clock import Clock
from .layout import GDT, PAGE, PAGE_TABLES, RESERVED_END, RETURN_TRAP
from .errors import TdxsimError
from .eventlog import RING, EventLog, ExitBuffer
from .events import VmcallRecord
from .execution import Execution
from .host import Host
from .memory import HostMemory, TdMemory
from .module import TdConfig, TdxModule
from .module.apicv import VirtualApic
from .result import GuestStopped, RunResult  # noqa: F401 (tdxsim.td.RunResult, GuestStopped)
from .smp import Smp
from .vcpu.cpu import VCpu
from .vcpu.mmu import MemoryFault
from .vcpu.interrupts import install_gdt
from .vcpu.observer import TdcallObserver
from .vcpu.paging import default_page_tables

MiB = 1 << 20
SYSV_ARGS = (abi.RDI, abi.RSI, abi.RDX, abi.RCX, abi.R8, abi.R9)
DEFAULT_MAX_INSNS = 200_000_000
DEFAULT_TIMEOUT = 30.0


class TD:
    ram_base = PAGE  # page 0 stays out of RAM so that NULL faults (firmware TDs: 0)

    def __init__(self, image: image_mod.Image, memory: int = 64 * MiB,
                 config: TdConfig | None = None, host: str | Host = "kvm",
                 ns_per_insn: int = 1, native: bool | None = None, exit_ns: int = 0,
                 seed: int = 0):
        """seed: the interleaving of several vCPUs (scheduler.py)."""
        if memory % PAGE or memory < 2 * MiB:
            raise TdxsimError(f"guest memory must be a multiple of 4 KiB and at least "
                              f"2 MiB, not {memory:#x}")
        self.image = image
        self.memory = memory
        self.config = config or TdConfig()
        # Each part receives what it needs as it is built, bottom up: the
        # clock (the host's, which a Host passed in brings), guest memory,
        # the host, the TDX module, the vCPU.
        self.clock = host.clock if isinstance(host, Host) else Clock()
        self.clock.set_rates(ns_per_insn, exit_ns)
        self.ram = TdMemory(memory, self.config.gpaw, self.ram_base)
        vcpus = self.config.vcpus
        self.host = host if isinstance(host, Host) else Host(host, self.config.gpaw,
                                                             clock=self.clock, vcpus=vcpus)
        if len(self.host.vcpus) != vcpus:
            raise TdxsimError(f"the host was built for {len(self.host.vcpus)} vCPU(s), the TD "
                              f"has {vcpus}: give Host(..., vcpus={vcpus})")
        self.host.serve(HostMemory(self.ram), self.config.gpaw, self._record)
        self.lapic = self.host.lapic
        adversary = self.host.adversary  # the hostile host holds the TD's lock at times
        self.module = TdxModule(self.config, self.host, self.clock, self._record,
                                memory=self.ram, cpuid=self.host.cpuid,
                                apics=[VirtualApic(v.lapic) for v in self.host.vcpus],
                                lock_contender=adversary and adversary.holds_td_lock,
                                bridge_outcome=self._bridged,
                                bridge_stop=self._stop_after_bridged)
        self._exit_buffer = ExitBuffer(self.module.fast)
        self.events = EventLog(self._exit_buffer, ring=None)
        self.vcpu = VCpu(self.clock, self.ram, native, self.module.fast, self._on_tdcall)
        self._apic_in_c = None  # the LocalApic compiled_vcpu last pointed C at
        self._apic_native = False  # ... whose state C can read (vcpu.fast.apic)
        self.vcpu.phys_write(RETURN_TRAP, abi.UD2_BYTES)
        self._load(image)
        self.module.finalize(self._image_pages(image))
        self.vcpu_index = 0  # the vCPU on the engine (several: smp.py switches them)
        self.smp = Smp(self, seed) if vcpus > 1 else None
        self.vcpu.traps.sti.enabled = int(self.smp is None)  # (CodeTraps.complete_sti)
        self.crash_details = True  # disassembly and backtrace in crash reports (~0.1 ms)
        self._run: Execution | None = None
        self._labels: dict[int, str] = {}  # code address -> symbol+offset
        self._observer = None  # a Python TDCALL observer (observe_tdcalls)
        self._checked = None  # the last budget and timeout _execute found valid
        self.quiet = self._quiet_check()  # C's answer to the run loop's questions, if it can
        self.reset()

    def _quiet_check(self):
        """C's answer to the run loop's questions before a slice when the APIC
        has nothing to say (devices/lapic.c tdxsim_apic_quiet_limit), and the
        budget's end it reads (Execution): one vCPU, the compiled hooks, an
        APIC whose state C reads and the host's own timer rules (a run with
        a wall-clock limit does not use it).  None: Python asks."""
        library, lapic, host = native.library(), self.lapic, type(self.host)
        if self.smp is not None or library is None or not self.vcpu.counter.native \
                or not lapic.state.clock or host.next_deadline is not Host.next_deadline \
                or host.fire_due is not Host.fire_due:
            return None
        function = library.tdxsim_apic_quiet_limit
        function.restype = ctypes.c_uint64  # (no argtypes: each costs a call per call)
        budget_end = ctypes.c_uint64()
        args = (lapic.pointer, ctypes.byref(budget_end))
        return (lambda: 0 if lapic.arrivals_waiting else function(*args)), budget_end

    # --- construction ---
    @classmethod
    def from_source(cls, *sources: str | Path, entry: str = "_start",
                    library: bool = True, **kw) -> "TD":
        """Assemble and link GNU as sources (and .o files) into a TD."""
        if not sources:
            raise TdxsimError("TD.from_source needs at least one source file")
        return cls(toolchain.build(list(sources), entry, library), **kw)

    @classmethod
    def from_elf(cls, path: str | Path, **kw) -> "TD":
        return cls(image_mod.load_elf(path), **kw)

    def _load(self, image: image_mod.Image) -> None:
        for seg in image.segments:
            if seg.vaddr < RESERVED_END or seg.vaddr + seg.memsz > self.memory:
                raise TdxsimError(
                    f"{image.path}: segment at {seg.vaddr:#x}..{seg.vaddr + seg.memsz:#x} "
                    f"lies outside guest RAM {RESERVED_END:#x}..{self.memory:#x} (tdxsim's "
                    f"own pages, the GDT and page tables, use 0..{RESERVED_END:#x})")
            self.vcpu.phys_write(seg.vaddr, seg.data)

    def _image_pages(self, image: image_mod.Image) -> list[tuple[int, bytes]]:
        """The pages the VMM added and measured when it built the TD."""
        pages = sorted({page for seg in image.segments
                        for page in range(seg.vaddr & ~(PAGE - 1), seg.vaddr + seg.memsz, PAGE)})
        return [(page, self.vcpu.phys_read(page, PAGE)) for page in pages]

    def reset(self) -> None:
        """Put the vCPU at the entry point with the stack at the top of RAM,
        paging on through tdxsim's default page tables."""
        self.vcpu.phys_write(PAGE_TABLES, default_page_tables(PAGE_TABLES, self.ram.shared_bit))
        self.vcpu.enable_paging(PAGE_TABLES)
        self.vcpu.regs.set_gprs({i: 0 for i in range(16)} | {abi.RSP: self.stack_top})
        self.vcpu.regs.rip = self.image.entry
        self.vcpu.regs.rflags = 0x2  # IF = 0, as after INIT
        install_gdt(self.vcpu, GDT)
        if self.smp is not None:
            self.smp.reset()

    @property
    def stack_top(self) -> int:
        return self.memory

    @property
    def call_rsp(self) -> int:
        """RSP at the entry of a td.call()ed function: the return-address
        slot, placed so that RSP + 8 is 16-byte aligned."""
        return self.stack_top - 64 - 8

    def symbol(self, name: str) -> int:
        try:
            return self.image.symbols[name]
        except KeyError:
            raise TdxsimError(f"the guest image has no symbol '{name}'") from None

    # --- seams for tools that drive the TD (the checker, the explorer) ---
    def plug_host(self, host=None) -> None:
        """Send TD exits to `host` (anything with `handle(VmExit) -> VmResume`,
        e.g. host.ConstantHost) instead of the TD's own host; None: back to
        it.  Timers, devices and EPT exits stay with the TD's own host."""
        self.module.plug_host(host if host is not None else self.host)

    def observe_tdcalls(self, observer=None) -> None:
        """Show every TDCALL to `observer`.  A vcpu.observer.TdcallObserver
        records them in C, whichever path serves them; any other object gets
        `tdcall_before(regs)` and `tdcall_after(regs)` from Python (False
        from tdcall_after stops the vCPU there), and the compiled path stays
        off so that it sees every call.  None: nobody."""
        native_observer = isinstance(observer, TdcallObserver)
        self.vcpu.attach_observer(observer if native_observer else None)
        self._observer = None if native_observer else observer

    def reset_call_state(self) -> None:
        """Forget what an earlier call left behind for the next one (the
        checker makes thousands of calls on one TD): VE information not yet
        read, and pending, in-service and scheduled interrupts."""
        self.module.ve.take()
        self.lapic.clear()

    # --- state access ---
    def now_ns(self) -> int:
        return self.clock.now()

    @property
    def ns_per_insn(self) -> int:
        return self.clock.ns_per_insn

    @property
    def exits(self) -> list[VmcallRecord]:
        return [e for e in self.events if isinstance(e, VmcallRecord)]

    def gprs(self) -> dict[str, int]:
        return dict(zip(abi.GPR_NAMES, self.vcpu.regs.gprs()))

    def read(self, gpa: int, size: int) -> bytes:
        """Guest-physical memory as tdxsim sees it (private pages included;
        the shared bit is ignored).  The host's view is host.memory."""
        return self.vcpu.phys_read(gpa & ~self.ram.shared_bit, size)

    def write(self, gpa: int, data: bytes) -> None:
        self.vcpu.phys_write(gpa & ~self.ram.shared_bit, data)

    @property
    def console(self) -> str:
        return self.host.serial.text

    # --- execution ---
    def run(self, max_insns: int = DEFAULT_MAX_INSNS, timeout: float = DEFAULT_TIMEOUT,
            keep_exits: bool = False, on_event=None) -> RunResult:
        """Run from the entry point until the guest ends.  The result holds
        the last eventlog.RING events (every one with keep_exits) and counts
        of all; on_event(event) sees every event as it happens."""
        problem = self.image.entry_problem()
        if problem:
            raise TdxsimError(problem)
        self.reset()
        return self._execute(0, max_insns, timeout, keep_exits, on_event)

    def call(self, symbol: str, *args: int, regs: dict[str, int] | None = None,
             max_insns: int = 10_000_000, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Call a guest function (SysV ABI) and return its RAX.  `regs` presets
        other registers by name; timeout=0 drops the wall-clock limit (the
        instruction budget still holds).  Raises GuestStopped if it does not
        return."""
        result = self.call_result(symbol, *args, regs=regs, max_insns=max_insns,
                                  timeout=timeout)
        if result.reason != "return":
            raise GuestStopped(result)
        return result.return_value

    def call_result(self, symbol: str, *args: int, regs: dict[str, int] | None = None,
                    max_insns: int = 10_000_000,
                    timeout: float = DEFAULT_TIMEOUT) -> RunResult:
        if len(args) > len(SYSV_ARGS):
            raise TdxsimError(f"td.call passes at most {len(SYSV_ARGS)} arguments")
        target = self.symbol(symbol) if isinstance(symbol, str) else symbol
        rsp = self.call_rsp
        try:
            self.vcpu.write(rsp, RETURN_TRAP.to_bytes(8, "little"))
        except MemoryFault as exc:
            raise TdxsimError(f"td.call cannot push its return address: {exc}") from None
        values = {abi.GPR_NAMES.index(k): v for k, v in (regs or {}).items()}
        values.update({SYSV_ARGS[i]: a & abi.MASK64 for i, a in enumerate(args)})
        values[abi.RSP] = rsp
        self.vcpu.regs.set_gprs(values)
        return self.call_prepared(target, max_insns, timeout)

    def call_prepared(self, target: int, max_insns: int = 10_000_000,
                      timeout: float = DEFAULT_TIMEOUT) -> RunResult:
        """call_result for a caller that has set every register itself and
        put RETURN_TRAP at [RSP] as the return address (the checker, which
        prepares thousands of runs that way)."""
        self.vcpu.regs.rip = target
        return self._execute(RETURN_TRAP, max_insns, timeout)

    def _execute(self, until: int, max_insns: int, timeout: float,
                 keep_exits: bool = False, on_event=None) -> RunResult:
        checked = (max_insns, type(max_insns), timeout, type(timeout))
        if checked != self._checked:  # (the checker passes the same ones thousands of times)
            limits.budget(max_insns, "the instruction budget")
            limits.timeout(timeout, "the timeout", zero_means_none=True)
            self._checked = checked
        self.events = EventLog(self._exit_buffer, None if keep_exits else RING, on_event)
        self.host.serial.clear()
        # Handler and device tables are read when a run starts
        # (module/dispatcher.py arm_compiled_vmcall decides).
        self.module.arm_compiled_vmcall(observed=self._observer is not None)
        self.compiled_vcpu()
        self._run = Execution(self, until, max_insns, timeout, self._observer)
        return self._run.run()

    def compiled_vcpu(self) -> None:
        """Point the compiled path at the vCPU on the engine (smp.py calls
        this at each switch): its APIC, whose deadlines end slices
        (vcpu/tdcall.c), and the host's per-vCPU state (its MSR store)."""
        if self._apic_in_c is not self.lapic:
            self._apic_in_c = self.lapic
            self._apic_native = bool(self.lapic.state.clock)
            self.vcpu.fast.apic = self.lapic.pointer if self._apic_native else None
        self.host.compiled_vcpu(self.vcpu_index)

    def interrupt(self) -> None:
        """End the current run, and any later one, as 'interrupted' with what
        it did so far.  Callable from another thread (tdxsim.signals)."""
        self.vcpu.request_stop()

    def label(self, address: int) -> str:
        """symbol+offset of a code address for traces, looked up once."""
        if address not in self._labels:
            hit = self.image.symbol_at(address)
            self._labels[address] = "" if hit is None else \
                hit[0] + (f"+{hit[1]:#x}" if hit[1] else "")
        return self._labels[address]

    def peek(self, address: int, size: int) -> bytes:
        return self.vcpu.read(address, size) if self.vcpu.readable(address, size) else b""

    def _record(self, event) -> None:
        self.events.append(event)

    def ept_violation(self, rip: int, violation):
        """A guest access the EPT check refused (Execution.ept_violation):
        the one place to plug in for EPT-violation handling."""
        return self._run.ept_violation(rip, violation)

    def _stop_after_bridged(self) -> bool:
        """Must the vCPU stop after a bridged TDG.VP.VMCALL: translated code
        went stale (a conversion), interrupts arrived, or a timer now falls
        inside the slice.  With the APIC in C, vcpu/tdcall.c checks its
        deadline and deliverable vector itself after every compiled or
        bridged call (ends_slice), so Python repeats that only without it."""
        if self.vcpu.mmu.code_stale or self.lapic.arrivals_waiting:
            return True
        return not self._apic_native and self._run.end_slice_if_due()

    def _bridged(self, action, error: Exception | None) -> int | None:
        """A TDG.VP.VMCALL answered through the module's bridge ended in a
        host action or an error (module/bridge.py): the current run's."""
        return self._run.bridged(action, error)

    def _on_tdcall(self, regs) -> bool:
        """The vCPU's TDCALLs that C did not serve: the current run's."""
        return self._run.on_tdcall(regs)
