"""Progress of long work (fuzz campaigns) on stderr.

On a terminal: a tqdm bar (count, rate, time left, and the work's own
status).  Anywhere else (CI logs, pipes, files): one plain line rewritten
with a carriage return at most twice a second, as tdxsim always printed,
so logs stay small and greppable.
"""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str, unit: str, quiet: bool = False, stream=None):
        self.total, self.label, self.unit, self.quiet = total, label, unit, quiet
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.shown = (0.0, -1)  # when, and at which count, the line was last drawn
        self.bar = None
        if not quiet and _is_terminal(self.stream):
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=label, unit=f" {unit}", file=self.stream,
                            dynamic_ncols=True, mininterval=0.2, leave=True)

    def update(self, done: int, status: str = "") -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(done - self.bar.n)
            return
        now = time.perf_counter()
        if done == self.shown[1] or (now - self.shown[0] < 0.5 and done != self.total):
            return
        self.shown = (now, done)
        rate = done / max(now - self.start, 1e-9)
        tail = f", {status}" if status else ""
        print(f"\r{self.label}: {done}/{self.total} {self.unit}, {rate:,.0f}/s{tail}", end="",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif not self.quiet:
            print(file=self.stream)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
