"""`fuzz`: random inputs, hostile host answers, module failures and
interrupt timings, judged by the same properties as `check`.

Execution i's scenario depends only on (seed, i), so a campaign gives the
same findings whatever the number of workers.  Worker w of W runs
i = w, w + W, ... in its own process and publishes the index it is running
in shared memory: when the CPU emulator crashes a worker, the parent knows
the exact scenario, saves it and starts a new worker after it, so nothing
is lost (spec 12).  For each failing property the lowest failing index is
kept, minimised, and saved as a reproducer for `tdxsim check --replay`.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

from .. import abi
from ..abi import Status, VmcallStatus
from ..errors import TdxsimError
from ..image import Image
from ..signals import STOP_SIGNALS, WATCHER, held, worker_setup
from .contracts import Contract
from .harness import Harness
from .properties import PROPERTIES, judge_all
from .runner import minimise
from .scenario import Scenario, reproducer

BY_ID = {p.id: p for p in PROPERTIES}
STOPPED_BY = {-sig for sig in STOP_SIGNALS}  # a worker's exit code when a signal ended it
SPECIAL = (0, 1, 2, 0xFFFF_FFFF, 1 << 32, abi.MASK64, 1 << 63, VmcallStatus.RETRY,
           VmcallStatus.INVALID_OPERAND, VmcallStatus.SUBFUNC_UNSUPPORTED, abi.kvm_error(1000))
STATUSES = (abi.operand_invalid(abi.RCX), abi.operand_invalid(abi.RAX), Status.OPERAND_BUSY,
            Status.NON_RECOVERABLE_VCPU, Status.NON_RECOVERABLE_TD, Status.INTERRUPTED_RESUMABLE)
P_VALUE, P_FAILURE, P_INJECT = 0.5, 0.15, 0.3  # chance to fuzz a value / fail / inject
WIDTHS = (8, 16, 32)  # a narrow random value's bits
_new = object.__new__
HOST_REGISTERS = tuple(r for r in range(abi.RDX, 16) if r != abi.RSP)  # what a host may write


def scenario(c: Contract, seed: int, index: int, boundaries: int) -> Scenario:
    """Execution `index` of the campaign `seed`: its own random.Random(seed
    << 64 | index), so that any worker can run any index."""
    return Scenarios(c, seed, boundaries).at(index)


class Scenarios:
    """The campaign's scenarios, one per index.  The draws are exactly those
    of random.Random's choice, randrange and random on a generator seeded
    with seed << 64 | index (tests/test_fuzz.py keeps that reference); they
    are spelled out on one reused generator because building a Random and
    calling its Python-level methods took ~15 % of an execution."""

    def __init__(self, c: Contract, seed: int, boundaries: int):
        self.seed, self.span = seed << 64, boundaries + 1
        self.flags = c.flag_values()
        self.registers = sorted(set(c.fields) | set(c.reg_args))
        self.interrupts = c.interrupts
        self._rng = random.Random()
        self._reseed = super(random.Random, self._rng).seed  # the C seeding, as Random(x) does
        self._random, self._bits = self._rng.random, self._rng.getrandbits

    def at(self, index: int) -> Scenario:
        self._reseed(self.seed | index)
        rand, below = self._random, self._below
        flags = self.flags[below(len(self.flags))]
        inputs = self._values(self.registers)
        host = self._values(HOST_REGISTERS)
        status = STATUSES[below(len(STATUSES))] if rand() < P_FAILURE else 0
        # A run with an interrupt pending takes several slices, so inject less
        # often when interrupts are off for the call (then only a stub that sets
        # IF could take it, which sti-shadow also sees statically), and never
        # with a module failure (the stub may spin in a panic for its budget).
        chance = P_INJECT if self.interrupts.holds(flags) else P_INJECT / 6
        inject = below(self.span) if rand() < chance and not status else None
        # Scenario(...) without the frozen dataclass's object.__setattr__ per field
        sc = _new(Scenario)
        sc.__dict__.update(flags=flags, module_status=status, inject=inject, inputs=inputs,
                           host=host)
        return sc

    def _values(self, registers) -> tuple[tuple[int, int], ...]:
        """Each register fuzzed with chance P_VALUE: mostly 64 random bits,
        else a special value or a random 8-, 16- or 32-bit one."""
        rand, bits, below = self._random, self._bits, self._below
        out = []
        for r in registers:
            if rand() < P_VALUE:
                roll = rand()
                if roll < 0.7:
                    out.append((r, bits(64)))
                elif roll < 0.85:
                    out.append((r, SPECIAL[below(len(SPECIAL))]))
                else:
                    out.append((r, bits(WIDTHS[below(len(WIDTHS))])))
        return tuple(out)

    def _below(self, n: int) -> int:
        """Random._randbelow: k-bit draws until one is below n."""
        k, bits = n.bit_length(), self._bits
        r = bits(k)
        while r >= n:
            r = bits(k)
        return r


def boundaries(harness: Harness) -> int:
    """Instructions up to the TDCALL: where injections are interesting."""
    counts = [o.tdcalls[0].insns for o in map(harness.run, (
        Scenario(flags=f) for f in harness.contract.flag_values())) if o.tdcalls]
    return max(counts, default=32)


@dataclass(frozen=True)
class Failure:
    id: str
    index: int
    message: str
    scenario: Scenario  # minimised


@dataclass
class Campaign:
    runs: int
    seed: int
    workers: int
    span: int  # injection points range over 0..span instructions
    seconds: float = 0.0
    failures: dict[str, Failure] = field(default_factory=dict)
    crashes: list[int] = field(default_factory=list)  # indices that killed a worker
    saved: list[Path] = field(default_factory=list)
    executed: int = 0  # executions finished (runs, unless the campaign was stopped)
    stopped: bool = False  # stopped early (a signal): findings cover `executed` runs

    @property
    def rate(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0


def _work(image: Image, symbol: str, c: Contract, seed: int, span: int, start: int,
          step: int, runs: int, current, done, conn, crash_at: int | None,
          parent: int) -> None:
    """A worker process: run its share of the campaign, report each
    property's first failure (minimised), then exit."""
    worker_setup(parent)
    harness = Harness(image, symbol, c)
    scenarios = Scenarios(c, seed, span)
    reported: set[str] = set()
    for index in range(start, runs, step):
        current.value = index
        if index == crash_at:  # testing: stands for a crash inside the emulator
            os.kill(os.getpid(), signal.SIGSEGV)
        sc = scenarios.at(index)
        for finding in judge_all(c, harness.run(sc)):
            if finding.id not in reported:
                reported.add(finding.id)
                small = minimise(harness, sc, BY_ID[finding.id])
                again = BY_ID[finding.id].judge(c, harness.run(small))
                conn.send((finding.id, index, again.message, small.to_json()))
        done.value += 1
    conn.close()


