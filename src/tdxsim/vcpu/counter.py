"""Exact guest instruction counting, the base of the budget and virtual time.

Instructions are counted per translation block (see counter.c): a block
counts in full when Unicorn enters it.  Two corrections keep the count exact
at every instruction boundary:
- a block that would pass the limit is not entered; the vCPU then enters it
  with a trap on the instruction where the count reaches the limit (cpu.py);
- a stop inside a block (a fault) gives back the instructions from RIP on
  (`settle`).
The C hook is used when the extension was built; otherwise an equivalent
Python block hook (slower, same counts).
"""
from __future__ import annotations

import bisect
import ctypes
from typing import Callable

from unicorn import UC_HOOK_BLOCK

from .. import native
from ..layout import PAGE

_RESOLVE = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint32)
NOT_YET = 0xFFFF_FFFF  # native.h COUNTER_NOT_YET
NO_BLOCK = (1 << 64) - 1  # block_start after a stop inside a block: no block was refused


class InstructionCounter:
    """Counts retired instructions; stops the CPU in front of a block that
    would pass `limit`."""

    def __init__(self, uc, decode: Callable[[int, int], tuple[int, ...] | None],
                 use_native: bool | None = None):
        self._decode = decode  # (address, size) -> instruction start addresses
        self._blocks: dict[int, tuple[int, ...]] = {}
        self._last_pc = 0  # set when a stop or a step says which instruction ran last
        self.state = native.Counter()
        self.state.enabled = 1
        self.state.stop = native.uc_emu_stop
        self._resolver = _RESOLVE(self._resolve)  # kept alive with the counter
        self.state.resolve = ctypes.cast(self._resolver, ctypes.c_void_p)
        library = native.library() if use_native is not False else None
        if use_native and library is None:
            raise RuntimeError("tdxsim's compiled hooks (tdxsim._native) are not built")
        self.native = library is not None
        if self.native:
            self._forget = library.tdxsim_forget_blocks
            native.add_hook(uc, UC_HOOK_BLOCK, "tdxsim_count_block", self.state)
        else:
            uc.hook_add(UC_HOOK_BLOCK, self._python_hook)

    def _resolve(self, address: int, size: int) -> int:
        """The block's instruction count, or NOT_YET when decode answers None
        (the vCPU traps an instruction in it first: the block is not entered,
        and is decoded again when it is next entered)."""
        insns = self._decode(address, size)
        if insns is None:
            self._blocks.pop(address, None)  # not a block refused at the limit
            return NOT_YET
        self._blocks[address] = insns
        return len(insns)

    def _python_hook(self, uc, address, size, _user):
        """The same logic as tdxsim_count_block, for builds without C."""
        state = self.state
        if not state.enabled:
            return
        if address == state.until:
            uc.emu_stop()
            return
        insns = self._blocks.get(address)
        n = len(insns) if insns is not None and _span(insns, size, address) else \
            self._resolve(address, size)
        state.block_start = address
        if n == NOT_YET or state.count + n > state.limit:
            state.block_insns = 0
            uc.emu_stop()
            return
        state.block_insns = n
        state.count += n

    # --- the count ---
    @property
    def count(self) -> int:
        return self.state.count

    def set_limit(self, limit: int) -> None:
        self.state.limit = limit

    def retire(self, n: int = 1) -> None:
        """Count instructions executed outside block counting."""
        self.state.count += n

    def refused_block(self, rip: int) -> tuple[int, ...] | None:
        """The instruction starts of the block at rip, if the hook just
        refused to enter it."""
        state = self.state
        if state.block_insns == 0 and state.block_start == rip and state.count < state.limit:
            return self._blocks.get(rip)
        return None

    def would_refuse(self, rip: int, limit: int) -> tuple[int, ...] | None:
        """The instruction starts of the block at rip if the hook would stop
        in front of it now (it would pass `limit`), known from its decode
        and, in C, from the count cached for it: the vCPU then enters it
        with a pause at once (cpu.py), saving an emu_start that only stops.
        None: it fits, or it is not known."""
        insns = self._blocks.get(rip)
        state = self.state
        if insns is None or state.count + len(insns) <= limit or rip == state.until:
            return None
        if self.native:
            slot = (rip ^ rip >> 12) % native.COUNTER_SLOTS
            if state.keys[slot] >> 16 != rip or state.counts[slot] != len(insns):
                return None
        return insns

    @property
    def stopped_in_front(self) -> bool:
        """The last stop was the hook refusing a block that would pass the limit."""
        return self.state.block_insns == 0 and self.state.count < self.state.limit

    def settle(self, rip: int) -> None:
        """After a stop inside the current block: only the instructions
        before rip retired (a fault leaves RIP on the faulting one)."""
        state = self.state
        insns = self._blocks.get(state.block_start, ())
        if state.block_insns and insns and insns[0] <= rip <= insns[-1]:
            state.count -= state.block_insns - bisect.bisect_left(insns, rip)
        # No block was refused: a pause at a block's first instruction must
        # not look like a refusal of that block (refused_block).
        state.block_start, state.block_insns = NO_BLOCK, 0
        self._last_pc = rip

    def completed(self, rip: int) -> None:
        """The instruction at rip, last of its block, was completed in place
        by a trap hook (traps.c, an STI): as settle(rip) and retire()."""
        self._last_pc = rip

    def stepped(self, rip: int) -> None:
        """One instruction at rip ran outside block counting."""
        self.retire()
        self._last_pc = rip

    @property
    def last_pc(self) -> int:
        """The last instruction started: the end of the block entered last,
        or where a step or a stop inside a block left off."""
        return self.last_instruction() or self._last_pc

    def last_instruction(self) -> int | None:
        """Address of the last instruction of the block entered last, if it ran."""
        insns = self._blocks.get(self.state.block_start)
        return insns[-1] if insns and self.state.block_insns else None

    @property
    def enabled(self) -> bool:
        return bool(self.state.enabled)

    @enabled.setter
    def enabled(self, on: bool) -> None:
        self.state.enabled = int(on)

    def forget_page(self, la: int) -> None:
        """The code of one linear page changed: decode again the blocks that
        start in it or in the page before (a block may run into it)."""
        first, last = la - PAGE, la + PAGE
        for address in [a for a in self._blocks if first <= a < last]:
            del self._blocks[address]
        keys = self.state.keys
        for slot, key in enumerate(keys):
            if key and first <= key >> 16 < last:
                keys[slot] = 0

    def forget_blocks(self) -> None:
        """The guest's code changed: decode blocks anew."""
        self._blocks.clear()
        if self.native:
            self._forget(ctypes.byref(self.state))


def _span(insns: tuple[int, ...], size: int, address: int) -> bool:
    return bool(insns) and insns[-1] < address + size
