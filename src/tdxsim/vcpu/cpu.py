"""One TD vCPU on Unicorn: 64-bit mode, CPL0, TDCALL trapped.

The vCPU knows nothing of the TDX module or host: TDCALL is handed to the
`on_tdcall` callback with the register file; the callback returns False when
the run must stop (the TD loop then decides what happens next).  Everything
that ends a slice is reported as a `Stop`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from unicorn import (UC_ARCH_X86, UC_HOOK_INSN, UC_HOOK_INSN_INVALID, UC_HOOK_INTR,
                     UC_HOOK_MEM_UNMAPPED, UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_UNMAPPED,
                     UC_MODE_64, UC_PROT_ALL, Uc, UcError)
from unicorn import x86_const as X

from .. import abi
from .counter import InstructionCounter
from . import ve_insns
from .regs import RFLAGS_IF, RegisterFile

# The intercepted instructions Unicorn can hook (spec 12): a safety net for
# code outside the scanned segments, which the exit addresses do not cover.
_VE_INSNS = {X.UC_X86_INS_IN: "in", X.UC_X86_INS_OUT: "out", X.UC_X86_INS_CPUID: "cpuid"}


@dataclass(frozen=True)
class Stop:
    """Why a slice of guest execution ended.

    kind: 'limit' (instruction limit reached), 'until' (reached the stop
    address), 'tdcall' (the TDCALL callback asked to stop), 'hlt' (plain HLT),
    've-insn' (an instruction the TDX module intercepts, not yet executed:
    rip is that instruction), 'fault', 'timeout'.
    """
    kind: str
    rip: int
    detail: str = ""
    address: int | None = None  # faulting data address, when known


class VCpu:
    def __init__(self, native_counter: bool | None = None):
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self.regs = RegisterFile(self.uc)
        self.counter = InstructionCounter(self.uc, native_counter)
        self.on_tdcall: Callable[[RegisterFile], bool] = lambda regs: True
        self.tsc: Callable[[], int] = lambda: self.counter.count
        self._stop: Stop | None = None
        self._unmapped: tuple[str, int] | None = None
        self._shadow_until = -1  # instruction count at which an STI shadow is open
        self.ve_traps: set[int] = set()  # exit addresses: intercepted instructions
        self._exits_until: int | None = None
        self._undo: list[int] | None = None  # GPRs to restore after a hooked IN/OUT/CPUID
        self.uc.ctl_exits_enabled(True)
        self.uc.hook_add(UC_HOOK_INSN_INVALID, self._invalid_insn)
        self.uc.hook_add(UC_HOOK_INTR, self._interrupt)
        self.uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._unmapped_access)
        for insn in _VE_INSNS:
            self.uc.hook_add(UC_HOOK_INSN, self._ve_insn, insn, 1, 0, insn)

    # --- memory ---
    def map(self, address: int, size: int) -> None:
        self.uc.mem_map(address, size, UC_PROT_ALL)

    def read(self, address: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(address, size))

    def write(self, address: int, data: bytes) -> None:
        self.uc.mem_write(address, data)

    def readable(self, address: int, size: int) -> bool:
        try:
            self.uc.mem_read(address, size)
            return True
        except UcError:
            return False

    # --- trapped instructions ---
    def install_traps(self, code_ranges: list[tuple[int, bytes]]) -> None:
        """Stop before every place in the guest's code where an intercepted
        or vCPU-emulated instruction may start (ve_insns.py)."""
        for base, code in code_ranges:
            self.ve_traps.update(base + offset for offset in ve_insns.candidates(code))
        self._exits_until = None

    def _sync_exits(self, until: int) -> None:
        """Unicorn stops before any exit address; `until` is one of them.
        Translated blocks keep the exits they were built with, so a new
        `until` flushes the block around it."""
        if until != self._exits_until:
            self.uc.ctl_set_exits(sorted(self.ve_traps | ({until} if until else set())))
            if until:
                self.uc.ctl_remove_cache(until, until + 1)
            self._exits_until = until

    def drop_trap(self, address: int) -> None:
        """Let the instruction at address run natively from now on (the guest
        rewrote the code there)."""
        self.ve_traps.discard(address)
        self._exits_until = None
        self.uc.ctl_remove_cache(address, address + 1)

    def emulate(self, insn: ve_insns.Insn) -> None:
        """Execute STI or RDTSC at RIP in place of Unicorn.  The instruction
        retires first, so RDTSC counts itself, as it did under Unicorn."""
        self.counter.retire()
        if insn.kind == "sti":
            shadow = not self.regs.rflags & RFLAGS_IF  # STI that sets IF (SDM, spec 7.1)
            self.regs.rflags |= RFLAGS_IF
        else:
            tsc = self.tsc()
            self.regs.set_gprs({abi.RAX: tsc & 0xFFFF_FFFF, abi.RDX: tsc >> 32 & 0xFFFF_FFFF})
            shadow = False
        self.regs.rip = self.regs.rip + insn.length
        self._shadow_until = self.counter.count if shadow else -1

    @property
    def in_sti_shadow(self) -> bool:
        """The last instruction was an STI that set IF: interrupts stay
        inhibited until the next instruction completes (SDM, spec 7.1)."""
        return self._shadow_until == self.counter.count

    @property
    def interrupts_enabled(self) -> bool:
        return bool(self.regs.rflags & RFLAGS_IF)

    # --- execution ---
    @property
    def instructions(self) -> int:
        return self.counter.count

    def run(self, limit: int, until: int = 0, timeout: float = 0.0) -> Stop:
        """Run from RIP until `limit` instructions have completed in total."""
        self._stop = None
        self._unmapped = None
        self._sync_exits(until)
        self.counter.set_limit(limit)
        rip = self.regs.rip
        start_count = self.counter.count
        started = time.monotonic()
        try:
            self.uc.emu_start(rip, until, timeout=int(timeout * 1e6))
        except UcError as exc:
            if self._stop is None:
                self._stop = self._fault_stop(exc)
        if self._undo is not None:  # fault-like: as if the instruction never ran
            self.regs.set_gprs(dict(enumerate(self._undo)))
            self.regs.rip = self._stop.rip
            self._undo = None
        if self._stop is not None:
            return self._stop
        return self._natural_stop(until, timeout, started, start_count)

    def _natural_stop(self, until: int, timeout: float, started: float,
                      start_count: int) -> Stop:
        rip = self.regs.rip
        if until and rip == until:
            return Stop("until", rip)
        last = self.counter.last_pc
        if (self.counter.count > start_count and rip == last + 1
                and self.read(last, 1) == b"\xf4"):
            return Stop("hlt", last, "hlt")
        if self.counter.count >= self.counter.state.limit:
            return Stop("limit", rip)
        if rip in self.ve_traps:
            return Stop("ve-insn", rip)
        if timeout and time.monotonic() - started >= timeout * 0.99:
            return Stop("timeout", rip)
        return Stop("fault", rip, "the emulator stopped for an unknown reason")

    def _fault_stop(self, exc: UcError) -> Stop:
        rip = self.regs.rip
        if self._unmapped is not None:
            access, address = self._unmapped
            return Stop("fault", rip, f"{access} of unmapped guest address {address:#x}", address)
        return Stop("fault", rip, f"emulator error: {exc}")

    # --- hooks (called from inside Unicorn) ---
    def _invalid_insn(self, uc, _user) -> bool:
        rip = self.regs.rip
        code = self.regs.peek_code(rip)
        if code == abi.TDCALL_BYTES:
            if not self.on_tdcall(self.regs):
                uc.emu_stop()
            return True
        name = "ud2" if code[:2] == abi.UD2_BYTES else \
            "vmcall" if code[:3] == abi.VMCALL_BYTES else "an invalid instruction"
        self._stop = Stop("fault", rip, f"#UD: {name}")
        return False

    def _code_at(self, address: int, size: int) -> bytes:
        try:
            return bytes(self.uc.mem_read(address, size))
        except UcError:
            return b""

    def _interrupt(self, uc, intno, _user) -> None:
        rip = self.regs.rip
        self._stop = Stop("fault", rip, f"exception or software interrupt, vector {intno}")
        uc.emu_stop()

    def _unmapped_access(self, uc, access, address, size, value, _user) -> bool:
        kinds = {UC_MEM_READ_UNMAPPED: "read", UC_MEM_FETCH_UNMAPPED: "instruction fetch"}
        self._unmapped = (kinds.get(access, "write"), address)
        return False

    def _ve_insn(self, uc, *args) -> int:
        """An IN/OUT/CPUID the exit addresses missed (code outside the scanned
        segments).  Unicorn completes it after this hook, so its register
        effects are undone after the stop; CPUID is skipped (return 1) and IN
        gets AL back unchanged.  Memory is not restored: Unicorn may already
        have written ES:[RDI] for an INS (its restartability write)."""
        self._stop = Stop("ve-insn", self.counter.last_pc, _VE_INSNS[args[-1]])
        self._undo = self.regs.gprs()
        uc.emu_stop()
        return 1 if args[-1] == X.UC_X86_INS_CPUID else self._undo[0] & 0xFFFF_FFFF

