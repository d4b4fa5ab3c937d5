"""The events of one run, in order: all of them, or the most recent.

Python code appends event objects.  The compiled TDG.VP.VMCALL path
(module/vmcall.c) writes each exit it serves into a native buffer instead;
the log seals those records away in order before each Python append, and
turns them into `VmcallRecord`s only when someone reads them (304 bytes per
exit and no Python until then).  A HLT that C ended at once (host/halt.c)
is one record that stands for three events: the exit, `Halted` and `Woke`.

By default a log is a ring: it holds the last `RING` events, so a run of
tens of millions of exits takes the memory of a short one; `counts` counts
every event of the run by sub-function (or event type), and a `sink` sees
every event as it happens (`--trace-out` streams to a file that way).
`ring=None` keeps the whole run (`TD.run(keep_exits=True)`, `--trace`).
"""
from __future__ import annotations

import ctypes
from collections import Counter, deque
from functools import lru_cache
from struct import Struct

from . import abi, native
from .events import Halted, VmcallRecord, Woke, vmcall_record
from .exits import Halt, subfn_name

RING = 10_000  # events a default log keeps: crash reports and exits[-k:] need few
RECORD_SIZE = ctypes.sizeof(native.ExitRecord)
WORDS = RECORD_SIZE // 8
RECORD = Struct(f"<{WORDS}Q")  # native.ExitRecord: time, RIP, RCX, 16 GPRs, mask, 16 GPRs,
assert RECORD.size == RECORD_SIZE  # woke, woke_ns
R10_WORD, R11_WORD = 3 + abi.R10, 3 + abi.R11  # the host's view of R10 and R11
R10_AT, RECORD_KEY = 8 * R10_WORD, Struct("<2Q")  # R10, R11 of the first record


class Records:
    """Sealed native records (`data`): how many, the number of events they
    stand for, and whether C saw more than one sub-function among them."""
    __slots__ = ("data", "count", "events", "mixed", "_exits")

    def __init__(self, data: bytes, count: int, events: int, mixed: bool):
        self.data, self.count, self.events, self.mixed = data, count, events, mixed
        self._exits: list | None = None

    @property
    def uniform(self) -> tuple[int, int] | None:
        """(r10, r11) when every record holds that sub-function."""
        return None if self.mixed else RECORD_KEY.unpack_from(self.data, R10_AT)

    def exits(self) -> list[VmcallRecord]:
        """The records' exits (built once: the log's exits and events share them)."""
        if self._exits is None:
            self._exits = [_vmcall(fields) for fields in RECORD.iter_unpack(self.data)]
        return self._exits


# native.Module's recorded, capacity, recorded_woke and recorded_mixed, read and cleared at once
COUNTS_AT, COUNTS = native.Module.recorded.offset, Struct("<4Q")
assert native.Module.recorded_mixed.offset == COUNTS_AT + 24


class ExitBuffer:
    """The native buffer module/vmcall.c records into (one per TD).  When
    it is full the compiled path declines, and the Python exit that
    follows seals the buffer into the log: it never grows."""

    def __init__(self, module: native.Module, capacity: int = 4096):
        self.module = module
        self._records = (native.ExitRecord * capacity)()
        self._bytes = memoryview(self._records).cast("B")  # Records copy from it once
        module.records = ctypes.cast(self._records, ctypes.POINTER(native.ExitRecord))
        module.capacity = capacity
        module.recorded = module.recorded_woke = module.recorded_mixed = 0
        self._counts = memoryview(module).cast("B")[COUNTS_AT:COUNTS_AT + COUNTS.size]
        self.recorded = self._counts.cast("Q")  # [0]: records written since the last take

    def take(self) -> Records:
        """The records written since the last take, with what C counted
        of them as it wrote them (vmcall.c record)."""
        counts = self._counts
        n, capacity, woke, mixed = COUNTS.unpack(counts)
        COUNTS.pack_into(counts, 0, 0, capacity, 0, 0)
        return Records(bytes(self._bytes[:n * RECORD_SIZE]), n, n + 2 * woke, bool(mixed))


