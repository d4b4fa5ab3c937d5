"""Runs a hypercall stub once per scenario and records what happened.

One TD is built per harness and reused for every run (a fresh TD costs
~1.5 ms, a run tens of microseconds).  Each run loads the values of
values.py, calls the routine, observes every TDCALL on the way in and out
and returns an Observation (observation.py); the host is the checker's
marker host unless another one is plugged in.
"""
from __future__ import annotations

import ctypes
from struct import Struct

from .. import abi, native
from ..limits import TDCALLS_PER_RUN
from ..errors import TdxsimError
from ..exits import VmExit, VmResume
from ..image import Image
from ..layout import PAGE, RETURN_TRAP, STUB_HANDLER
from ..module import TdConfig
from ..native import library
from ..result import RunResult
from ..td import TD
from ..vcpu.batch import MemoryRange, RegisterBank
from ..vcpu.interrupts import install_idt_stub
from ..vcpu.observer import TdcallObserver
from .contracts import Contract
from .observation import Observation, TdcallSeen
from .scenario import Scenario
from .values import (ARGS_BELOW_TOP, CALLER_FRAME, CALLER_RBP, GUARD, POISON, U64, Layout,
                     ValueFactory, Values, code_extent)

VECTOR = 0xEC  # the injected interrupt
STRAY_WRITES = 64  # stores outside the stack and args struct kept per run
# native.TdcallSeen up to its stack window: rip, rflags, count, time_ns, before, after
SEEN_HEAD = Struct("<4Q16Q16Q")
SEEN_STACK_AT = native.TdcallSeen.stack.offset
SEEN_SIZE = ctypes.sizeof(native.TdcallSeen)


def over_budget(result: RunResult) -> RunResult:
    """A run the TDCALL budget ended: judged like one that never returns."""
    return RunResult("budget", f"it made more than {TDCALLS_PER_RUN} TDCALLs in one call, "
                     "the checker's TDCALL budget per run, and was stopped there",
                     console=result.console, events=result.events,
                     instructions=result.instructions, time_ns=result.time_ns)


class MarkerHost:
    """The checker's default host: every exit gets the run's marker answer
    (`Values.answer`).  It needs nothing but registers, so the compiled path
    gives it too (host/fast.c answers every exit from one register image, as
    for host.ConstantHost), copied in from the image the values packed."""

    def __init__(self):
        self.fast = native.Host(answer_all=1)
        self._bytes = memoryview((ctypes.c_ubyte * 128).from_buffer(self.fast.answer)).cast("B")
        self._words = self._bytes.cast("Q")
        self.values: Values | None = None
        self._image, self._mask, self._patched = b"", 0, False

    def answer_with(self, values: Values) -> None:
        self.values = values
        host = values.host
        if host or self._patched or values.host_image is not self._image:
            self._bytes[:] = self._image = values.host_image
            words, mask = self._words, values.host_mask
            for r, value in host:
                words[r] = value
                mask |= 1 << r
            self._patched = bool(host)
            if mask != self._mask:
                self.fast.answer_mask = self._mask = mask

    def handle(self, exit: VmExit) -> VmResume:
        return self.values.answer

    def compiled_paths(self) -> native.Host:
        return self.fast


class _Served:
    """The host plugged into the TD: records each exit Python's path served
    and the answer; with `compiled`, the host's C fast paths may answer too."""

    def __init__(self, host, compiled: bool):
        self.host = host
        self.exits: list[VmExit] = []
        self.resumes: list[VmResume] = []
        if compiled:
            self.compiled_paths = host.compiled_paths

    def handle(self, exit: VmExit) -> VmResume:
        self.exits.append(exit)
        resume = self.host.handle(exit)
        self.resumes.append(resume)
        return resume