def _start_method():
    """fork when it is safe, else spawn.  A forked worker starts in a few
    milliseconds; a spawned one starts Python, imports tdxsim and unpickles
    the image (~0.3 s), which is most of a campaign of some thousand
    executions per worker.  Fork is safe while this process runs no other
    thread that may hold a lock: Unicorn starts none for slices without a
    timeout (the parent's runs size the injections), and tdxsim's signal
    watcher (signals.py) takes none a worker needs.  Another thread (of a
    program embedding tdxsim), or a system without fork: spawn."""
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if "fork" in mp.get_all_start_methods() and threading.current_thread() is \
            threading.main_thread() and all(t.name == WATCHER for t in others):
        return mp.get_context("fork")
    return mp.get_context("spawn")


@dataclass
class _Worker:
    number: int
    proc: object
    conn: object | None  # None once the worker closed its end


def fuzz(image: Image, symbol: str, c: Contract, runs: int, seed: int = 0, workers: int = 1,
         progress: Callable[[Campaign, int], None] | None = None,
         crash_at: int | None = None, stop: Callable[[], bool] = lambda: False) -> Campaign:
    """Run executions 0..runs-1 in `workers` processes.  `crash_at`, for
    tests only, makes the worker running that index die as the emulator would.
    When `stop()` turns true (a signal), the workers are ended and the
    campaign holds what they reported so far."""
    ctx = _start_method()
    campaign = Campaign(runs, seed, workers, boundaries(Harness(image, symbol, c)))
    current = [ctx.RawValue("q", -1) for _ in range(workers)]
    done = [ctx.RawValue("q", 0) for _ in range(workers)]
    live: dict[int, _Worker] = {}  # by process sentinel

    def launch(number: int, start: int) -> None:
        if start >= runs:
            return
        current[number].value = -1
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_work, daemon=True, args=(
            image, symbol, c, seed, campaign.span, start, workers, runs, current[number],
            done[number], writer, crash_at, os.getpid()))
        with held():
            proc.start()
        writer.close()
        live[proc.sentinel] = _Worker(number, proc, reader)

    begin = time.perf_counter()
    try:
        for number in range(workers):
            launch(number, number)
        while live and not stop():
            conns = {w.conn: w for w in live.values() if w.conn is not None}
            for ready in wait(list(live) + list(conns), timeout=0.25):
                if ready in conns and not _receive(ready, campaign):
                    conns[ready].conn = None
                elif ready in live:
                    _reap(live.pop(ready), campaign, current, launch, workers, stop)
            campaign.executed = sum(d.value for d in done) + len(campaign.crashes)
            if progress:
                progress(campaign, campaign.executed)
    finally:
        for worker in live.values():
            worker.proc.kill()
        for worker in live.values():
            worker.proc.join()
    campaign.executed = sum(d.value for d in done) + len(campaign.crashes)
    campaign.stopped = campaign.executed < runs
    campaign.seconds = time.perf_counter() - begin
    return campaign


