"""One run of the TD's vCPU: slices up to the next timer deadline,
interrupt and NMI delivery at the boundaries the architecture allows, and
what each stop of the vCPU means (an intercepted instruction, an EPT
violation, a TDCALL's host action, a halt, a crash, the budget).

`TD.run()` and `TD.call()` build one `Execution` and return its
`RunResult`; nothing that happens inside the guest escapes as a traceback.
"""
from __future__ import annotations

import math
import time

from . import abi
from .errors import TdxsimError
from .layout import PAGE
from .events import (ExceptionInjected, Halted, InterruptDelivered, InterruptPosted,
                     SoftwareInterrupt, VeRaised, Woke)
from .exits import EptExit, FatalError, GuestExit, Halt, Yield
from .memory import EptViolation
from .module.ve import VE_VECTOR, VeInfo
from .result import RunResult
from .trace import render
from .vcpu import ve_insns
from .vcpu.cpu import Stop
from .vcpu.crash import CrashReport, backtrace, disassemble
from .devices.lapic import NMI
from .vcpu.interrupts import DeliveryError, deliver, enter_handler, is_iret
from .vcpu.regs import RFLAGS_RF

# With a wall-clock limit, a slice of one vCPU runs at most this many
# instructions: the run loop checks the clock between slices (Unicorn's own
# timeout costs a watchdog thread per emu_start, ~0.2 ms, which was a
# quarter of a firmware run stopped by thousands of #VEs a second).  Such a
# slice ends at a block boundary, never with a pause hook in a hot loop.
WALL_CHECK_INSNS = 2_000_000