class Harness:
    """Runs `symbol` of `image` under `contract`, one scenario at a time.
    `host`: anything with `handle(VmExit) -> VmResume` (e.g. a tdxsim Host
    personality); by default the marker host, which writes a distinct
    marker into every GPR and XMM it may write."""

    def __init__(self, image: Image, symbol: str, contract: Contract, host=None,
                 native: bool | None = None):
        """native: observe TDCALLs in C (vcpu/observer.py), where the
        compiled path can also give the marker host's answer; False: the
        Python observer, the reference (None: C when it is built)."""
        self.image, self.contract = image, contract
        if contract.struct_size > ARGS_BELOW_TOP // 2:
            raise TdxsimError(f"contract {contract.name}: the args struct is too large")
        self._marker = host is None
        self._host = MarkerHost() if self._marker else host
        self.native = native if native is not None else bool(library())
        self._setup()
        self.entry = self.td.symbol(symbol)
        self.factory = ValueFactory(image, contract, self.layout)
        self.runs = 0

    def _setup(self) -> None:
        """A fresh TD wired to the checker: again after a run that stored
        outside the stack and args struct (through a host pointer, say), so
        that no run sees what an earlier one did."""
        self.td = td = TD(self.image, config=TdConfig(no_rbp_mod=self.contract.no_rbp_mod),
                          native=self.native or None)
        td.crash_details = False  # the report shows its own listing
        self._served = _Served(self._host, compiled=self._marker)
        td.plug_host(self._served)
        rsp, top = td.call_rsp - CALLER_FRAME, td.stack_top  # RSP + 8 stays 16-byte aligned
        self.layout = lay = Layout(entry_rsp=rsp, caller_rbp=rsp + CALLER_RBP,
                                   stack_low=rsp - POISON, stack_top=top,
                                   args=top - ARGS_BELOW_TOP)
        # The stack window up to the return address, seen at each TDCALL: the RBP chain lies below.
        self._stack_len = lay.entry_rsp + 8 - lay.stack_low
        self._seen_head = Struct(f"<36Q{SEEN_STACK_AT - SEEN_HEAD.size + self._stack_len - 8}xQ")
        if self.native:
            self._observer = TdcallObserver(lay.stack_low, self._stack_len, TDCALLS_PER_RUN)
            td.observe_tdcalls(self._observer)
        else:
            td.observe_tdcalls(self)  # tdcall_before, tdcall_after
        install_idt_stub(td.vcpu, VECTOR)
        vcpu = td.vcpu
        self._registers = RegisterBank(vcpu)
        self._stack = MemoryRange(vcpu, lay.stack_low, lay.stack_top - lay.stack_low)
        self._window = MemoryRange(vcpu, lay.stack_low, self._stack_len)
        self._frame = MemoryRange(vcpu, lay.entry_rsp, lay.stack_top - lay.entry_rsp)
        self._struct = MemoryRange(vcpu, lay.args - GUARD, self.contract.struct_size + 2 * GUARD)
        # Stores outside the stack (generously: 32 KiB) and the args struct
        # are rare, so watching them costs nothing in the common case.
        top, args = td.stack_top, td.stack_top - ARGS_BELOW_TOP
        for low, high in ((PAGE, args - GUARD),
                          (args + self.contract.struct_size + GUARD, top - 0x8000)):
            vcpu.watch_writes(low, high - 1, self._on_write)
        self._stray: list[tuple[int, int, bool]] = []  # (rip, address, after a TDCALL)
        # Code run outside the image (and the return and interrupt traps) is
        # watched: reaching it by a RET is a stack fault.  Ranges cost nothing
        # until they are entered.
        low, high = code_extent(self.image)
        for begin, end in ((0, RETURN_TRAP - 1), (RETURN_TRAP + 2, STUB_HANDLER - 1),
                           (STUB_HANDLER + 2, low - 1), (high, abi.MASK64)):
            vcpu.watch_code(begin, end, self._on_escape)
        self._escape: tuple[int, int] | None = None

    # --- one run ---
    def run(self, scenario: Scenario) -> Observation:
        if self._stray:
            self._setup()
        td = self.td
        self._values = v = self.factory.values(scenario)
        self._stack.write(v.stack)
        if v.struct:
            self._struct.write(v.struct)
        # Every register but RIP (call_prepared sets it); the stack image holds the
        # return address at the entry RSP.
        self._registers.load(v.registers)
        td.reset_call_state()
        td.module.vmcall_failure = scenario.module_status
        self._start = td.vcpu.instructions
        if scenario.inject is not None:
            td.lapic.schedule(td.now_ns() + scenario.inject * td.ns_per_insn, VECTOR)
        self._seen = []
        self._escaped = False
        self._escape = None
        served = self._served
        served.exits, served.resumes = [], []
        if self._marker:
            self._host.answer_with(v)
        result = td.call_prepared(self.entry, max_insns=self.contract.max_insns, timeout=0)
        self.runs += 1
        if self.native:
            n, over, raw = self._observer.take_raw()
            self._seen = [self._seen_natively(raw, 0)] if n == 1 else \
                [self._seen_natively(raw, at) for at in range(0, n * SEEN_SIZE, SEEN_SIZE)]
        else:
            over = len(self._seen) > TDCALLS_PER_RUN
            del self._seen[TDCALLS_PER_RUN:]
        if over:
            result = over_budget(result)
        after, rflags, xmm_after = self._registers.gprs_flags_xmms()
        stray = self._stray
        return Observation(
            scenario, v, self.layout, result, self._seen, served.exits, served.resumes,
            self.native, after, rflags, xmm_after,
            self._struct.read() if v.struct else b"",  # struct_after
            self._frame.read(),  # frame_after
            # last_pc; over the budget, the vCPU stopped right after that TDCALL
            td.vcpu.regs.rip - abi.TDCALL_LEN if over else td.vcpu.counter.last_pc,
            [(rip, address) for rip, address, late in stray if late] if stray else [],  # writes
            self._escape)

    def _on_escape(self, address: int) -> None:
        """The first instruction run outside the code: when the 8 bytes
        just below RSP hold its address, a RET popped it."""
        if self._escaped:
            return
        self._escaped = True
        rsp = self.td.vcpu.regs.get(abi.RSP)
        below = self.td.peek(rsp - 8, 8)
        if below and int.from_bytes(below, "little") == address:
            self._escape = (address, rsp - 8)

    def _on_write(self, address: int) -> None:
        if len(self._stray) >= STRAY_WRITES:  # bounded: the first ones tell the story
            return
        after_tdcall = self._observer.count > 0 if self.native else bool(self._seen)
        self._stray.append((self.td.vcpu.regs.rip, address, after_tdcall))

    # --- the Python TDCALL observer (the reference for vcpu/observer.py) ---
    def tdcall_before(self, regs) -> None:
        before, rflags, rip = self._registers.gprs_flags_rip()
        self._before = (rip, before, rflags, self._window.read(), self.td.now_ns(),
                        self.td.vcpu.instructions - self._start)

    def tdcall_after(self, regs) -> bool:
        rip, before, rflags, stack, time_ns, insns = self._before
        self._seen.append(self._seen_at(rip, before, tuple(regs.gprs()), rflags, stack, time_ns,
                                        insns))
        return len(self._seen) <= TDCALLS_PER_RUN  # over the budget: the run ends

    def _seen_natively(self, raw: memoryview, at: int) -> TdcallSeen:
        # One unpack from the records' memory instead of a ctypes access per
        # field: rip, rflags, count, time_ns, before, after, the return slot.
        head = self._seen_head.unpack_from(raw, at)
        before = head[4:20]
        rbp = before[abi.RBP]
        chain = rbp == self.layout.caller_rbp or self._rbp_chain(
            raw, rbp, before[abi.RSP], at + SEEN_STACK_AT)
        return TdcallSeen(head[0], before, head[20:36], head[1], head[36], chain, head[3],
                          head[2] - self._start)

    def _seen_at(self, rip, before, after, rflags, stack, time_ns, insns) -> TdcallSeen:
        return TdcallSeen(rip, before, after, rflags, int.from_bytes(stack[-8:], "little"),
                          self._rbp_chain(stack, before[abi.RBP], before[abi.RSP]),
                          time_ns, insns)

    def _rbp_chain(self, stack, rbp: int, rsp: int, at: int = 0) -> bool:
        """RBP is the caller's frame pointer, or a frame of the stub whose
        saved-RBP links lead back to it (spec 10 B2).  `stack` holds the
        stack window from offset `at`."""
        lay = self.layout
        low, base = max(rsp, lay.stack_low), at - lay.stack_low
        for _ in range(16):
            if rbp == lay.caller_rbp:
                return True
            if not (low <= rbp < lay.entry_rsp and rbp % 8 == 0):
                return False
            saved = U64.unpack_from(stack, base + rbp)[0]
            if saved <= rbp:
                return False
            rbp = saved
        return False

    def values(self, scenario: Scenario) -> Values:
        """The values a run of this scenario starts from."""
        return self.factory.values(scenario)