def _receive(conn, campaign: Campaign) -> bool:
    """Take one failure report; False when the worker closed its end."""
    try:
        prop, index, message, small = conn.recv()
    except (EOFError, OSError):
        return False
    known = campaign.failures.get(prop)
    if known is None or index < known.index:
        campaign.failures[prop] = Failure(prop, index, message, Scenario.from_json(small))
    return True


def _reap(worker: _Worker, campaign: Campaign, current, launch, workers: int,
          stop: Callable[[], bool]) -> None:
    """A worker ended: collect its last reports; if it crashed, record the
    scenario it was running and carry on after it.  A worker ended by a
    stop signal (sent to the whole process group) is no crash."""
    while worker.conn is not None and worker.conn.poll() and _receive(worker.conn, campaign):
        pass
    worker.proc.join()
    if worker.proc.exitcode in STOPPED_BY or stop():
        return
    if worker.proc.exitcode != 0:
        index = current[worker.number].value
        if index < 0:
            raise TdxsimError(f"a fuzz worker process failed to start (exit code "
                              f"{worker.proc.exitcode}); its error is printed above")
        campaign.crashes.append(index)
        launch(worker.number, index + workers)


def save(campaign: Campaign, c: Contract, symbol: str, out: Path) -> None:
    """One reproducer file per failing property, one per emulator crash."""
    out.mkdir(parents=True, exist_ok=True)
    for failure in sorted(campaign.failures.values(), key=lambda f: f.id):
        path = out / f"{failure.id}.json"
        path.write_text(json.dumps(reproducer(failure.id, failure.message, c, symbol,
                                              failure.scenario, campaign.seed, failure.index),
                                   indent=2) + "\n")
        campaign.saved.append(path)
    for index in sorted(campaign.crashes):
        path = out / f"crash-{index}.json"
        sc = scenario(c, campaign.seed, index, campaign.span)
        path.write_text(json.dumps(reproducer("emulator-crash", "the CPU emulator crashed the "
                                              "worker process", c, symbol, sc, campaign.seed,
                                              index), indent=2) + "\n")
        campaign.saved.append(path)
