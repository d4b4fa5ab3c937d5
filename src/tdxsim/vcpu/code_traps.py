"""Code hooks on single addresses (traps.c): where the vCPU stops before an
instruction, without single steps and without Unicorn's exit addresses.

Three kinds, each with its own state: `trap` stops before intercepted
instructions (ve_insns.py) and before the stop address of a run;
`boundary` pauses where a slice reaches its limit inside a block;
`if_watch` pauses before POPF and IRET while an interrupt waits for IF = 1.
"""
from __future__ import annotations

import ctypes
import zlib

from unicorn import UC_HOOK_CODE
from unicorn.unicorn_py3 import unicorn as _binding

from .. import native
from ..layout import PAGE
from . import ve_insns

MAX_BOUNDARY_HOOKS = 64  # slice-limit pause points kept for reuse


class CodeTraps:
    def __init__(self, uc, compiled: bool, phys_read, mmu, forget_page):
        """forget_page(la): the instruction counter's, for a code page that
        changed (its blocks are decoded again, and their traps found)."""
        self.uc, self.compiled, self.phys_read, self.mmu = uc, compiled, phys_read, mmu
        self.forget_page = forget_page
        self.trap = native.Traps(stop=native.uc_emu_stop)
        self.boundary = native.Traps(stop=native.uc_emu_stop)
        self.if_watch = native.Traps(stop=native.uc_emu_stop)
        self.sti = native.Sti()  # STIs `trap` completes in place (complete_sti)
        self.addresses: set[int] = set()  # trapped intercepted instructions
        self._hooks: dict[int, int] = {}  # trapped address -> Unicorn hook handle
        self._boundary_hooks: dict[int, int] = {}
        self._scanned: dict[tuple[int, int], int] = {}  # (page, backing) -> crc32 of its code
        self._watched: set[int] = set()  # POPF/IRET pauses (if_watch)
        self.pending: list[tuple[int, native.Traps]] = []  # block_traps -> install_pending
        self.until = 0  # the stop address of a run, trapped like the others
        self._until_hook: int | None = None

    def complete_sti(self, vcpu: native.VCpu, counter: native.Counter) -> None:
        """Let the compiled trap complete an STI itself, without stopping the
        slice, when the run loop would only emulate it and run on (traps.c
        says when); the slice reports it (SLICE_STI).  The TD turns it off
        (sti.enabled) for several vCPUs, whose switches the run loop decides
        between slices."""
        self.sti.vcpu, self.sti.counter = ctypes.pointer(vcpu), ctypes.pointer(counter)
        self.sti.boundary, self.sti.enabled = ctypes.pointer(self.boundary), 1
        self.trap.sti = ctypes.pointer(self.sti)

    def scan_page(self, la: int, backing: int) -> None:
        """A code page the guest fetches from (mmu.on_code_fetch), with
        exact traps: when its content changed since it was last fetched
        (code the guest loaded, decompressed or rewrote), the blocks decoded
        in it are forgotten, so that their traps are found again."""
        code = self.phys_read(backing, PAGE)
        digest = zlib.crc32(code)
        seen = self._scanned.get((la, backing))
        if seen == digest:
            return
        self._scanned[(la, backing)] = digest
        self.mmu.code_pages.add(backing // PAGE)
        if seen is not None:
            self.forget_page(la)

    def block_traps(self, insns: list[tuple[int, bytes]], code64: bool) -> bool:
        """Exact traps: before a block first runs, trap each intercepted or
        vCPU-emulated instruction in it and each POPF/IRET.  (IN/OUT too:
        Unicorn's IN/OUT hooks, the fallback, run during the instruction,
        and an INS may already have stored.)
        True when all were trapped already; else they are queued for
        `install_pending`, and the block must not run until they are."""
        for address, raw in insns:
            if address in self.addresses or address in self._watched:
                continue
            insn = ve_insns.decode(raw, code64)
            if insn is not None:
                self.pending.append((address, self.trap))
            elif ve_insns.is_if_setter(raw, code64):
                self.pending.append((address, self.if_watch))
        return not self.pending

    def install_pending(self) -> None:
        """Outside Unicorn's run: add the hooks block_traps queued (each
        drops the translated code at its address)."""
        for address, state in self.pending:
            if state is self.trap:
                self._trap(address)
            else:
                self._watch(address)
        self.pending.clear()

    def _trap(self, address: int) -> None:
        if address not in self.addresses:
            self.addresses.add(address)
            self._hooks[address] = self._add(address, self.trap)

    def _watch(self, address: int) -> None:
        """A POPF/IRET pause, once per address."""
        if address not in self._watched:
            self._watched.add(address)
            self._add(address, self.if_watch)

    def drop(self, address: int) -> None:
        """Let the instruction at address run natively from now on (the guest
        rewrote the code there)."""
        self.addresses.discard(address)
        handle = self._hooks.pop(address, None)
        if handle is not None:
            self._delete(handle)
        self.uc.ctl_remove_cache(address, address + 1)

    def set_until(self, until: int) -> None:
        """The stop address is a trap too, not a Unicorn exit address
        (Unicorn retranslates the code at its exit addresses after every
        run)."""
        if self._until_hook is not None:
            self._delete(self._until_hook)
        self._until_hook = self._add(until, self.trap) if until else None
        self.until = until

    def arm_boundary(self, address: int) -> None:
        """Boundary hooks stay in place, disarmed, for the next slice that
        ends there (a timer firing at the same point again); the oldest
        goes when there are too many."""
        if address not in self._boundary_hooks:
            if len(self._boundary_hooks) >= MAX_BOUNDARY_HOOKS:
                old = next(iter(self._boundary_hooks))
                self._delete(self._boundary_hooks.pop(old))
                self.uc.ctl_remove_cache(old, old + 1)
            self._boundary_hooks[address] = self._add(address, self.boundary)
        self.boundary.armed, self.boundary.only = 1, address

    def _add(self, address: int, state: native.Traps) -> int:
        """A code hook takes effect when code is translated: drop what was."""
        self.uc.ctl_remove_cache(address, address + 1)
        if self.compiled:
            return native.add_hook(self.uc, UC_HOOK_CODE, "tdxsim_trap", state,
                                   address, address)
        return self.uc.hook_add(UC_HOOK_CODE, _python_trap, state, address, address)

    def _delete(self, handle: int) -> None:
        _binding.uclib.uc_hook_del(self.uc._uch, _binding.uc_hook_h(handle))


def _python_trap(uc, address, size, state: native.Traps) -> None:
    """The same logic as tdxsim_trap, for builds without C."""
    if state.armed and not state.hit and state.only in (0, address):
        state.hit, state.rip = 1, address
        uc.emu_stop()
