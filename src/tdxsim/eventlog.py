"""The events of one run, in order.

Python code appends event objects.  The compiled TDG.VP.VMCALL path
(module/vmcall.c) writes each exit it serves into a native buffer instead;
the log seals those records away in order before each Python append, and
turns them into `VmcallRecord`s only when someone reads it, so a run of a
million hypercalls costs 288 bytes per exit and no Python until then.
"""
from __future__ import annotations

import ctypes
from functools import lru_cache
from struct import Struct

from . import abi, native
from .events import VmcallRecord

RECORD_SIZE = ctypes.sizeof(native.ExitRecord)
RECORD = Struct("<36Q")  # native.ExitRecord's layout: 3 + 16 + 1 + 16 words
assert RECORD.size == RECORD_SIZE


class ExitBuffer:
    """The native buffer module/vmcall.c records into (one per TD)."""

    def __init__(self, module: native.Module, capacity: int = 4096):
        self.module = module
        self._records = (native.ExitRecord * capacity)()
        self._address = ctypes.addressof(self._records)
        module.records = ctypes.cast(self._records, ctypes.POINTER(native.ExitRecord))
        module.capacity = capacity
        module.recorded = 0

    def take(self) -> bytes:
        """The records written since the last take, as bytes."""
        n = self.module.recorded
        self.module.recorded = 0
        return ctypes.string_at(self._address, n * RECORD_SIZE)


class EventLog:
    def __init__(self, exits: ExitBuffer | None = None):
        self._exits = exits  # None once detached: the run is over
        self._items: list = []  # events, and bytes of sealed native records
        self._length = 0
        self._flat = True

    def append(self, event) -> None:
        self._seal()
        self._items.append(event)
        self._length += 1

    def detach(self) -> "EventLog":
        """Take the rest of the native records; the buffer serves the next run."""
        self._seal()
        self._exits = None
        return self

    def _seal(self) -> None:
        if self._exits is not None and self._exits.module.recorded:
            chunk = self._exits.take()
            self._items.append(chunk)
            self._length += len(chunk) // RECORD_SIZE
            self._flat = False

    def _events(self) -> list:
        self._seal()
        if not self._flat:
            flat = []
            for item in self._items:
                if isinstance(item, bytes):
                    flat += map(_vmcall_record, RECORD.iter_unpack(item))
                else:
                    flat.append(item)
            self._items, self._flat = flat, True
        return self._items

    def __len__(self) -> int:
        pending = self._exits.module.recorded if self._exits is not None else 0
        return self._length + pending

    def __iter__(self):
        return iter(self._events())

    def __reversed__(self):
        return reversed(self._events())

    def __getitem__(self, index):
        return self._events()[index]

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def __repr__(self) -> str:
        return f"EventLog({self._events()!r})"


def _vmcall_record(fields: tuple[int, ...]) -> VmcallRecord:
    """One native.ExitRecord, unpacked: time, RIP, RCX, the host's view of
    the 16 GPRs, the mask of GPRs taken back and their 16 values."""
    time_ns, rip, rcx = fields[:3]
    returned = fields[20:]
    return VmcallRecord(time_ns, rip, rcx & abi.GPR_SELECT_MASK,
                        rcx >> abi.XMM_SELECT_SHIFT & abi.XMM_SELECT_MASK, fields[3:19],
                        {i: returned[i] for i in _bits(fields[19])})


@lru_cache(maxsize=None)
def _bits(mask: int) -> tuple[int, ...]:
    return tuple(i for i in range(16) if mask >> i & 1)
