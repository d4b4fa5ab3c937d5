"""A trust domain: guest memory and one vCPU wired to the TDX module and host.

`TD.run()` executes from the entry point until the guest ends; `TD.call()`
runs one guest function with the SysV calling convention.  Both end in a
`RunResult`; nothing that happens inside the guest escapes as a traceback.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import abi, image as image_mod, limits, toolchain
from .clock import Clock
from .layout import GDT, PAGE, PAGE_TABLES, RESERVED_END, RETURN_TRAP
from .errors import TdxsimError
from .eventlog import EventLog, ExitBuffer
from .events import (ExceptionInjected, Halted, InterruptDelivered, InterruptPosted,
                     SoftwareInterrupt, VeRaised, VmcallRecord, Woke)
from .exits import EptExit, FatalError, GuestExit, Halt
from .host import Host
from .memory import EptViolation, HostMemory, TdMemory
from .module import TdConfig, TdxModule
from .module.apicv import VirtualApic
from .module.ve import VE_VECTOR, VeInfo
from .trace import render
from .vcpu.cpu import Stop, VCpu
from .vcpu.mmu import MemoryFault
from .vcpu.crash import CrashReport, backtrace, disassemble
from .vcpu import ve_insns
from .devices.lapic import NMI
from .vcpu.interrupts import DeliveryError, deliver, install_gdt, is_iret
from .vcpu.observer import TdcallObserver
from .vcpu.paging import default_page_tables
from .vcpu.regs import RFLAGS_RF

MiB = 1 << 20
SYSV_ARGS = (abi.RDI, abi.RSI, abi.RDX, abi.RCX, abi.R8, abi.R9)
DEFAULT_MAX_INSNS = 200_000_000
DEFAULT_TIMEOUT = 30.0


@dataclass
class RunResult:
    """How a run ended.  reason: 'exit' (debug-exit port), 'return' (td.call
    returned), 'fatal' (ReportFatalError), 'crash', 'halted' (no wake event can
    come), 'budget' (instruction budget), 'timeout' (wall clock), 'error'
    (a host handler or an unmodelled feature), 'interrupted' (TD.interrupt(),
    e.g. on a signal)."""
    reason: str
    message: str = ""
    exit_code: int | None = None
    console: str = ""
    events: EventLog | list = field(default_factory=list)  # exits, interrupts, halts, timers
    instructions: int = 0
    time_ns: int = 0
    crash: CrashReport | None = None
    fatal: FatalError | None = None
    return_value: int | None = None
    _exits: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.reason in ("exit", "return") and not self.exit_code

    @property
    def exits(self) -> list[VmcallRecord]:
        """The TD exits among the events (kept while the events stay the same)."""
        if self._exits is None or self._exits[0] != len(self.events):
            self._exits = (len(self.events),
                           [e for e in self.events if isinstance(e, VmcallRecord)])
        return self._exits[1]

    def describe(self) -> str:
        if self.crash is not None:
            return self.crash.render()
        return self.message


class GuestStopped(TdxsimError):
    """td.call() did not return: the guest crashed, exited or ran away."""

    def __init__(self, result: RunResult):
        super().__init__(result.describe())
        self.result = result


class TD:
    ram_base = PAGE  # page 0 stays out of RAM so that NULL faults (firmware TDs: 0)

    def __init__(self, image: image_mod.Image, memory: int = 64 * MiB,
                 config: TdConfig | None = None, host: str | Host = "kvm",
                 ns_per_insn: int = 1, native: bool | None = None, exit_ns: int = 0):
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
        self.host = host if isinstance(host, Host) else Host(host, self.config.gpaw,
                                                             clock=self.clock)
        self.host.serve(HostMemory(self.ram), self.config.gpaw, self._record)
        self.lapic = self.host.lapic
        adversary = self.host.adversary  # the hostile host holds the TD's lock at times
        self.module = TdxModule(self.config, self.host, self.clock, self._record,
                                memory=self.ram, cpuid=self.host.cpuid,
                                apic=VirtualApic(self.lapic),
                                lock_contender=adversary and adversary.holds_td_lock)
        self._exit_buffer = ExitBuffer(self.module.fast)
        self.events = EventLog(self._exit_buffer)
        self.vcpu = VCpu(self.clock, self.ram, native, self.module.fast, self._on_tdcall)
        self.vcpu.phys_write(RETURN_TRAP, abi.UD2_BYTES)
        self._load(image)
        self.vcpu.install_traps([(seg.vaddr, seg.data) for seg in image.segments
                                 if seg.executable])
        self.module.finalize(self._image_pages(image))
        self.crash_details = True  # disassembly and backtrace in crash reports (~0.1 ms)
        self._action = None
        self._error: Exception | None = None
        self._observer = None  # a Python TDCALL observer (observe_tdcalls)
        self.reset()

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
    def run(self, max_insns: int = DEFAULT_MAX_INSNS,
            timeout: float = DEFAULT_TIMEOUT) -> RunResult:
        """Run from the entry point until the guest ends."""
        problem = self.image.entry_problem()
        if problem:
            raise TdxsimError(problem)
        self.reset()
        return self._execute(0, max_insns, timeout)

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

    def _execute(self, until: int, max_insns: int, timeout: float) -> RunResult:
        """Run in slices that end at the next timer deadline.  While an
        interrupt waits for IF = 1, the vCPU also stops where IF can change,
        so that delivery happens at the first boundary where the
        architecture allows it."""
        limits.budget(max_insns, "the instruction budget")
        limits.timeout(timeout, "the timeout", zero_means_none=True)
        self.events = EventLog(self._exit_buffer)
        self.host.serial.clear()
        self._budget_end = self.vcpu.instructions + max_insns
        # timeout 0: no wall-clock limit, only the instruction budget (Unicorn
        # starts a watchdog thread per slice for a timeout, ~0.2 ms each).
        deadline = time.monotonic() + timeout if timeout else math.inf
        self._arm_fast_path()
        while True:
            if self.vcpu.stop_requested:
                return self._after(Stop("interrupted", self.vcpu.regs.rip), max_insns, timeout)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._after(Stop("timeout", self.vcpu.regs.rip), max_insns, timeout)
            self._fire_timers()
            if self._nmi_deliverable():
                result = self._deliver(NMI)
                if result is not None:
                    return result
                continue
            if self.lapic.deliverable() is not None and self._interruptible():
                result = self._deliver(self.lapic.deliverable())
                if result is not None:
                    return result
                continue
            waiting = self.lapic.deliverable() is not None  # for IF = 1, or the shadow to end
            # NMI blocking lasts until the next IRET: watch for it (SDM 6.7.1)
            stop = self.vcpu.run(self._slice_limit(waiting), until, remaining if timeout else 0.0,
                                 watch_if=waiting or self.vcpu.nmi_blocked)
            if self.vcpu.nmi_blocked and is_iret(self.vcpu, self.vcpu.watched):
                self.vcpu.nmi_blocked = False
            result = self._after(stop, max_insns, timeout)
            if result is not None:
                return result

    def interrupt(self) -> None:
        """End the current run, and any later one, as 'interrupted' with what
        it did so far.  Callable from another thread (tdxsim.signals)."""
        self.vcpu.request_stop()

    def _arm_fast_path(self) -> None:
        """Handler and device tables are read when a run starts
        (module/dispatcher.py arm_compiled_vmcall decides)."""
        self.module.arm_compiled_vmcall(observed=self._observer is not None)

    def _interruptible(self) -> bool:
        """IF = 1, no STI shadow, and no #VE whose info the guest has not yet
        read: the module blocks interrupts and NMIs from #VE delivery until
        TDG.VP.VEINFO.GET (spec 13.3)."""
        return (self.vcpu.interrupts_enabled and not self.vcpu.in_sti_shadow
                and self.module.ve.info is None)

    def _nmi_deliverable(self) -> bool:
        """An NMI is pending and not blocked: by an earlier NMI until IRET,
        or from #VE delivery until VEINFO.GET (spec 13.3).  IF and the STI
        shadow do not block it."""
        return (self.lapic.nmi_pending and not self.vcpu.nmi_blocked
                and self.module.ve.info is None)

    def _slice_limit(self, waiting: bool) -> int:
        """The next timer deadline; one instruction in the STI shadow while an
        interrupt waits.  (While it waits for IF = 1, the vCPU stops at the
        instructions that can set IF: STI, POPF and IRET.)"""
        count = self.vcpu.instructions
        ve_blocked = self.module.ve.info is not None and (
            self.vcpu.interrupts_enabled and waiting or self.lapic.nmi_pending)
        if waiting and self.vcpu.in_sti_shadow or ve_blocked:  # until VEINFO.GET
            return min(self._budget_end, count + 1)
        due = self.host.next_deadline()
        if due is None:
            return self._budget_end
        return min(self._budget_end, count + self.clock.insns_until(due))

    def _fire_timers(self) -> None:
        due = self.host.next_deadline()
        if due is None or due > self.now_ns():
            return
        for source, vector in self.host.fire_due(self.now_ns()):
            self.events.append(InterruptPosted(self.now_ns(), vector, self.vcpu.regs.rip, source))

    def _deliver(self, vector: int) -> RunResult | None:
        """An external interrupt, or an NMI through IDT vector 2."""
        rip = self.vcpu.regs.rip
        try:
            handler = deliver(self.vcpu, vector)
        except DeliveryError as exc:
            what = "an NMI" if vector == NMI else "interrupt"
            return self._crash(Stop("fault", rip, f"cannot deliver {what}: {exc}"))
        if vector == NMI:
            self.lapic.nmi_pending, self.vcpu.nmi_blocked = False, True
        else:
            self.lapic.acknowledge(vector)
        self.events.append(InterruptDelivered(self.now_ns(), vector, rip, handler,
                                              self._handler_name(handler)))
        return None

    def _handler_name(self, handler: int) -> str:
        """The handler's symbol for traces, looked up once per address."""
        names = self.__dict__.setdefault("_handler_names", {})
        if handler not in names:
            hit = self.image.symbol_at(handler)
            names[handler] = "" if hit is None else hit[0] + (f"+{hit[1]:#x}" if hit[1] else "")
        return names[handler]

    def _after(self, stop: Stop, max_insns: int, timeout: float) -> RunResult | None:
        """Turn a vCPU stop into the end of the run, or None to keep going."""
        if self._error is not None:
            error, self._error = self._error, None
            if not isinstance(error, TdxsimError):
                raise error
            return self._end("error", str(error))
        if self._action is not None:
            action, self._action = self._action, None
            return self._host_action(action)
        if stop.kind == "until":
            return self._end("return", return_value=self.vcpu.regs.get(abi.RAX))
        if stop.kind == "limit":
            if self.vcpu.instructions < self._budget_end:
                return None  # a timer deadline, the STI shadow or a POPF/IRET ended it
            return self._end("budget", f"the guest ran away: instruction budget of "
                             f"{max_insns} exhausted at {self.image.describe(stop.rip)}")
        if stop.kind == "interrupted":
            return self._end("interrupted", f"interrupted at "
                             f"{self.image.describe(self.vcpu.regs.rip)} after "
                             f"{self.vcpu.instructions - self._budget_end + max_insns} "
                             "instructions")
        if stop.kind == "timeout":
            return self._end("timeout", f"the guest ran away: wall-clock timeout of "
                             f"{timeout:g} s at {self.image.describe(self.vcpu.regs.rip)}")
        if stop.kind == "hlt":
            return self._raise_ve(stop.rip, VeInfo(abi.EXIT_REASON_HLT, instr_len=1))
        if stop.kind == "memory" and isinstance(stop.info, EptViolation):
            return self.ept_violation(stop.rip, stop.info)
        if stop.kind == "ve-insn":
            return self._intercept(stop.rip)
        if stop.kind == "int":  # `int n`: trap-like, through IDT[n]; the APIC takes no part
            self.events.append(SoftwareInterrupt(self.now_ns(), stop.address, stop.rip))
            return self._fault(stop.rip, stop.address, None, f"int {stop.address:#x}", trap=True)
        return self._crash(stop)

    def _intercept(self, rip: int) -> RunResult | None:
        """An instruction the TDX module intercepts, not yet executed at rip
        (spec 8.1): emulated natively, or #VE / #GP(0), fault-like."""
        code = self.vcpu.fetched(rip, 15) or self.peek(rip, 15) or self.peek(rip, PAGE - rip % PAGE)
        insn = ve_insns.decode(code, self.vcpu.code64())
        if insn is None:  # the guest has rewritten its code since the scan
            self.vcpu.drop_trap(rip)
            return None
        if insn.kind in ve_insns.VCPU_EMULATED:
            self.vcpu.emulate(insn)
            return None
        outcome = self.module.intercept(insn, self.vcpu.regs, self.now_ns())
        if isinstance(outcome, VeInfo):
            return self._raise_ve(rip, outcome)
        if outcome is not None:
            self.events.append(ExceptionInjected(self.now_ns(), rip, outcome, 0))
            return self._fault(rip, outcome, 0, f"#GP(0) from {insn.kind}")
        return None

    def ept_violation(self, rip: int, violation: EptViolation) -> RunResult | None:
        """A guest access the EPT check refused (memory.py): the wrong alias,
        a pending page, or no memory.  #VE where TDX raises one (spec 8.1,
        module/ept_violation.py); otherwise an exit to the host, which either
        changes the mapping, so that the instruction runs again, or cannot
        serve it: a crash report naming the GPA.  A GPA beyond GPAW is the
        guest's own page-table bug (a reserved-bit #PF on hardware): crash."""
        if violation.gpa >> self.config.gpaw:
            return self._crash(Stop("memory", rip, violation.describe(), violation.gpa, violation))
        outcome = self.module.ept_violation(violation)
        if isinstance(outcome, VeInfo):
            return self._raise_ve(rip, outcome, violation.describe())
        return self._ept_exit(rip, outcome, violation.describe())

    def _ept_exit(self, rip: int, exit: EptExit, what: str) -> RunResult | None:
        why = self.host.ept_violation(exit)
        if why is None:
            return None  # fault-like: RIP still on the instruction, which runs again
        return self._crash(Stop("memory", rip, f"{what}; {why}", exit.gpa))

    def _raise_ve(self, rip: int, info: VeInfo, cause: str = "") -> RunResult | None:
        """#VE, or #DF/#GP when VE info is still valid (spec 8.3)."""
        vector, error_code = self.module.ve.raise_ve(info)
        self.events.append(VeRaised(self.now_ns(), rip, info.exit_reason, vector, info))
        kind = "#VE" if vector == VE_VECTOR else f"vector {vector} (nested #VE)"
        return self._fault(rip, vector, error_code, f"{kind} for the {cause}" if cause else kind)

    def _fault(self, rip: int, vector: int, error_code: int | None, kind: str,
               trap: bool = False) -> RunResult | None:
        """Fault-like delivery: the saved RIP is the instruction itself, and
        the module sets RF in the saved RFLAGS (spec 8.3).  trap: a software
        interrupt, delivered with RIP past it as the CPU does."""
        self.vcpu.regs.rip = rip
        if not trap:
            self.vcpu.regs.rflags |= RFLAGS_RF
        try:
            deliver(self.vcpu, vector, error_code)
        except DeliveryError as exc:
            return self._crash(Stop("fault", rip, f"cannot deliver {kind}: {exc}"))
        return None

    def _host_action(self, action) -> RunResult | None:
        if isinstance(action, GuestExit):
            return self._end("exit", f"guest exited with code {action.code}",
                             exit_code=action.code)
        if isinstance(action, FatalError):
            where = f" (GPA {action.gpa:#x})" if action.gpa is not None else ""
            text = f"{action.message!r}" + (f" ({action.note})" if action.note else "")
            return self._end("fatal", f"guest reported a fatal error, code "
                             f"{action.error_code:#x}{where}: {text}", fatal=action)
        if isinstance(action, Halt):
            return self._halt(action)
        if isinstance(action, EptExit):  # TDG.MEM.PAGE.ACCEPT found nothing mapped
            rip = self.vcpu.regs.rip
            return self._ept_exit(rip, action, f"TDG.MEM.PAGE.ACCEPT at {self.image.describe(rip)} "
                                  f"of GPA {action.gpa:#x} found no page mapped")
        raise TdxsimError(f"unknown host action {action!r}")

    def _halt(self, halt: Halt) -> RunResult | None:
        """Block the vCPU as KVM does for Instruction.HLT (spec 7.4): with
        R12 = 0 a pending interrupt wakes it at once, otherwise virtual time
        jumps to the next timer deadline; with R12 != 0 only an NMI (or
        INIT, not modelled) wakes it."""
        rip = self.vcpu.regs.rip - abi.TDCALL_LEN  # the HLT TDCALL: trap-like, RIP is past it
        start = self.now_ns()
        self.events.append(Halted(start, rip, halt.irq_blocked))
        while not halt.irq_blocked or self.lapic.nmi_coming:
            vector = NMI if self.lapic.nmi_pending else \
                None if halt.irq_blocked else self.lapic.deliverable()
            if vector is not None:
                self.events.append(Woke(self.now_ns(), vector, self.now_ns() - start))
                return None
            due = self.host.next_deadline()
            if due is None:
                break
            self.clock.advance_to(due)
            self._fire_timers()
        why = ("interrupts are reported blocked (R12 != 0), so only NMI/INIT could wake it"
               if halt.irq_blocked else "no interrupt is pending and no timer is armed")
        pending = f"; pending vectors: {sorted(self.lapic.irr)}" if self.lapic.irr else ""
        recent = [render(e) for e in self.events[-6:-1]]
        last = ("\nlast events:\n  " + "\n  ".join(recent)) if recent else ""
        chain = backtrace(self.peek, self.image, self.vcpu.regs.get(abi.RBP))
        called = f", called from {' <- '.join(chain)}" if chain else ""
        return self._end("halted", f"the vCPU halted forever at {self.image.describe(rip)}"
                         f"{called}: {why} (a lost wakeup or a deadlock){pending}{last}")

    def peek(self, address: int, size: int) -> bytes:
        return self.vcpu.read(address, size) if self.vcpu.readable(address, size) else b""

    def _crash(self, stop: Stop) -> RunResult:
        gprs = self.vcpu.regs.gprs()
        read = self.peek
        detail = self.crash_details
        report = CrashReport(stop.detail, stop.rip, self.image.describe(stop.rip), gprs,
                             self.vcpu.regs.rflags,
                             disassemble(read, self.image, stop.rip,
                                         code64=self.vcpu.code64()) if detail else [],
                             backtrace(read, self.image, gprs[abi.RBP]) if detail else [],
                             address=stop.address)
        return self._end("crash", report.render(), crash=report)

    def _end(self, reason: str, message: str = "", **kw) -> RunResult:
        return RunResult(reason, message, console=self.console,
                         events=self.events.detach(), instructions=self.vcpu.instructions,
                         time_ns=self.now_ns(), **kw)

    def _record(self, event) -> None:
        self.events.append(event)

    def _on_tdcall(self, regs) -> bool:
        """Called by the vCPU for each TDCALL; False stops the CPU."""
        observer = self._observer
        if observer is not None:
            observer.tdcall_before(regs)
        try:
            self._action = self.module.tdcall(regs, self.now_ns())
        except Exception as exc:  # reported by _after, never lost inside Unicorn
            self._error = exc
        if observer is not None and observer.tdcall_after(regs) is False:
            return False  # the observer ends the run here
        return self._action is None and self._error is None
