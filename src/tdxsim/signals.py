"""SIGINT, SIGTERM and SIGHUP end a command cleanly: what it did so far is
reported and the exit code is 128 + the signal number (130, 143, 129).

A Python signal handler runs only when the main thread runs Python code,
and a guest slice runs in C inside Unicorn for as long as its budget.  So
the handler only records the signal, and a watcher thread woken by
`signal.set_wakeup_fd` calls the command's stop function at once, and again
every few milliseconds until the command has ended (a stop that lands
between two slices would otherwise be lost).  A second signal gets the
default behaviour: it ends tdxsim at once.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REPEAT = 0.02  # seconds between repeated stop requests
WATCHER = "tdxsim-signals"  # the watcher thread's name


class Watch:
    """The signal that arrived (number, None before) and what to call then."""

    def __init__(self) -> None:
        self.number: int | None = None
        self._stop: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def on_signal(self, stop: Callable[[], None]) -> None:
        """Call `stop` when a signal comes, or now if one already came."""
        with self._lock:
            self._stop = stop
        if self.number is not None:
            stop()

    def fire(self) -> None:
        with self._lock:
            stop = self._stop
        if stop is not None:
            stop()

    @property
    def name(self) -> str:
        return signal.Signals(self.number).name if self.number else ""

    @property
    def exit_code(self) -> int:
        return 128 + (self.number or 0)


@contextmanager
def watch() -> Iterator[Watch]:
    """Catch the stop signals for the duration of a command.  Outside the
    main thread (where signals cannot be caught) the watch never fires."""
    state = Watch()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    ended = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def handler(number, _frame) -> None:
        if state.number is None:
            state.number = number
            for sig, old in previous.items():  # a second signal ends tdxsim at once
                signal.signal(sig, old if old is not None else signal.SIG_DFL)

    def watcher() -> None:
        if not os.read(read_fd, 1):  # the write end closed: the command ended
            return
        while not ended.is_set():
            state.fire()
            ended.wait(REPEAT)

    thread = threading.Thread(target=watcher, name=WATCHER, daemon=True)
    thread.start()
    old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield state
    finally:
        ended.set()
        if state.number is None:
            for sig, old in previous.items():
                signal.signal(sig, old if old is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(old_fd)
        os.close(write_fd)
        thread.join()
        os.close(read_fd)


@contextmanager
def held() -> Iterator[None]:
    """Ignore the stop signals while a worker process starts: it inherits
    them ignored (an ignored signal stays ignored across exec, a blocked one
    does not survive multiprocessing's spawn), so a signal sent to the
    process group while it imports tdxsim cannot kill it with a traceback;
    worker_setup() then decides.  The parent's own window is the few
    milliseconds of the spawn; its handlers come back right after."""
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def worker_setup(parent: int) -> None:
    """In a worker process: leave SIGINT to the parent (a terminal sends it
    to the whole process group; the parent ends the workers itself), let
    SIGTERM and SIGHUP end it, and exit as soon as the parent is gone, so
    that no worker outlives it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)  # forked: the parent's watcher pipe is the parent's
    faulthandler.disable()  # forked from a process that dumps tracebacks (pytest): the
    # parent reports a worker's crash itself, as it did for spawned workers
    try:  # Linux: the kernel kills the worker when its parent dies
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL = 0.5  # seconds; where PR_SET_PDEATHSIG is missing


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL)
        if os.getppid() != parent:
            os._exit(1)