class EventLog:
    def __init__(self, exits: ExitBuffer | None = None, ring: int | None = RING, sink=None):
        self._exits = exits  # None once detached: the run is over
        self._ring = ring  # None: keep every event
        self._sink = sink  # called with every event, in order
        self._items: deque = deque()  # events, and Records: sealed native records
        self._held = 0  # events in _items
        self.total = 0  # events of the run sealed so far
        self._flat: list | None = []  # _items as events, until the next append
        self._vmcalls: list | None = []  # the VmcallRecords among them, until the next append
        self._gone: _Tally | None = None  # what the ring dropped, counted as it went

    def append(self, event) -> None:
        self._seal()
        self._hold(event, 1)
        if self._sink is not None:
            self._sink(event)

    def detach(self) -> "EventLog":
        """Take the rest of the native records; the buffer serves the next run."""
        self._seal()
        self._exits = None
        return self

    @property
    def counts(self) -> Counter:
        """Every event of the run so far: TD exits by sub-function name (as
        traces spell it), other events by type name (e.g. 'VeRaised')."""
        self._seal()
        tally = _Tally()
        for item in self._items:
            tally.add(item)
        return tally.names() + (self._gone.names() if self._gone else Counter())

    @property
    def dropped(self) -> int:
        """Events of the run the ring no longer holds."""
        return -len(self) + self.total  # (len seals first: total then counts every event)

    def _hold(self, item, n: int) -> None:
        self._items.append(item)
        self._held += n
        self.total += n
        self._flat = self._vmcalls = None
        if self._ring is not None:  # drop whole items while the rest still fill the ring
            while self._held - _size(self._items[0]) >= self._ring:
                gone = self._items.popleft()
                self._held -= _size(gone)
                if self._gone is None:
                    self._gone = _Tally()
                self._gone.add(gone)

    def _seal(self) -> None:
        if self._exits is not None and self._exits.recorded[0]:
            chunk = self._exits.take()
            self._hold(chunk, chunk.events)
            if self._sink is not None:
                for event in _unpack(chunk.data, []):
                    self._sink(event)

    def native_exits(self) -> list[tuple[int, ...]] | None:
        """Each TD exit held as its native record's words (RECORD: time,
        RIP, RCX, the host's view of the 16 GPRs, the mask of those taken
        back and their 16 values, woke, its time), for a reader of a few
        fields of thousands of runs (the checker); None when an exit was
        recorded in Python or the ring cut a chunk: read `exits()` then."""
        self._seal()
        if self._flat is not None or self._ring is not None and self._held > self._ring:
            return None
        words = []
        for item in self._items:
            if type(item) is Records:
                words += RECORD.iter_unpack(item.data)
            elif isinstance(item, VmcallRecord):
                return None
        return words

    def appended(self) -> list | None:
        """The events held other than the compiled path's records (those
        Python appended: interrupts, halts, #VE, exits it served), without
        building the records; None when the ring cut a chunk."""
        self._seal()
        if self._ring is not None and self._held > self._ring:
            return None
        return [item for item in self._items if type(item) is not Records]

    def exits(self) -> list[VmcallRecord]:
        """The TD exits among the events held, without building the others."""
        self._seal()
        if self._vmcalls is None:
            if self._ring is not None and self._held > self._ring:  # the ring cuts a chunk
                self._vmcalls = [e for e in self._events() if isinstance(e, VmcallRecord)]
            else:
                exits = []
                for item in self._items:
                    if type(item) is Records:
                        exits += item.exits()
                    elif isinstance(item, VmcallRecord):
                        exits.append(item)
                self._vmcalls = exits
        return self._vmcalls

    def _events(self) -> list:
        self._seal()
        if self._flat is None:
            flat = []
            for item in self._items:
                if type(item) is not Records:
                    flat.append(item)
                elif item.events == item.count:  # no HLT ended at once: the exits alone
                    flat += item.exits()
                else:
                    _unpack(item.data, flat)
            if self._ring is not None and len(flat) > self._ring:
                del flat[:len(flat) - self._ring]
            self._items, self._held, self._flat = deque(flat), len(flat), flat
        return self._flat

    def __len__(self) -> int:
        self._seal()  # (a record may stand for three events: count them sealed)
        held = self._held
        return held if self._ring is None else min(held, self._ring)

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


