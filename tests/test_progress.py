"""The progress display (issue 17 item 4): a tqdm bar on a terminal, today's
plain line anywhere else, nothing with --quiet."""
from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import termios

from tdxsim.progress import Progress


def test_not_a_terminal_prints_the_plain_line():
    out = io.StringIO()
    bar = Progress(10, "fuzz", "executions", stream=out)
    bar.update(10, "0 failing properties, 0 emulator crashes")
    bar.close()
    text = out.getvalue()
    assert text.startswith("\rfuzz: 10/10 executions, ")
    assert text.endswith("/s, 0 failing properties, 0 emulator crashes\n")


def test_a_terminal_gets_a_bar():
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    with os.fdopen(slave, "w") as stream:
        bar = Progress(4, "fuzz", "executions", stream=stream)
        for done in range(1, 5):
            bar.update(done, "1 failing properties")
        bar.close()
    chunks = []
    while select.select([master], [], [], 0.5)[0]:
        try:
            chunks.append(os.read(master, 65536))
        except OSError:  # the slave side is closed: all read
            break
    os.close(master)
    text = b"".join(chunks).decode()
    assert "fuzz: 100%|" in text and "4/4" in text and "1 failing properties" in text


def test_quiet_prints_nothing():
    out = io.StringIO()
    bar = Progress(3, "fuzz", "executions", quiet=True, stream=out)
    bar.update(3)
    bar.close()
    assert out.getvalue() == ""
