"""One TD vCPU on Unicorn: 64-bit mode, CPL0, TDCALL trapped.

The vCPU knows nothing of the TDX module or host: TDCALL is handed to the
`on_tdcall` callback with the register file; the callback returns False when
the run must stop (the TD loop then decides what happens next).  Everything
that ends a slice is reported as a `Stop`.
"""
from __future__ import annotations

import ctypes
from typing import Callable

from unicorn import (UC_ARCH_X86, UC_HOOK_CODE, UC_HOOK_INSN, UC_HOOK_INSN_INVALID,
                     UC_HOOK_INTR, UC_HOOK_MEM_UNMAPPED, UC_HOOK_MEM_WRITE, UC_MEM_FETCH_UNMAPPED,
                     UC_MEM_READ_UNMAPPED, UC_MODE_64, Uc, UcError)
from unicorn import x86_const as X

from .. import abi, native
from ..native import (SLICE_BOUNDARY, SLICE_END, SLICE_ERROR_SHIFT, SLICE_IF_WATCH, SLICE_STI,
                      SLICE_TDCALL, SLICE_TRAP)
from ..clock import Clock
from ..errors import TdxsimError
from . import modes
from .code_traps import CodeTraps
from .counter import InstructionCounter
from .crash import decode
from .mmu import Mmu
from . import ve_insns
from .regs import RFLAGS_IF, RegisterFile, unicorn_entry_points
from .interrupts import NativeDelivery
from .slices import SliceRunner, Stop

# The intercepted instructions Unicorn can hook (spec 12): a safety net
# behind the exact traps, which stop the vCPU before each of them.
_VE_INSNS = {X.UC_X86_INS_IN: "in", X.UC_X86_INS_OUT: "out", X.UC_X86_INS_CPUID: "cpuid"}


