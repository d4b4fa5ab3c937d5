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

from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_WRITE, UcError
from unicorn.unicorn_py3 import unicorn as _binding

from .. import abi, native
from ..limits import TDCALLS_PER_RUN
from ..errors import TdxsimError
from ..exits import VmExit, VmResume
from ..explore import EXPLORER_HANDLER, install_idt_stub
from ..image import Image
from ..module import TdConfig
from ..native import library
from ..td import PAGE, RETURN_TRAP, TD, RunResult
from ..vcpu.observer import TdcallObserver
from ..vcpu.regs import GPR_IDS, RFLAGS, RIP, XMM_IDS
from .contracts import Contract
from .observation import Observation, TdcallSeen
from .scenario import Scenario
from .values import (ARGS_BELOW_TOP, CALLER_FRAME, CALLER_RBP, GUARD, POISON, Layout,
                     ValueFactory, Values, code_extent)

VECTOR = 0xEC  # the injected interrupt
STRAY_WRITES = 64  # stores outside the stack and args struct kept per run
# native.TdcallSeen up to its stack window: rip, rflags, count, time_ns, before, after
SEEN_HEAD = Struct("<4Q16Q16Q")
SEEN_STACK_AT = native.TdcallSeen.stack.offset


def over_budget(result: RunResult) -> RunResult:
    """A run the TDCALL budget ended: judged like one that never returns."""
    return RunResult("budget", f"it made more than {TDCALLS_PER_RUN} TDCALLs in one call, "
                     "the checker's TDCALL budget per run, and was stopped there",
                     console=result.console, events=result.events,
                     instructions=result.instructions, time_ns=result.time_ns)


def _bare(name: str):
    """Unicorn's C function `name`, called with ready-made ctypes values:
    the binding's argument conversion costs ~0.3 us a call, and a run makes
    six of these calls."""
    function = _binding.uclib[name]  # a new function object: the binding's keeps its argtypes
    function.restype = ctypes.c_int
    return function


UC_REG_READ_BATCH, UC_REG_WRITE_BATCH = _bare("uc_reg_read_batch"), _bare("uc_reg_write_batch")
UC_MEM_READ, UC_MEM_WRITE = _bare("uc_mem_read"), _bare("uc_mem_write")


class _RegisterBank:
    """The registers a run sets and observes, moved in one Unicorn batch
    call each way: the Python binding costs ~2 us per register.  Buffer
    layout: GPRs in spec order, RFLAGS, RIP, XMM0..15."""
    ORDER = GPR_IDS + (RFLAGS, RIP) + XMM_IDS
    GPRS_FLAGS_RIP = Struct("<18Q")
    GPRS_AND_FLAGS = Struct("<17Q")
    XMM_AT = 18 * 8

    def __init__(self, uc):
        self._uc = uc._uch
        self._buf = ctypes.create_string_buffer(self.XMM_AT + 256)
        self._bytes = memoryview(self._buf).cast("B")  # filled without a foreign call
        base = ctypes.addressof(self._buf)
        offsets = [8 * i for i in range(18)] + [self.XMM_AT + 16 * j for j in range(16)]
        self._ids = (ctypes.c_int * len(self.ORDER))(*self.ORDER)
        self._ptrs = (ctypes.c_void_p * len(self.ORDER))(*(base + at for at in offsets))
        # The same slots without RIP, which td.call_prepared sets: GPRs, RFLAGS, XMMs.
        self._entry_ids = (ctypes.c_int * 33)(*(self.ORDER[:17] + self.ORDER[18:]))
        self._entry_ptrs = (ctypes.c_void_p * 33)(*(self._ptrs[:17] + self._ptrs[18:]))
        self._all, self._entry = ctypes.c_int(18), ctypes.c_int(33)  # register counts

    def load(self, image: bytes) -> None:
        self._bytes[:len(image)] = image
        UC_REG_WRITE_BATCH(self._uc, self._entry_ids, self._entry_ptrs, self._entry)

    def gprs_flags_rip(self) -> tuple[tuple[int, ...], int, int]:
        UC_REG_READ_BATCH(self._uc, self._ids, self._ptrs, self._all)
        values = self.GPRS_FLAGS_RIP.unpack_from(self._buf)
        return values[:16], values[16], values[17]

    def gprs_flags_xmms(self) -> tuple[tuple[int, ...], int, bytes]:
        UC_REG_READ_BATCH(self._uc, self._entry_ids, self._entry_ptrs, self._entry)
        values = self.GPRS_AND_FLAGS.unpack_from(self._buf)
        return values[:16], values[16], self._buf.raw[self.XMM_AT:]