class Execution:
    def __init__(self, td, until: int, max_insns: int, timeout: float, observer=None):
        """until: the stop address of a td.call (0: none); observer: a
        Python TDCALL observer (TD.observe_tdcalls)."""
        self.td = td
        self.vcpu, self.module, self.host = td.vcpu, td.module, td.host
        self.lapic, self.clock, self.image = td.lapic, td.clock, td.image
        self.until, self.max_insns, self.timeout = until, max_insns, timeout
        self.observer = observer
        self._budget_end = self.vcpu.instructions + max_insns
        self._slice_end = self._budget_end  # the running slice's instruction limit
        self._wall_check_end = -1  # a slice limit that only bounds the time between clock checks
        self._action = None  # the host action of the last TDCALL
        self._error: Exception | None = None  # raised by the last TDCALL's handling
        quiet = td.quiet  # (TD._quiet_check)
        self._quiet = None
        if quiet is not None and not timeout:
            quiet[1].value = self._budget_end
            self._quiet = quiet[0]

    def run(self) -> RunResult:
        """Run in slices that end at the next timer deadline.  While an
        interrupt waits for IF = 1, the vCPU also stops where IF can change,
        so that delivery happens at the first boundary where the
        architecture allows it."""
        timeout = self.timeout
        deadline = time.monotonic() + timeout if timeout else math.inf
        smp = self.td.smp  # several vCPUs: smp.py says when to switch, and switches
        if smp is not None:
            smp.start(self)
        vcpu, until, quiet = self.vcpu, self.until, self._quiet
        while True:
            if smp is not None and smp.must_switch():
                result = smp.switch()
                if result is not None:
                    return result
            if vcpu.stop_requested:
                return self._after(Stop("interrupted", vcpu.regs.rip))
            if timeout and deadline - time.monotonic() <= 0:  # the clock only with a timeout
                return self._after(Stop("timeout", vcpu.regs.rip))
            # Nothing pending or due (C says at once where it can): a slice to the deadline.
            limit, waiting = quiet() if quiet is not None else 0, False
            if not limit:
                due = self._fire_timers()
                lapic = self.lapic  # (the running vCPU's: smp.py switches it)
                if lapic.state.nmi_pending and self._nmi_deliverable():
                    result = self._deliver(NMI)
                    if result is not None:
                        return result
                    continue
                vector = lapic.deliverable()
                if vector is not None and self._interruptible():
                    result = self._deliver(vector)
                    if result is not None:
                        return result
                    continue
                waiting = vector is not None  # for IF = 1, or the shadow to end
                limit = self._slice_limit(waiting, due)
            self._slice_end = limit
            exact = smp.exact_end(limit) if smp is not None else limit != self._wall_check_end
            # NMI blocking lasts until the next IRET: watch for it (SDM 6.7.1)
            stop = vcpu.run(limit, until, watch_if=waiting or vcpu.nmi_blocked, exact=exact)
            if vcpu.nmi_blocked and is_iret(vcpu, vcpu.watched):
                vcpu.nmi_blocked = False
            result = self._after(stop)
            if result is not None:
                return result

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

    def _slice_limit(self, waiting: bool, due: int | None) -> int:
        """The next timer deadline; one instruction in the STI shadow while an
        interrupt waits.  (While it waits for IF = 1, the vCPU stops at the
        instructions that can set IF: STI, POPF and IRET.)  With a wall-clock
        limit, at most WALL_CHECK_INSNS ahead (`_wall_check_end`)."""
        vcpu, smp = self.vcpu, self.td.smp
        count = vcpu.counter.state.count
        self._wall_check_end = -1
        if (waiting or self.lapic.state.nmi_pending) and self.module.ve.info is not None:
            if self.lapic.nmi_pending or vcpu.interrupts_enabled:  # until VEINFO.GET
                return min(self._budget_end, count + 1)
        if waiting and vcpu.in_sti_shadow:
            return min(self._budget_end, count + 1)
        end = self._budget_end if smp is None else \
            min(self._budget_end, count + smp.insns_left())
        if due is not None:
            end = min(end, count + self.clock.insns_until(due))
        if smp is None and self.timeout and count + WALL_CHECK_INSNS < end:
            self._wall_check_end = end = count + WALL_CHECK_INSNS
        return end

    def _fire_timers(self) -> int | None:
        """Raise the interrupts whose time has come; the next deadline after them."""
        index = self.td.vcpu_index
        due = self.host.next_deadline(index)
        if due is None or due > self.clock.now():
            return due
        fired = self.host.fire_due(self.clock.now(), index)
        if fired:
            now, rip, append = self.clock.now(), self.vcpu.regs.rip, self.td.events.append
            for source, vector in fired:
                append(InterruptPosted(now, vector, rip, source))
        return self.host.next_deadline(index)

    def _deliver(self, vector: int) -> RunResult | None:
        """An external interrupt, or an NMI through IDT vector 2."""
        try:
            handler, rip = enter_handler(self.vcpu, vector)
        except DeliveryError as exc:
            what = "an NMI" if vector == NMI else "interrupt"
            return self._crash(Stop("fault", self.vcpu.regs.rip, f"cannot deliver {what}: {exc}"))
        if vector == NMI:
            self.lapic.nmi_pending, self.vcpu.nmi_blocked = False, True
        else:
            self.lapic.acknowledge(vector)
        self.td.events.append(InterruptDelivered(self.clock.now(), vector, rip, handler,
                                              self.td.label(handler)))
        return None

    def _after(self, stop: Stop) -> RunResult | None:
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
        if stop.kind == "soft-limit":  # a quantum or a wall-clock check, at a block boundary
            if self.td.smp is not None:
                self.td.smp.quantum_over()
            return None
        if stop.kind == "limit":
            if self.vcpu.instructions < self._budget_end:
                return None  # a timer deadline, the STI shadow, a POPF/IRET, the quantum
            return self._end("budget", f"the guest ran away: instruction budget of "
                             f"{self.max_insns} exhausted at {self.image.describe(stop.rip)}")
        if stop.kind == "interrupted":
            return self._end("interrupted", f"interrupted at "
                             f"{self.image.describe(self.vcpu.regs.rip)} after "
                             f"{self.vcpu.instructions - self._budget_end + self.max_insns} "
                             "instructions")
        if stop.kind == "timeout":
            return self._end("timeout", f"the guest ran away: wall-clock timeout of "
                             f"{self.timeout:g} s at {self.image.describe(self.vcpu.regs.rip)}")
        if stop.kind == "hlt":
            return self._raise_ve(stop.rip, VeInfo(abi.EXIT_REASON_HLT, instr_len=1))
        if stop.kind == "memory" and isinstance(stop.info, EptViolation):
            return self.td.ept_violation(stop.rip, stop.info)
        if stop.kind == "ve-insn":
            return self._intercept(stop.rip)
        if stop.kind == "int":  # `int n`: trap-like, through IDT[n]; the APIC takes no part
            self.td.events.append(SoftwareInterrupt(self.clock.now(), stop.address, stop.rip))
            return self._fault(stop.rip, stop.address, None, f"int {stop.address:#x}", trap=True)
        return self._crash(stop)

    def _intercept(self, rip: int) -> RunResult | None:
        """An instruction the TDX module intercepts, not yet executed at rip
        (spec 8.1): emulated natively, or #VE / #GP(0), fault-like."""
        code = self.vcpu.fetched(rip, 15) or self.td.peek(rip, 15) or self.td.peek(rip, PAGE - rip % PAGE)
        insn = ve_insns.decode(code, self.vcpu.code64)
        if insn is None:  # the guest has rewritten its code since the scan
            self.vcpu.traps.drop(rip)
            return None
        if insn.kind in ve_insns.VCPU_EMULATED:
            self.vcpu.emulate(insn)
            return None
        outcome = self.module.intercept(insn, self.vcpu.regs, self.clock.now())
        if isinstance(outcome, VeInfo):
            return self._raise_ve(rip, outcome)
        if outcome is not None:
            self.td.events.append(ExceptionInjected(self.clock.now(), rip, outcome, 0))
            return self._fault(rip, outcome, 0, f"#GP(0) from {insn.kind}")
        return None

    def ept_violation(self, rip: int, violation: EptViolation) -> RunResult | None:
        """A guest access the EPT check refused (memory.py): the wrong alias,
        a pending page, or no memory.  #VE where TDX raises one (spec 8.1,
        module/ept_violation.py); otherwise an exit to the host, which either
        changes the mapping, so that the instruction runs again, or cannot
        serve it: a crash report naming the GPA.  A GPA beyond GPAW is the
        guest's own page-table bug (a reserved-bit #PF on hardware): crash."""
        if violation.gpa >> self.td.config.gpaw:
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
        self.td.events.append(VeRaised(self.clock.now(), rip, info.exit_reason, vector, info))
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
            if self.td.smp is not None:
                return self.td.smp.halt(action.irq_blocked)
            return self._halt(action)
        if isinstance(action, Yield):  # only a TD with several vCPUs has one to yield to
            self.td.smp.yield_to(action.to)
            return None
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
        start = self.clock.now()
        self.td.events.append(Halted(start, rip, halt.irq_blocked))
        while not halt.irq_blocked or self.lapic.nmi_coming:
            vector = NMI if self.lapic.nmi_pending else \
                None if halt.irq_blocked else self.lapic.deliverable()
            if vector is not None:
                self.td.events.append(Woke(self.clock.now(), vector, self.clock.now() - start))
                return None
            due = self.host.next_deadline()
            if due is None:
                break
            self.clock.advance_to(due)
            self._fire_timers()
        why = ("interrupts are reported blocked (R12 != 0), so only NMI/INIT could wake it"
               if halt.irq_blocked else "no interrupt is pending and no timer is armed")
        pending = f"; pending vectors: {sorted(self.lapic.irr)}" if self.lapic.irr else ""
        recent = [render(e) for e in self.td.events[-6:-1]]
        last = ("\nlast events:\n  " + "\n  ".join(recent)) if recent else ""
        chain = backtrace(self.td.peek, self.image, self.vcpu.regs.get(abi.RBP))
        called = f", called from {' <- '.join(chain)}" if chain else ""
        return self._end("halted", f"the vCPU halted forever at {self.image.describe(rip)}"
                         f"{called}: {why} (a lost wakeup or a deadlock){pending}{last}")

    def _crash(self, stop: Stop) -> RunResult:
        if self.td.smp is not None:  # which vCPU crashed
            stop = stop._replace(detail=f"vCPU {self.td.vcpu_index}: {stop.detail}")
        gprs = self.vcpu.regs.gprs()
        read = self.td.peek
        detail = self.td.crash_details
        report = CrashReport(stop.detail, stop.rip, self.image.describe(stop.rip), gprs,
                             self.vcpu.regs.rflags,
                             disassemble(read, self.image, stop.rip,
                                         code64=self.vcpu.code64()) if detail else [],
                             backtrace(read, self.image, gprs[abi.RBP]) if detail else [],
                             address=stop.address)
        return self._end("crash", report.render(), crash=report)

    def _end(self, reason: str, message: str = "", **kw) -> RunResult:
        return RunResult(reason, message, console=self.td.console,
                         events=self.td.events.detach(), instructions=self.vcpu.instructions,
                         time_ns=self.clock.now(), **kw)

    def bridged(self, action, error: Exception | None) -> int | None:
        """A TDG.VP.VMCALL the module's bridge answered (module/bridge.py)
        ended in a host action or an error, as on_tdcall's would.  A halt
        that ends at once (one vCPU, R12 = 0, a deliverable vector, no NMI)
        answers that vector: C records it as host/halt.c's (the exit,
        Halted, Woke) and the vCPU may go on.  Else None: the run loop
        takes the action or error at the TDCALL."""
        if type(action) is Halt and error is None and self.td.smp is None \
                and not action.irq_blocked and not self.lapic.nmi_pending:
            vector = self.lapic.deliverable()
            if vector is not None:
                return vector
        self._action, self._error = action, error
        return None

    def on_tdcall(self, regs) -> bool:
        """Called by the vCPU for each TDCALL; False stops the CPU."""
        observer = self.observer
        if observer is not None:
            observer.tdcall_before(regs)
        try:
            self._action = self.module.tdcall(regs, self.clock.now())
        except Exception as exc:  # reported by _after, never lost inside Unicorn
            self._error = exc
        if observer is not None and observer.tdcall_after(regs) is False:
            return False  # the observer ends the run here
        if self._action is not None or self._error is not None:
            return False
        self.end_slice_if_due()
        return True

    def end_slice_if_due(self) -> bool:
        """A TDCALL armed a timer (or queued work) due before the running
        slice ends, or left a vector deliverable that the slice does not
        stop for (an EOI through TDG.VP.VMCALL ended a higher one's service;
        IF = 1, or the slice does not watch for IF = 1): end the slice after
        it, so that the interrupt comes at its instruction boundary (the
        next slice stops there, or it is delivered at once).  vcpu/tdcall.c
        decides the same for the calls it serves."""
        due = self.host.next_deadline(self.td.vcpu_index)
        timer = due is not None and \
            self.vcpu.instructions + self.clock.insns_until(due) < self._slice_end
        if not timer and (self.lapic.deliverable() is None or not self.vcpu.interrupts_enabled
                          and self.vcpu.traps.if_watch.armed):
            return False
        self.vcpu.end_slice()
        return True
