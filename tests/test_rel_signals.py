"""Issue 19, part 2: SIGINT, SIGTERM and SIGHUP end `run`, `check` and
`fuzz` cleanly, and no process outlives tdxsim.

Each test starts tdxsim as a real process in its own session and waits,
with a bound, for the state it needs (signal handlers installed, workers
started, a finding reported) before it signals.  On main before this
change: SIGINT to `run` took effect only at the --timeout and lost the
console output; SIGTERM to `fuzz` left its workers running; SIGINT to
`fuzz` printed no summary."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tdxsim.check import check, load
from tdxsim.toolchain import build

CORPUS = Path(__file__).parent / "check_corpus"
TDXSIM = [sys.executable, "-m", "tdxsim.cli"]
SPIN = """\
    .globl _start
_start:
    lea msg(%rip), %rdi
    call tdx_puts
spin:
    jmp spin
    .data
msg: .asciz "written before the spin\\n"
"""


def wait_for(condition, limit: float, what: str) -> None:
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting {limit} s for {what}")
        time.sleep(0.02)


def catches_sigterm(pid: int) -> bool:
    """tdxsim's handlers are installed: SIGTERM is in the caught mask."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt")), 16)
    return bool(mask >> (signal.SIGTERM - 1) & 1)


def spinning(pid: int, polls: int = 15) -> bool:
    """The process has been runnable for `polls` polls in a row: past the
    build (where it sleeps, waiting for the assembler), running the guest."""
    for _ in range(polls):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state != "R":
            return False
        time.sleep(0.02)
    return True


def group(pgid: int) -> list[int]:
    """Live processes of a process group (zombies excluded)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def children(pid: int) -> list[int]:
    return [p for p in group(pid) if p != pid]


def start(args, tmp_path, **kw) -> subprocess.Popen:
    return subprocess.Popen(TDXSIM + args, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                      (signal.SIGHUP, 129)])
def test_run_stops_within_a_second_with_the_console_so_far(tmp_path, sig, code):
    (tmp_path / "spin.S").write_text(SPIN)
    proc = start(["run", "spin.S", "--timeout", "60"], tmp_path)
    try:
        wait_for(lambda: catches_sigterm(proc.pid), 30, "tdxsim to start")
        wait_for(lambda: spinning(proc.pid), 30, "the guest to print, then spin")
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert took < 1.0, (took, err)
    assert "written before the spin" in out, (out, err)
    assert "interrupted" in err and "Traceback" not in err


def test_sigterm_to_fuzz_leaves_no_process_behind(tmp_path):
    proc = start(["fuzz", str(CORPUS / "seed_good.S"), "--symbol", "__tdx_hypercall",
                  "--abi", "seed", "--runs", "100000000", "--workers", "2", "--quiet"],
                 tmp_path)
    try:
        wait_for(lambda: len(children(proc.pid)) >= 2, 60, "the workers to start")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # the parent only, as `timeout` does
        out, err = proc.communicate(timeout=10)
        wait_for(lambda: not group(proc.pid), 5, "every process of the group to end")
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if group(proc.pid) else None
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in out and "Traceback" not in err


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    proc = start(["fuzz", str(CORPUS / "seed_good.S"), "--symbol", "__tdx_hypercall",
                  "--abi", "seed", "--runs", "100000000", "--workers", "2", "--quiet"],
                 tmp_path)
    try:
        wait_for(lambda: len(children(proc.pid)) >= 2, 60, "the workers to start")
        time.sleep(1.0)  # the workers are past their start-up
        proc.kill()  # SIGKILL: the parent cannot clean up
        proc.wait(timeout=5)
        wait_for(lambda: not group(proc.pid), 5, "the orphaned workers to exit")
    finally:
        if group(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)


def test_sigint_to_fuzz_prints_and_saves_the_findings_so_far(tmp_path):
    proc = start(["fuzz", str(CORPUS / "seed_sti_nop.S"), "--symbol", "__tdx_hypercall",
                  "--abi", "seed", "--runs", "100000000", "--workers", "2", "--out", "found"],
                 tmp_path)
    progress = ""
    try:
        fd = proc.stderr.fileno()
        os.set_blocking(fd, False)

        def found() -> bool:
            nonlocal progress
            try:
                progress += os.read(fd, 65536).decode()
            except BlockingIOError:
                pass
            return ", 1 failing" in progress

        wait_for(found, 60, "the first finding")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = proc.communicate(timeout=10)
        wait_for(lambda: not group(proc.pid), 5, "every process of the group to end")
    finally:
        if group(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "stopped by SIGINT" in out and "FAIL  sti-shadow" in out
    assert (tmp_path / "found" / "sti-shadow.json").is_file()
    assert "Traceback" not in progress + err


def test_check_stops_between_runs():
    """The plan ends after the run during which the stop came."""
    image = build([CORPUS / "seed_good.S"], entry="__tdx_hypercall", with_library=False)
    report = check(image, "__tdx_hypercall", load("seed"), stop=lambda: True)
    assert report.runs == 1