class _Tally:
    """Events counted by kind: TDG.VP.VMCALL sub-functions by R11, KVM
    hypercalls by R10, other events by type name."""

    def __init__(self):
        self.subfns, self.hypercalls, self.kinds = Counter(), Counter(), Counter()

    def add(self, item) -> None:
        if type(item) is Records:
            self._add_records(item)
        elif isinstance(item, VmcallRecord):
            r10 = item.exposed[abi.R10]
            if r10:
                self.hypercalls[r10] += 1
            else:
                self.subfns[item.exposed[abi.R11]] += 1
        else:
            self.kinds[type(item).__name__] += 1

    def _add_records(self, chunk: Records) -> None:
        """Native records: a chunk of one sub-function (what C saw as it
        recorded them) at once, else with C-speed list operations."""
        n = chunk.count
        halts = (chunk.events - n) // 2
        if halts:
            self.kinds.update(Halted=halts, Woke=halts)
        if chunk.uniform is not None:
            r10, r11 = chunk.uniform
            if r10:
                self.hypercalls[r10] += n
            else:
                self.subfns[r11] += n
            return
        words = memoryview(chunk.data).cast("Q")
        r10s = words[R10_WORD::WORDS].tolist()
        by_r10 = Counter(r10s)
        zeros = by_r10.pop(0, 0)
        self.hypercalls.update(by_r10)
        if zeros == len(r10s):
            self.subfns.update(words[R11_WORD::WORDS].tolist())
        elif zeros:
            self.subfns.update(r11 for r10, r11 in zip(r10s, words[R11_WORD::WORDS].tolist())
                               if not r10)

    def names(self) -> Counter:
        names = Counter()
        for r11, n in self.subfns.items():
            names[subfn_name(0, r11)] += n
        for r10, n in self.hypercalls.items():
            names[subfn_name(r10, 0)] += n
        return names + self.kinds


def _size(item) -> int:
    return item.events if type(item) is Records else 1


_WOKEN = Halt(irq_blocked=False)  # the only halt C ends (R12 = 0)
GPR_SELECT_MASK, XMM_SELECT_SHIFT, XMM_SELECT_MASK = (abi.GPR_SELECT_MASK, abi.XMM_SELECT_SHIFT,
                                                      abi.XMM_SELECT_MASK)


def _unpack(chunk: bytes, events: list) -> list:
    """Appends the events of native records: each exit, and after a HLT
    that ended at once its Halted and Woke."""
    for fields in RECORD.iter_unpack(chunk):
        events.append(_vmcall(fields))
        woke = fields[36]
        if woke:
            events += (Halted(fields[37], fields[1], False), Woke(fields[37], woke & 0xFF, 0))
    return events


def _vmcall(fields: tuple[int, ...]) -> VmcallRecord:
    """One native record's exit: time, RIP, RCX, the host's view of the 16
    GPRs, the mask of GPRs taken back and their 16 values, woke and its time
    (a HLT that ended at once)."""
    rcx, returned = fields[2], fields[20:36]
    return vmcall_record(fields[0], fields[1], rcx & GPR_SELECT_MASK,
                         rcx >> XMM_SELECT_SHIFT & XMM_SELECT_MASK, fields[3:19],
                         {i: returned[i] for i in _bits(fields[19])},
                         _WOKEN if fields[36] else None)


@lru_cache(maxsize=None)
def _bits(mask: int) -> tuple[int, ...]:
    return tuple(i for i in range(16) if mask >> i & 1)