class _Region:
    """A fixed range of the checker's identity-mapped guest RAM (the stack,
    the args struct), read and written straight through Unicorn: td.read
    allocates two buffers per call."""

    def __init__(self, uc, address: int, size: int):
        self._uc = uc._uch
        self._address, self._size = ctypes.c_uint64(address), ctypes.c_size_t(size)
        self._buf = ctypes.create_string_buffer(size)

    def read(self) -> bytes:
        status = UC_MEM_READ(self._uc, self._address, self._buf, self._size)
        if status:
            raise UcError(status)
        return self._buf.raw

    def write(self, data: bytes) -> None:
        if len(data) != self._size.value:
            raise ValueError(f"{len(data)} bytes for a region of {self._size.value}")
        status = UC_MEM_WRITE(self._uc, self._address, data, self._size)
        if status:
            raise UcError(status)


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
        self._answer = self._marker_answer if self._marker else host.handle
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
        td.module.exit_to_host = self._exit
        rsp, top = td.call_rsp - CALLER_FRAME, td.stack_top  # RSP + 8 stays 16-byte aligned
        self.layout = lay = Layout(entry_rsp=rsp, caller_rbp=rsp + CALLER_RBP,
                                   stack_low=rsp - POISON, stack_top=top,
                                   args=top - ARGS_BELOW_TOP)
        # The stack window up to the return address, seen at each TDCALL: the RBP chain lies below.
        self._stack_len = lay.entry_rsp + 8 - lay.stack_low
        if self.native:
            self._observer = TdcallObserver(td.vcpu, lay.stack_low, self._stack_len,
                                            TDCALLS_PER_RUN)
        else:
            self._td_tdcall = td.vcpu.on_tdcall
            td.vcpu.on_tdcall = self._on_tdcall
        install_idt_stub(td, VECTOR)
        self._registers = _RegisterBank(td.vcpu.uc)
        uc = td.vcpu.uc
        self._stack = _Region(uc, lay.stack_low, lay.stack_top - lay.stack_low)
        self._window = _Region(uc, lay.stack_low, self._stack_len)
        self._frame = _Region(uc, lay.entry_rsp, lay.stack_top - lay.entry_rsp)
        self._struct = _Region(uc, lay.args - GUARD, self.contract.struct_size + 2 * GUARD)
        # Stores outside the stack (generously: 32 KiB) and the args struct
        # are rare, so watching them costs nothing in the common case.
        top, args = td.stack_top, td.stack_top - ARGS_BELOW_TOP
        for low, high in ((PAGE, args - GUARD),
                          (args + self.contract.struct_size + GUARD, top - 0x8000)):
            td.vcpu.uc.hook_add(UC_HOOK_MEM_WRITE, self._on_write, None, low, high - 1)
        self._stray: list[tuple[int, int, bool]] = []  # (rip, address, after a TDCALL)
        # Code run outside the image (and the return and interrupt traps) is
        # watched: reaching it by a RET is a stack fault.  Ranges cost nothing
        # until they are entered.
        low, high = code_extent(self.image)
        for begin, end in ((0, RETURN_TRAP - 1), (RETURN_TRAP + 2, EXPLORER_HANDLER - 1),
                           (EXPLORER_HANDLER + 2, low - 1), (high, abi.MASK64)):
            td.vcpu.uc.hook_add(UC_HOOK_CODE, self._on_escape, None, begin, end)
        self._escape: tuple[int, int] | None = None

    # --- one run ---
    def run(self, scenario: Scenario) -> Observation:
        if self._stray:
            self._setup()
        td, lay = self.td, self.layout
        self._values = v = self.values(scenario)
        self._stack.write(v.stack)
        if v.struct:
            self._struct.write(v.struct)
        # Every register but RIP (call_prepared sets it); the stack image holds the
        # return address at the entry RSP.
        self._registers.load(v.registers)
        td.module.ve.info = None
        td.module.vmcall_failure = scenario.module_status
        for pending in (td.lapic.irr, td.lapic.isr, td.lapic.scheduled):
            pending.clear()
        self._start = td.vcpu.instructions
        if scenario.inject is not None:
            td.lapic.schedule(td.now_ns() + scenario.inject * td.ns_per_insn, VECTOR)
        self._seen, self._exits, self._resumes = [], [], []
        self._escaped = False
        self._escape = None
        td.answer_all = v.answer if self._marker else None
        result = td.call_prepared(self.entry, max_insns=self.contract.max_insns, timeout=0)
        self.runs += 1
        if self.native:
            records, over = self._observer.take()
            self._seen = [self._seen_natively(r) for r in records]
        else:
            over = len(self._seen) > TDCALLS_PER_RUN
            del self._seen[TDCALLS_PER_RUN:]
        if over:
            result = over_budget(result)
        after, rflags, xmm_after = self._registers.gprs_flags_xmms()
        return Observation(
            scenario, v, lay, result, self._seen, self._exits, self._resumes, self.native,
            after=after, rflags=rflags, xmm_after=xmm_after,
            struct_after=self._struct.read() if v.struct else b"",
            frame_after=self._frame.read(),
            # Over the budget: the vCPU stopped right after that TDCALL.
            last_pc=td.vcpu.regs.rip - abi.TDCALL_LEN if over else td.vcpu.counter.last_pc,
            writes=[(rip, address) for rip, address, late in self._stray if late],
            escape=self._escape)

    def _on_escape(self, uc, address, size, _user) -> None:
        """The first instruction run outside the code: when the 8 bytes
        just below RSP hold its address, a RET popped it."""
        if self._escaped:
            return
        self._escaped = True
        rsp = self.td.vcpu.regs.gprs()[abi.RSP]
        try:
            popped = int.from_bytes(uc.mem_read(rsp - 8, 8), "little")
        except UcError:
            return
        if popped == address:
            self._escape = (address, rsp - 8)

    def _on_write(self, uc, access, address, size, value, _user) -> None:
        if len(self._stray) >= STRAY_WRITES:  # bounded: the first ones tell the story
            return
        after_tdcall = self._observer.count > 0 if self.native else bool(self._seen)
        self._stray.append((self.td.vcpu.regs.rip, address, after_tdcall))

    def _exit(self, exit: VmExit) -> VmResume:
        self._exits.append(exit)
        resume = self._answer(exit)
        self._resumes.append(resume)
        return resume

    def _marker_answer(self, exit: VmExit) -> VmResume:
        return self._values.answer

    def _on_tdcall(self, regs) -> bool:
        """The Python observer (the reference for vcpu/observer.py)."""
        before, rflags, rip = self._registers.gprs_flags_rip()
        stack = self._window.read()
        time_ns, insns = self.td.now_ns(), self.td.vcpu.instructions - self._start
        go_on = self._td_tdcall(regs)
        self._seen.append(self._seen_at(rip, before, tuple(regs.gprs()), rflags, stack, time_ns,
                                        insns))
        return go_on and len(self._seen) <= TDCALLS_PER_RUN  # over the budget: the run ends

    def _seen_natively(self, r) -> TdcallSeen:
        # One copy and one unpack instead of a ctypes access per field.
        raw = bytes(r)
        head = SEEN_HEAD.unpack_from(raw)
        rip, rflags, count, time_ns = head[:4]
        stack = raw[SEEN_STACK_AT:SEEN_STACK_AT + self._stack_len]
        return self._seen_at(rip, head[4:20], head[20:], rflags, stack, time_ns,
                             count - self._start)

    def _seen_at(self, rip, before, after, rflags, stack, time_ns, insns) -> TdcallSeen:
        return TdcallSeen(rip, before, after, rflags, int.from_bytes(stack[-8:], "little"),
                          self._rbp_chain(stack, before[abi.RBP], before[abi.RSP]),
                          time_ns, insns)

    def _rbp_chain(self, stack: bytes, rbp: int, rsp: int) -> bool:
        """RBP is the caller's frame pointer, or a frame of the stub whose
        saved-RBP links lead back to it (spec 10 B2)."""
        lay = self.layout
        for _ in range(16):
            if rbp == lay.caller_rbp:
                return True
            if not (max(rsp, lay.stack_low) <= rbp < lay.entry_rsp and rbp % 8 == 0):
                return False
            at = rbp - lay.stack_low
            saved = int.from_bytes(stack[at:at + 8], "little")
            if saved <= rbp:
                return False
            rbp = saved
        return False

    def values(self, scenario: Scenario) -> Values:
        """The values a run of this scenario starts from."""
        return self.factory.values(scenario)
