"""Runs a hypercall stub once per scenario and records what happened.

One TD is built per harness and reused for every run (a fresh TD costs
~1.5 ms, a run tens of microseconds).  Before each run every register, XMM
and memory cell the stub can read gets a distinctive value: secrets the
host must never see, inputs it may see, and markers the host writes back
(spec 10 B1, B3).  Each value carries its kind and index in both 32-bit
halves, so a 32-bit copy is recognised too.  Every TDCALL is observed on
the way in and out; the host is the checker's marker host unless another
one is plugged in.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
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
from ..module.vmcall import VmcallRecord
from ..native import library
from ..td import PAGE, RETURN_TRAP, TD, RunResult
from ..vcpu.observer import TdcallObserver
from ..vcpu.regs import GPR_IDS, RFLAGS, RIP, XMM_IDS
from .contracts import Contract, Stack, reg_name

SECRET, HOST, INPUT = 0x5EC7, 0xB057, 0x1A9C  # value kinds
XMM_BASE, POISON_BASE, GUARD_BASE, FRAME_BASE = 0x100, 0x200, 0x300, 0x400
POISON = 0x400  # bytes of poisoned, uninitialised stack below the entry RSP
GUARD = 64  # canary bytes on both sides of the args struct
ARGS_BELOW_TOP = 0x10000  # the args struct lives this far below the stack top
CALLER_FRAME = 0x100  # bytes above the return address: stack-passed arguments, the caller's
CALLER_RBP = 0xA0  # frame record, this far above the return address (past 16 arguments)
VECTOR = 0xEC  # the injected interrupt
STRAY_WRITES = 64  # stores outside the stack and args struct kept per run
RFLAGS_AT_ENTRY = 0x2  # IF = 0: the caller runs with interrupts off


def pattern(kind: int, index: int) -> int:
    """Kind and index in both halves: 4 GiB apart from each other, so a
    fault address tells which one was used as a pointer."""
    return (kind << 16 | index) * (1 << 32 | 1)


def low_half_key(value: int) -> int | None:
    """The low 32 bits, when distinctive enough to recognise a truncated copy."""
    low = value & 0xFFFF_FFFF
    return low if low >= 0x10000 else None


@dataclass(frozen=True)
class Scenario:
    """One run: the flags word, an optional module failure, an optional
    interrupt, and values that replace the default patterns."""
    flags: int = 0
    module_status: int = 0  # nonzero: the module fails the TDCALL with this RAX
    inject: int | None = None  # interrupt pending after this many instructions
    inputs: tuple[tuple[int, int], ...] = ()  # (register, input value)
    host: tuple[tuple[int, int], ...] = ()  # (register, value the host writes)

    def to_json(self) -> dict:
        return {"flags": self.flags, "module_status": f"{self.module_status:#x}",
                "inject": self.inject,
                "inputs": {abi.GPR_NAMES[r]: f"{v:#x}" for r, v in self.inputs},
                "host": {abi.GPR_NAMES[r]: f"{v:#x}" for r, v in self.host}}

    @classmethod
    def from_json(cls, data: dict) -> "Scenario":
        if not isinstance(data, dict) or not set(data) <= {"flags", "module_status", "inject",
                                                            "inputs", "host"}:
            raise TdxsimError("a reproducer scenario is an object with the keys flags, "
                              "module_status, inject, inputs and host")
        inject = data.get("inject")
        return cls(flags=_number(data.get("flags", 0), "flags"),
                   module_status=_number(data.get("module_status", 0), "module_status"),
                   inject=None if inject is None else _number(inject, "inject"),
                   inputs=_registers(data.get("inputs", {}), "inputs"),
                   host=_registers(data.get("host", {}), "host"))


def _number(value, what: str) -> int:
    try:
        number = int(value, 0) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= abi.MASK64:
        raise TdxsimError(f"reproducer: {what} must be a 64-bit number, not {value!r}")
    return number


def _registers(table, what: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(table, dict) or not all(k in abi.GPR_NAMES for k in table):
        raise TdxsimError(f"reproducer: {what} must map register names (rax ... r15) to values")
    return tuple(sorted((abi.GPR_NAMES.index(k), _number(v, f"{what}.{k}"))
                        for k, v in table.items()))


@dataclass(frozen=True)
class Layout:
    entry_rsp: int  # the return-address slot
    caller_rbp: int  # the caller's frame: [rbp] = 0 ends the chain
    stack_low: int  # start of the poisoned stack
    stack_top: int
    args: int  # the args struct


@dataclass
class Values:
    """What one run starts from, and what each distinctive value means."""
    entry: list[int]  # GPRs at entry, spec order
    inputs: dict[int, int]  # register -> the input value it must carry
    xmm: bytes  # XMM0..15, 16 bytes each
    registers: bytes  # the register file at entry: GPRs, RFLAGS, XMMs (RegisterBank order)
    struct: bytes  # guard + args struct + guard
    stack: bytes  # stack_low .. stack_top
    host_gprs: dict[int, int]
    host_xmms: dict[int, int]
    answer: VmResume  # the marker host's answer: host_gprs and host_xmms
    secrets: dict[int, str]  # value -> where it came from
    secret_lows: dict[int, str]
    guest_known: set[int]  # values the guest itself holds (never host markers)
    pointers: tuple[tuple[int, int, str], ...]  # ranges that are guest addresses


@dataclass(slots=True)  # not frozen: that makes each of these ~1 us slower to build
class TdcallSeen:
    rip: int
    before: tuple[int, ...]  # GPRs at the TDCALL
    after: tuple[int, ...]  # GPRs right after it
    rflags: int
    ret_slot: int  # the return address slot at the TDCALL
    rbp_chain: bool  # RBP leads through the stub's frames to the caller's
    time_ns: int  # virtual time at the TDCALL, its own instruction counted
    insns: int  # instructions of the routine up to and including the TDCALL


NO_XMMS = (0,) * 16
# native.TdcallSeen up to its stack window: rip, rflags, count, time_ns, before, after
SEEN_HEAD = Struct("<4Q16Q16Q")
SEEN_STACK_AT = native.TdcallSeen.stack.offset
U64 = Struct("<Q")
RAX, VP_VMCALL = abi.RAX, int(abi.Leaf.VP_VMCALL)
VMM_GPR = tuple(f"the VMM's {reg_name(r)}" for r in range(16))
VMM_XMM = tuple(f"the VMM's XMM{j}" for j in range(16))


def over_budget(result: RunResult) -> RunResult:
    """A run the TDCALL budget ended: judged like one that never returns."""
    return RunResult("budget", f"it made more than {TDCALLS_PER_RUN} TDCALLs in one call, "
                     "the checker's TDCALL budget per run, and was stopped there",
                     console=result.console, events=result.events,
                     instructions=result.instructions, time_ns=result.time_ns)


class lazy:
    """Like functools.cached_property, without the lock it takes on every
    first access before Python 3.12."""

    def __init__(self, compute):
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.compute(obj)
        return value


@dataclass
class Observation:
    scenario: Scenario
    values: Values
    layout: Layout
    result: RunResult
    tdcalls: list[TdcallSeen]
    served: list[VmExit]  # the exits Python's path gave the host, in order
    answers: list[VmResume]  # what the host answered to those
    compiled: bool  # the compiled path may have answered other exits (with values.answer)
    after: tuple[int, ...]  # GPRs at the end of the run
    rflags: int
    xmm_after: bytes
    struct_after: bytes
    frame_after: bytes  # entry RSP .. stack top: return address and caller's frame
    last_pc: int  # the last instruction started: the RET when the stub returned
    writes: list[tuple[int, int]]  # (rip, address) of stores after a TDCALL that hit
    # neither the stack nor the args struct
    escape: tuple[int, int] | None = None  # (value, slot) a RET popped to leave the code

    def __post_init__(self):
        # What nearly every judge reads, worked out once: cheaper than a lazy attribute each.
        self.returned: bool = self.result.reason == "return"
        self.records: list[VmcallRecord] = self.result.exits  # the module's record of each exit
        self.vmcalls: list[TdcallSeen] = [t for t in self.tdcalls if t.before[RAX] == VP_VMCALL]
        done = [t for t in self.vmcalls if t.after[RAX] == 0]
        failed = [t for t in self.vmcalls if t.after[RAX] != 0]
        # The last TDG.VP.VMCALL that reached the host and succeeded; the first one failed.
        self.exchange: TdcallSeen | None = done[-1] if done and self.exited else None
        self.failure: TdcallSeen | None = failed[0] if failed else None

    @property
    def exited(self) -> bool:
        """The host saw a TD exit: `bool(exits)` without building them."""
        return bool(self.records if self.compiled else self.served)

    @property
    def exits(self) -> list[VmExit]:
        """What the host saw, per TD exit."""
        return self.exchanges[0]

    @property
    def resumes(self) -> list[VmResume]:
        """What the host answered, per TD exit."""
        return self.exchanges[1]

    @lazy
    def exchanges(self) -> tuple[list[VmExit], list[VmResume]]:
        """Per TD exit, the exit and answer Python served, else the compiled
        path's marker answer to an exit without XMMs.  Built only when read:
        judges need them for XMM exits and in some failure messages."""
        if not self.compiled:
            return self.served, self.answers
        by_python = {e.time_ns: (e, r) for e, r in zip(self.served, self.answers)}
        exits, resumes = [], []
        for record in self.records:
            exit, resume = by_python.get(record.time_ns) or (
                VmExit(record.gpr_select, record.xmm_select, record.exposed, NO_XMMS,
                       record.time_ns), self.values.answer)
            exits.append(exit)
            resumes.append(resume)
        return exits, resumes

    @lazy
    def host_written(self) -> list[tuple[int, str]]:
        """Every value the guest took back from the host: only what the
        module let through counts."""
        taken = []
        for i, record in enumerate(self.records):
            taken += [(v, VMM_GPR[r]) for r, v in record.returned.items()]
            if record.xmm_select:
                xmms = self.resumes[i].xmms
                taken += [(v >> s & abi.MASK64, VMM_XMM[j]) for j, v in xmms.items()
                          if record.xmm_select >> j & 1 for s in (0, 64)]
        return taken

    @lazy
    def host_values(self) -> dict[int, str]:
        """The distinctive host-written values (and their 32-bit halves):
        finding one of them in a register proves where it came from.  None
        is below 0x10000 or a value the guest holds (see `host_value`)."""
        found: dict[int, str] = {}
        known = self.values.guest_known
        for value, what in self.host_written:
            if value > 0xFFFF_FFFF and distinctive(value) and value not in known \
                    and value not in found:
                found[value] = what
                low = value & 0xFFFF_FFFF
                if distinctive(low) and low not in known:
                    found.setdefault(low, what + " (low 32 bits)")
        return found

    def host_value(self, value: int) -> str | None:
        """`host_values.get(value)`, without building them for a value that
        cannot be one: the common case of a scrubbed or restored register."""
        if value < 0x10000 or value in self.values.guest_known:
            return None
        return self.host_values.get(value)

    @property
    def xmm_exchanged(self) -> bool:
        return any(record.xmm_select for record in self.records)


def distinctive(value: int) -> bool:
    """Whether finding a value proves it came from the host: not a small
    number, a small negative one, all-ones or a power of two, which guest
    code makes itself (zeroing, `mov $-1`, masks)."""
    return (0x10000 <= value <= abi.MASK64 - 0x10000 and value & (value - 1) != 0
            and value != 0xFFFF_FFFF)


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

    @staticmethod
    def entry_image(gprs: list[int], rflags: int, xmm: bytes) -> bytes:
        """What `load` writes: GPRs, RFLAGS, (RIP, unused) and the XMMs."""
        return _RegisterBank.GPRS_FLAGS_RIP.pack(*gprs, rflags, 0) + xmm

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
        self._base = self._make_base()
        self._by_flags: dict[int, Values] = {}
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
        low, high = self._text()
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

    # --- the values a run starts from ---
    def values(self, sc: Scenario) -> Values:
        """The base values with this scenario's flags and fuzzed values; only
        these few pieces change between runs."""
        if not (sc.inputs or sc.host):
            cached = self._by_flags.get(sc.flags)
            if cached is None:
                cached = self._by_flags[sc.flags] = self._with(sc)
            return cached
        return self._with(sc)

    def _with(self, sc: Scenario) -> Values:
        c, base = self.contract, self._base
        inputs = {**base.inputs, **{r: v & self._field_mask(r) for r, v in sc.inputs}}
        entry, stack = list(base.entry), base.stack
        placed = [(c.flags, sc.flags)] if c.flags is not None else []
        placed += [(src, inputs[dst]) for dst, src in c.reg_args.items()]
        for loc, value in placed:
            if isinstance(loc, Stack):
                stack = stack if isinstance(stack, bytearray) else bytearray(stack)
                U64.pack_into(stack, self.layout.entry_rsp + loc.offset - self.layout.stack_low,
                              value)
            else:
                entry[loc] = value
        stack = bytes(stack)
        struct = base.struct
        if sc.inputs:
            struct = bytearray(struct)
            for r, value in sc.inputs:
                if r in c.fields:
                    size = c.size(r)
                    offset = GUARD + c.fields[r]
                    struct[offset:offset + size] = (value & self._field_mask(r)).to_bytes(
                        size, "little")
            struct = bytes(struct)
        host_gprs = {**base.host_gprs, **dict(sc.host)} if sc.host else base.host_gprs
        # The constructor, not dataclasses.replace: this runs once per fuzz execution.
        return Values(entry, inputs, base.xmm,
                      _RegisterBank.entry_image(entry, RFLAGS_AT_ENTRY, base.xmm), struct,
                      stack, host_gprs, base.host_xmms,
                      VmResume(gprs=host_gprs, xmms=base.host_xmms) if sc.host else base.answer,
                      base.secrets, base.secret_lows,
                      base.guest_known.union(inputs.values(), (sc.flags,)), base.pointers)

    def _field_mask(self, register: int) -> int:
        """An input loaded from a narrow struct field arrives zero-extended."""
        c = self.contract
        return (1 << 8 * c.size(register)) - 1 if register in c.fields else abi.MASK64

    def _make_base(self) -> Values:
        c, lay = self.contract, self.layout
        inputs = {r: pattern(INPUT, r) & self._field_mask(r)
                  for r in list(c.fields) + list(c.reg_args)}
        entry = {r: pattern(SECRET, r) for r in range(16) if r != abi.RSP}
        secrets = {v: f"the caller's {reg_name(r)}" for r, v in entry.items()}
        carried = {abi.RBP: lay.caller_rbp}  # entry registers that carry no secret
        if c.args is not None:
            carried[c.args] = lay.args
        if c.flags is not None:
            carried[c.flags] = 0
        carried.update({src: inputs[dst] for dst, src in c.reg_args.items()})
        on_stack = {lay.entry_rsp + loc.offset: carried.pop(loc) for loc in list(carried)
                    if isinstance(loc, Stack)}
        for r, value in carried.items():
            secrets.pop(entry[r], None)
            entry[r] = value
        secrets[lay.args] = "the args pointer"
        secrets[RETURN_TRAP] = "the routine's return address"
        xmm = b""
        for j in range(16):
            value = pattern(SECRET, XMM_BASE + j)
            secrets[value] = f"the caller's XMM{j}"
            xmm += value.to_bytes(8, "little") * 2
        stack = self._stack_image(secrets, on_stack)
        struct = self._struct_image(inputs, secrets)
        host_gprs = {r: pattern(HOST, r) for r in range(abi.RDX, 16) if r != abi.RSP}
        host_xmms = {j: pattern(HOST, XMM_BASE + j) * (1 << 64 | 1) for j in range(16)}
        lows = {low_half_key(v): what for v, what in secrets.items() if low_half_key(v)}
        pointers = ((lay.stack_low - 0x1000, lay.stack_top, "a stack address"),
                    (lay.args - GUARD, lay.args + c.struct_size + GUARD,
                     "a pointer into the args struct"),
                    (RETURN_TRAP, RETURN_TRAP + 1, "the routine's return address"),
                    (*self._text(), "an address in the loaded code (defeats KASLR)"))
        known = set(entry.values()) | set(inputs.values()) | {lay.args} | set(on_stack.values())
        entry[abi.RSP] = lay.entry_rsp
        gprs = [entry[r] for r in range(16)]
        return Values(gprs, inputs, xmm, _RegisterBank.entry_image(gprs, RFLAGS_AT_ENTRY, xmm),
                      struct, stack, host_gprs, host_xmms,
                      VmResume(gprs=host_gprs, xmms=host_xmms), secrets, lows, known, pointers)

    def _text(self) -> tuple[int, int]:
        """The loaded image's extent: its addresses are code addresses."""
        segments = [s for s in self.image.segments if s.executable] or self.image.segments
        return (min(s.vaddr for s in segments),
                max(s.vaddr + max(s.memsz, len(s.data)) for s in segments))

    def _stack_image(self, secrets: dict[int, str], on_stack: dict[int, int]) -> bytes:
        lay = self.layout
        out = bytearray()
        for address in range(lay.stack_low, lay.stack_top, 8):
            slot = (address - lay.stack_low) // 8
            if address in on_stack:
                value = on_stack[address]  # a stack-passed argument
            elif lay.entry_rsp < address <= lay.entry_rsp + self.contract.shadow_space:
                value = pattern(SECRET, FRAME_BASE + slot)
                secrets[value] = "the shadow space (uninitialised)"
            elif address < lay.entry_rsp:
                value = pattern(SECRET, POISON_BASE + slot)
                secrets[value] = f"uninitialised stack (entry RSP-{lay.entry_rsp - address:#x})"
            elif address == lay.entry_rsp:
                value = RETURN_TRAP
            elif address in (lay.caller_rbp, lay.caller_rbp + 8):
                value = 0  # the caller's frame record: end of the RBP chain
            else:
                value = pattern(SECRET, FRAME_BASE + slot)
                secrets[value] = "the caller's stack frame"
            out += value.to_bytes(8, "little")
        return bytes(out)

    def _struct_image(self, inputs: dict[int, int], secrets: dict[int, str]) -> bytes:
        c = self.contract
        if not c.fields:
            return b""
        out = bytearray()
        for i, offset in enumerate(range(-GUARD, c.struct_size + GUARD, 8)):
            value = pattern(SECRET, GUARD_BASE + i)
            secrets[value] = ("memory next to the args struct" if not
                              0 <= offset < c.struct_size else "padding in the args struct")
            out += value.to_bytes(8, "little")
        fields = [(o, c.size(r), inputs[r]) for r, o in c.fields.items()]
        for offset, size, value in fields + [(f.offset, f.size, f.value) for f in c.fixed]:
            out[GUARD + offset:GUARD + offset + size] = value.to_bytes(size, "little")
        return bytes(out)