class VCpu:
    """clock: the TD's virtual clock, which ticks with this vCPU's retired
    instructions and which RDTSC reads.  use_native: the compiled hooks
    (None: if built; False: Python only, the reference they are tested
    against; True: required)."""

    def __init__(self, clock: Clock, memory, use_native: bool | None = None,
                 module: native.Module | None = None,
                 on_tdcall: Callable[[RegisterFile], bool] = lambda regs: True):
        """memory: the TD's guest-physical memory (memory.TdMemory), which
        this vCPU maps and whose EPT check every access passes; module: the
        TDX module's compiled state that tdcall.c serves TDCALLs with;
        on_tdcall(regs): any other TDCALL, False stops the vCPU."""
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self.regs = RegisterFile(self.uc)
        self.counter = InstructionCounter(self.uc, self._block_insns, use_native)
        self.clock = clock
        clock.count(self.counter.state)
        self.on_tdcall = on_tdcall
        self._stop: Stop | None = None
        # end_slice() was called in this slice; the last emu_start stopped to install traps
        self._slice_ended = self._new_traps = False
        self._unmapped: tuple[str, int] | None = None
        self._shadow_until = -1  # instruction count at which an STI shadow is open
        self._undo: list[int] | None = None  # GPRs to restore after a hooked IN/OUT/CPUID
        self.nmi_blocked = False  # from NMI delivery until the next IRET (SDM 6.7.1)
        self.watched: int | None = None  # the POPF/IRET the last slice ended after
        self.uc.ctl_exits_enabled(True)  # with no exit addresses: see CodeTraps.set_until
        self.uc.ctl_set_exits([])
        self._fault = None  # the page fault or EPT violation behind a trap-page access
        self.fast = native.VCpu(uc=unicorn_entry_points())
        if module is not None:
            self.fast.module = ctypes.pointer(module)
        self.mmu = mmu = Mmu(self.uc, self.regs, self.fast, memory.check)
        memory.attach(mmu)
        # Memory access, guest-physical (backing) and linear: the MMU's.
        self.map_ptr, self.phys_read, self.phys_write = mmu.map_ptr, mmu.phys_read, mmu.phys_write
        self.read, self.write, self.readable = mmu.read, mmu.write, mmu.readable
        self.read_if, self.write_if = mmu.read_if, mmu.write_if
        self.translate, self.fetched = mmu.translate, mmu.fetched
        self.enable_paging, self.flush_translations = mmu.enable_paging, mmu.flush_translations
        self._stop_requested = False  # request_stop() was called: every slice ends at once
        self._observed = None  # the TDCALL observer's native state (attach_observer)
        self.traps = CodeTraps(self.uc, self.counter.native, mmu.phys_read, mmu,
                               self.counter.forget_page)
        self.fast.if_watch = ctypes.pointer(self.traps.if_watch)  # (tdcall.c: HLT)
        # Traps are exact: each block's are placed before it first runs
        # (_block_insns); a fetched code page that changed has its blocks
        # decoded again, so code the guest writes at run time traps too.
        mmu.on_code_fetch = self.traps.scan_page
        slicer = SliceRunner(self.uc, self.counter, self.traps, self.fast)
        self._slice, self._ended = slicer.run, slicer.state  # (end_rip: where it stopped)
        if self.counter.native:  # STIs nothing waits for are completed in the trap (traps.c)
            self.traps.complete_sti(self.fast, self.counter.state)
        # Interrupt delivery in C where it can do all of it (interrupts.py)
        self.deliver_natively = NativeDelivery(self) if self.counter.native else \
            lambda vector, error_code=None: None
        if self.counter.native:  # TDCALL in C (tdcall.c), anything else in Python
            self.fast.fallback = self._fallback = native.FALLBACK(
                lambda _uc, _user: self._invalid_insn(self.uc, None))
            native.add_hook(self.uc, UC_HOOK_INSN_INVALID, "tdxsim_tdcall", self.fast)
        else:
            self.uc.hook_add(UC_HOOK_INSN_INVALID, self._invalid_insn)
        self.uc.hook_add(UC_HOOK_INTR, self._interrupt)
        self.uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._unmapped_access)
        for insn in _VE_INSNS:
            self.uc.hook_add(UC_HOOK_INSN, self._ve_insn, insn, 1, 0, insn)

    # --- for tools that watch the guest (the checker) ---
    def attach_observer(self, observer) -> None:
        """Record every TDCALL into `observer` (a vcpu.observer.TdcallObserver),
        in C; None detaches it."""
        if observer is not None and not self.counter.native:
            raise TdxsimError("the TDCALL observer needs the compiled hooks (native=True)")
        self._observer = observer  # kept alive while C points to it
        self._observed = observer.state if observer is not None else None
        self.fast.observer = ctypes.pointer(observer.state) if observer is not None else None

    def watch_writes(self, low: int, high: int, on_write: Callable[[int], None]) -> None:
        """Call on_write(address) for every guest store to an address in
        low..high (inclusive)."""
        self.uc.hook_add(UC_HOOK_MEM_WRITE, lambda uc, access, address, size, value, user:
                         on_write(address), None, low, high)

    def watch_code(self, begin: int, end: int, on_run: Callable[[int], None]) -> None:
        """Call on_run(address) before every instruction at begin..end
        (inclusive)."""
        self.uc.hook_add(UC_HOOK_CODE, lambda uc, address, size, user: on_run(address),
                         None, begin, end)

    # --- trapped instructions ---
    def emulate(self, insn: ve_insns.Insn) -> None:
        """Execute STI or RDTSC at RIP in place of Unicorn.  The instruction
        retires first, so RDTSC counts itself, as it did under Unicorn."""
        self.counter.retire()
        if insn.kind == "sti":
            shadow = not self.regs.rflags & RFLAGS_IF  # STI that sets IF (SDM, spec 7.1)
            self.regs.rflags |= RFLAGS_IF
        else:
            tsc = self.clock.now()
            self.regs.set_gprs({abi.RAX: tsc & 0xFFFF_FFFF, abi.RDX: tsc >> 32 & 0xFFFF_FFFF})
            shadow = False
        self.regs.rip = self.regs.rip + insn.length
        self._shadow_until = self.counter.count if shadow else -1

    def set_sti_shadow(self, open_: bool) -> None:
        """Open (or close) an STI shadow over the next instruction: a vCPU
        switched back onto the engine (context.py) keeps its own."""
        self._shadow_until = self.counter.count if open_ else -1

    @property
    def in_sti_shadow(self) -> bool:
        """The last instruction was an STI that set IF: interrupts stay
        inhibited until the next instruction completes (SDM, spec 7.1)."""
        return self._shadow_until == self.counter.state.count

    @property
    def interrupts_enabled(self) -> bool:
        return bool(self.regs.rflags & RFLAGS_IF)

    # --- execution ---
    def request_stop(self) -> None:
        """End the running slice, and every later one, as 'interrupted'.
        Safe from another thread (a signal watcher): Unicorn's own timeout
        stops it from a thread the same way."""
        self._stop_requested = True
        self.uc.emu_stop()

    def end_slice(self) -> None:
        """End the running slice after the current instruction (a TDCALL
        armed a timer due before the slice's end): a 'limit' stop."""
        self._slice_ended = True
        self.uc.emu_stop()

    @property
    def stop_requested(self) -> bool:
        """request_stop() was called, or the TDCALL observer is full (its
        budget per run, observer.py): the run ends."""
        observed = self._observed  # the observer's state, as C sees it
        return self._stop_requested or bool(observed is not None and observed.overflow)

    @property
    def instructions(self) -> int:
        return self.counter.state.count

    def run(self, limit: int, until: int = 0, watch_if: bool = False,
            exact: bool = True) -> Stop:
        """Run from RIP until `limit` instructions have completed in total.

        Blocks run at full speed.  When the next block would pass the limit,
        it runs up to a trap at the instruction where the count reaches the
        limit, so the slice ends exactly there (counter.py).  watch_if: also
        pause before each POPF or IRET and end the slice right after it, so
        that an interrupt waiting for IF = 1 is delivered at the first
        boundary where it can be.  exact=False: stopping in front of the
        block that would pass the limit will do ('soft-limit', a vCPU's
        quantum), so no pause hook lands in a hot loop, whose instructions
        Unicorn would then run ~100x slower.  No wall-clock limit here (a
        watchdog thread per emu_start): the run loop checks the clock."""
        if self.mmu.code_stale:  # deferred: never flush translated code from inside a hook
            self.uc.ctl_flush_tb()
            self.counter.forget_blocks()
            self.mmu.code_stale = False
        traps, counter = self.traps, self.counter
        if until != traps.until:
            traps.set_until(until)
            counter.state.until = until  # the counter stops in front of it too
        counter.state.limit = limit
        self.watched = None
        rip = self.regs.rip
        refused, stop = counter.would_refuse(rip, limit), None
        if refused is None:  # (else the hook would stop in front of it: no emu_start for that)
            if_watch = traps.if_watch
            if_watch.armed = watch_if
            try:
                stop = self._emulate(until, rip=rip)
                while stop is None and self._new_traps and not if_watch.hit:  # its block again,
                    stop = self._emulate(until, rip=self._ended.end_rip)  # now with its traps
            finally:
                if_watch.armed = 0
            if stop is None and if_watch.hit:  # in front of a POPF or IRET: run just it
                limit = counter.count + 1
                counter.set_limit(limit)
                self.watched = if_watch.rip
            if stop is not None:
                return stop
            rip = self._ended.end_rip  # (a slice that stops at a boundary leaves RIP there)
        while stop is None and counter.state.count < limit and not self.stop_requested:
            if refused is None:
                refused = counter.refused_block(rip)
            if refused and not exact:  # a block boundary will do: no hook in a hot loop
                return Stop("soft-limit", rip)
            stop = self._run_to_boundary(refused, limit, until, rip) if refused \
                else self._emulate(until, rip=rip)
            refused, rip = None, self._ended.end_rip
        return stop or self._natural_stop(until, rip)

    def _run_to_boundary(self, insns: tuple[int, ...], limit: int, until: int,
                         rip: int) -> Stop | None:
        """Enter the block at rip the counter refused, pausing where the count
        reaches `limit` (Unicorn's own step, count=1, flushes all code)."""
        k = limit - self.counter.count
        if not 0 < k < len(insns):
            return self._emulate(until, step=True, rip=rip)
        self.traps.arm_boundary(insns[k])
        self.counter.set_limit(limit + len(insns))  # let the block in; the pause ends it
        try:
            return self._emulate(until, rip=rip)
        finally:
            self.traps.boundary.armed = 0
            self.counter.set_limit(limit)

    def _emulate(self, until: int, step: bool = False, rip: int | None = None) -> Stop | None:
        """One emu_start: a fast slice, or one instruction.  None when it ended
        at an instruction boundary with nothing to report but the count (the
        block hook stopped in front of a block, a pause, a step).  rip: RIP."""
        self._stop = self._unmapped = self._fault = None
        self._slice_ended = self._new_traps = False
        if self.mmu.traps:
            self.mmu.release_trap_pages()
        rip = self.regs.rip if rip is None else rip
        if step:
            # no block decode traps a stepped instruction
            self.traps.block_traps([(rip, self.fetched(rip, 15))], self.code64())
            self.traps.install_pending()
            if rip in self.traps.addresses or rip == until:  # Unicorn would not stop there
                return Stop("until", rip) if rip == until else Stop("ve-insn", rip)
            # code translated without Unicorn's count hook would run on past one insn
            self.uc.ctl_remove_cache(rip, rip + 1)
        status = self._slice(rip, int(step))
        counter, traps = self.counter, self.traps
        pause = None
        if status:
            if status & SLICE_STI:  # traps.c completed an STI in place: what emulate() notes
                sti = traps.sti
                self._shadow_until = sti.count if sti.shadow else -1
                counter.completed(sti.rip)
            if status >> SLICE_ERROR_SHIFT and self._stop is None:
                self._stop = self._fault_stop(UcError(status >> SLICE_ERROR_SHIFT))
            if status & SLICE_TDCALL:  # tdcall.c stopped at a TDCALL, as _invalid_insn does
                self._stop = Stop("tdcall", self._ended.end_rip)
            if status & SLICE_END:  # tdcall.c ended the slice, as end_slice() does
                self._slice_ended = True
            pause = traps.boundary if status & SLICE_BOUNDARY else \
                traps.if_watch if status & SLICE_IF_WATCH else None
            if status & SLICE_TRAP and self._stop is None and pause is None:
                at = traps.trap.rip
                self._stop = Stop("until" if at == until else "ve-insn", at)
        if traps.pending:  # a block waits for its exact traps (code_traps.block_traps)
            traps.install_pending()
            self._new_traps = True
        if self._undo is not None:  # fault-like: as if the instruction never ran
            self.regs.set_gprs(dict(enumerate(self._undo)))
            self.regs.rip = self._stop.rip
            self._undo = None
        stop = self._stop
        if stop is not None:  # inside a block: only what precedes RIP retired
            if not step:
                counter.settle(stop.rip)
            elif stop.kind == "tdcall":  # the TDCALL completed
                counter.stepped(rip)
            else:  # the step faulted: it started, and did not retire
                counter.settle(rip)
            return stop
        if pause is not None:  # in front of the instruction at pause.rip
            counter.settle(pause.rip)
            return None
        end = self._ended.end_rip  # nothing since the slice moved RIP
        if step:
            counter.stepped(rip)
            if end == rip + 1 and self.fetched(rip, 1) == b"\xf4":
                return Stop("hlt", rip, "hlt")
            return None
        last = counter.last_instruction()
        if last is not None and end == last + 1 and self.fetched(last, 1) == b"\xf4":
            return Stop("hlt", last, "hlt")
        return None if counter.stopped_in_front else self._natural_stop(until, end)

    def _natural_stop(self, until: int, rip: int | None = None) -> Stop:
        rip = self.regs.rip if rip is None else rip
        if self.stop_requested:
            return Stop("interrupted", rip)
        if until and rip == until:
            return Stop("until", rip)
        state = self.counter.state
        if state.count >= state.limit or self.mmu.code_stale \
                or self._slice_ended:
            return Stop("limit", rip)
        if rip in self.traps.addresses:
            return Stop("ve-insn", rip)
        return Stop("fault", rip, "the emulator stopped for an unknown reason")

    def _fault_stop(self, exc: UcError) -> Stop:
        rip = self.regs.rip
        if self._fault is not None:
            info = self._fault
            return Stop("memory", rip, info.describe(), getattr(info, "gpa", info.la), info)
        if self._unmapped is not None:
            access, address = self._unmapped
            return Stop("fault", rip, f"{access} of unmapped guest address {address:#x}", address)
        return Stop("fault", rip, f"emulator error: {exc}")

    # --- hooks (called from inside Unicorn) ---
    def _invalid_insn(self, uc, _user) -> bool:
        rip = self.regs.rip
        code = self.fetched(rip, 4)
        if code == abi.TDCALL_BYTES:
            if not self.on_tdcall(self.regs):
                self._stop = Stop("tdcall", self.regs.rip)
                uc.emu_stop()
            elif self.mmu.code_stale:
                uc.emu_stop()
            return True
        name = "ud2" if code[:2] == abi.UD2_BYTES else \
            "vmcall" if code[:3] == abi.VMCALL_BYTES else "an invalid instruction"
        self._stop = Stop("fault", rip, f"#UD: {name}")
        return False

    def _block_insns(self, address: int, size: int) -> tuple[int, ...] | None:
        """Start addresses of the instructions of a translation block; None
        when the block must first get its traps (code_traps.block_traps)."""
        code = self.fetched(address, size)
        code64 = self.code64()
        insns = [(a, raw) for a, raw, _ in decode(code, address, code64)]
        if not self.traps.block_traps(insns, code64):
            return None
        return tuple(a for a, _ in insns)

    def code64(self) -> bool:
        """Whether the code running now is 64-bit (always, unless the guest
        started in the TDX reset state: modes.py)."""
        return not self.mmu.mixed_modes or modes.code64(self)

    def _interrupt(self, uc, intno, _user) -> None:
        rip = self.regs.rip
        if self.fetched(rip - 2, 2) == bytes((0xCD, intno)):  # `int n`, RIP already past it
            self._stop = Stop("int", rip, f"software interrupt, vector {intno}", intno)
        else:
            self._stop = Stop("fault", rip, f"exception or software interrupt, vector {intno}")
        uc.emu_stop()

    def _unmapped_access(self, uc, access, address, size, value, _user) -> bool:
        self._fault = self.mmu.trapped_fault(access, address)
        if self._fault is None:
            kinds = {UC_MEM_READ_UNMAPPED: "read", UC_MEM_FETCH_UNMAPPED: "instruction fetch"}
            self._unmapped = (kinds.get(access, "write"), address)
        return False

    def _ve_insn(self, uc, *args) -> int:
        """An IN/OUT/CPUID the trap hooks missed (the safety net).  Unicorn
        completes it after this hook, so its register effects are undone
        after the stop; CPUID is skipped (return 1) and IN gets AL back
        unchanged.  Memory is not restored: Unicorn may already
        have written ES:[RDI] for an INS (its restartability write)."""
        self._stop = Stop("ve-insn", self.regs.rip, _VE_INSNS[args[-1]])
        self._undo = self.regs.gprs()
        uc.emu_stop()
        return 1 if args[-1] == X.UC_X86_INS_CPUID else self._undo[0] & 0xFFFF_FFFF
