"""Command line: `tdxsim run [GUEST ...]`, `tdxsim bench`, `tdxsim check`, `tdxsim fuzz`.

Exit codes: the guest's exit code for a clean debug exit; 1 when the guest
crashed, reported a fatal error, halted forever or ran away; 2 for bad input.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from . import image, limits, signals, toolchain, traceout
from .toolchain.options import BuildOptions, add_arguments as add_build_arguments
from .check.cli import add_commands as add_check_commands
from .errors import TdxsimError
from .host import PERSONALITIES, Host
from .module import TdConfig
from .td import DEFAULT_MAX_INSNS, DEFAULT_TIMEOUT, TD, MiB
from .trace import render_all

BUNDLED = {
    "demo": "direct TDVMCALLs: greeting, CPUID leaf 0 and an MSR on the serial console",
    "idle": "timer interrupts and tdx_safe_halt: an idle loop of 5 ticks in virtual time",
    "legacy": "the demo with plain out/cpuid/rdmsr/hlt, turned into TDVMCALLs by a #VE handler",
    "quote": "MapGPA a buffer to shared, GetQuote through it, print the quote header",
    "heckler": "Heckler (CVE-2024-25744): a naive int 0x80 gate reached from outside, the defended one not",
    "early-init": "Linux's boot-time TDCALLs: VP.INFO, NOTIFY_ENABLES, SEPT #VE and TD_CTLS setup",
    "smp": "several vCPUs (--vcpus N): the BSP wakes each AP through the ACPI MP-wakeup mailbox, "
           "each AP reports by IPI",
}


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    try:
        if text[-1].lower() in units:
            return int(text[:-1], 0) * units[text[-1].lower()]
        return int(text, 0)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64M)") from None


def load_td(guests: list[str], args) -> TD:
    """A TD from a bundled guest name, sources and objects, or one ELF executable."""
    vcpus = limits.vcpus(args.vcpus)
    if args.seed is not None and args.host != "hostile" and vcpus == 1:
        raise TdxsimError(f"--seed chooses the hostile host's lies and the interleaving of "
                          f"several vCPUs; the '{args.host}' host with one vCPU has neither")
    hostile_seed = args.seed if args.host == "hostile" else None
    kw = dict(memory=args.memory, host=Host(args.host, seed=hostile_seed, vcpus=vcpus),
              config=TdConfig(no_rbp_mod=not args.no_rbp_mod_off, vcpus=vcpus),
              seed=args.seed or 0)
    guests, library = guests or ["demo"], not args.no_library
    if len(guests) == 1 and guests[0] in BUNDLED and not Path(guests[0]).exists():
        guests, library = [str(image.bundled_guest(guests[0]))], True
    for g in guests:
        if not Path(g).exists():
            raise TdxsimError(f"no such guest file: {g} (bundled guests: {', '.join(BUNDLED)})")
    return TD(toolchain.load_guest(guests, args.entry, library,
                                   BuildOptions.from_args(args)), **kw)


def load_firmware(args):
    """A TD booting TDVF firmware (spec 14).  NO_RBP_MOD is off: TDVF up to
    edk2 2022.11 exposes RBP in every TDG.VP.VMCALL (README, firmware)."""
    from .firmware.boot import DEFAULT_MEMORY, FirmwareTD
    if args.guest:
        raise TdxsimError("--firmware runs the firmware alone: give no guest files with it")
    if args.vcpus != 1:
        raise TdxsimError("--firmware runs one vCPU (the firmware's APs are not modelled yet)")
    return FirmwareTD.from_path(args.firmware, memory=args.memory or DEFAULT_MEMORY,
                                host=Host(args.host, seed=args.seed),
                                config=TdConfig(no_rbp_mod=False))


def cmd_run(args) -> int:
    limits.timeout(args.timeout)
    limits.budget(args.max_insns)
    if args.firmware:
        return _run_firmware(args)
    if args.memory is None:
        args.memory = 64 * MiB
    with signals.watch() as caught:
        td = load_td(args.guest, args)
        caught.on_signal(td.interrupt)
        trace = _trace_file(args)
        result = td.run(max_insns=args.max_insns, timeout=args.timeout,
                        keep_exits=args.trace, on_event=trace)
    if trace is not None:
        trace.close(result.time_ns)
    sys.stdout.write(result.console)
    if result.console and not result.console.endswith("\n"):
        sys.stdout.write("\n")
    if args.trace:
        for line in render_all(result.events):
            print(line)
    sys.stdout.flush()
    if result.reason == "interrupted":
        print(f"tdxsim: {caught.name or 'signal'}: {result.message}", file=sys.stderr)
        return caught.exit_code if caught.number else 130
    if result.reason == "exit":
        if args.trace or result.exit_code:
            print(f"tdxsim: {result.message}", file=sys.stderr)
        return result.exit_code & 0xFF
    print(f"tdxsim: {result.describe()}", file=sys.stderr)
    return 1


def _trace_file(args) -> traceout.TraceFile | None:
    """--trace-out: the file the run streams its events to."""
    if not args.trace_out:
        return None
    return traceout.TraceFile(args.trace_out,
                              traceout.format_for(args.trace_out, args.trace_format))


def _run_firmware(args) -> int:
    from .firmware.summary import Tally, render
    with signals.watch() as caught:
        td = load_firmware(args)
        caught.on_signal(td.interrupt)
        tally, trace = Tally(), _trace_file(args)
        started = time.monotonic()
        result = td.run(max_insns=args.max_insns, timeout=args.timeout, keep_exits=args.trace,
                        on_event=tally if trace is None else _both(tally, trace))
    if trace is not None:
        trace.close(result.time_ns)
    sys.stdout.write(result.console)
    if result.console and not result.console.endswith("\n"):
        sys.stdout.write("\n")
    if args.trace:
        for line in render_all(result.events):
            print(line)
    for line in render(td, result, time.monotonic() - started, tally):
        print(line, file=sys.stderr)
    if result.reason not in ("budget", "timeout", "exit"):
        print(f"tdxsim: {result.describe()}", file=sys.stderr)
    return 0 if result.reason == "exit" and not result.exit_code else 1


def _both(first, second):
    def both(event) -> None:
        first(event)
        second(event)
    return both


def cmd_bench(args) -> int:
    from .bench import main as bench_main
    return bench_main(json_output=args.json, show_profile=args.profile, compare=args.compare,
                      long=args.long)


def cmd_flags(args) -> int:
    """pkg-config style: what building a C guest by hand needs."""
    from .toolchain import sdk
    words = {"cflags": sdk.cflags, "ldflags": sdk.ldflags,
             "include": lambda: [str(sdk.include_dir())]}[args.command]()
    print(" ".join(shlex.quote(w) for w in words))
    return 0


def version() -> str:
    from . import __version__, native
    hooks = "compiled hooks" if native.library() else "pure Python (no compiled hooks)"
    return f"tdxsim {__version__} ({hooks})"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tdxsim", description="Run and check Intel TDX guest "
                                "code without TDX hardware.")
    p.add_argument("--version", action="version", version=version())
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a guest until it exits",
                         description="Run a guest: bundled names (" + ", ".join(
                             f"{k}: {v}" for k, v in BUNDLED.items()) +
                         "), GNU as sources and objects, or a static x86-64 ELF.")
    run.add_argument("guest", nargs="*", help="bundled guest name, sources (.S .s .asm .nasm "
                     ".c), .o objects or one ELF executable")
    run.add_argument("--trace", action="store_true", help="print one line per TD exit, interrupt, timer and halt")
    run.add_argument("--trace-out", metavar="FILE", help="stream the trace to FILE while the "
                     "guest runs (format from --trace-format, else .json: chrome, .jsonl: jsonl, "
                     "other: text)")
    run.add_argument("--trace-format", choices=traceout.FORMATS,
                     help="text (the --trace lines), jsonl (one JSON object per event) or "
                     "chrome (trace-event JSON for Perfetto UI / chrome://tracing)")
    run.add_argument("--host", choices=sorted(PERSONALITIES), default="kvm",
                     help="host personality (default: kvm)")
    run.add_argument("--seed", type=int, default=None,
                     help="seed of the hostile host's choices and of the interleaving of "
                     "several vCPUs (default 0)")
    run.add_argument("--vcpus", type=int, default=1,
                     help=f"vCPUs of the TD, 1..{limits.MAX_VCPUS} (default 1); each starts "
                     "at the entry point with its index in RSI")
    run.add_argument("--entry", default="_start", type=limits.symbol_name,
                     help="entry symbol (default: _start)")
    run.add_argument("--memory", type=_size, default=None,
                     help="guest RAM (default 64M; 256M with --firmware)")
    run.add_argument("--firmware", metavar="FILE.fd",
                     help="boot TDX firmware (TDVF, e.g. /usr/share/ovmf/OVMF.fd) as the TD")
    run.add_argument("--max-insns", type=int, default=DEFAULT_MAX_INSNS,
                     help=f"instruction budget (default {DEFAULT_MAX_INSNS})")
    run.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                     help=f"wall-clock limit in seconds (default {DEFAULT_TIMEOUT:g})")
    run.add_argument("--no-library", action="store_true",
                     help="do not link tdxsim's guest library (tdcall.S, ghci.S, ..., irq.S, mp.S)")
    run.add_argument("--no-rbp-mod-off", action="store_true",
                     help="create the TD without NO_RBP_MOD (TDX module 1.0 behaviour)")
    add_build_arguments(run)
    run.set_defaults(func=cmd_run)
    bench = sub.add_parser("bench", help="measure hypercall and guest-code speed")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.add_argument("--profile", action="store_true",
                       help="also profile the Python TDVMCALL path and the checker "
                            "(where the time goes)")
    bench.add_argument("--compare", metavar="OLD.json",
                       help="print each row's change against a saved `tdxsim bench --json`")
    bench.add_argument("--long", action="store_true",
                       help="stream a 10 M-exit run through --trace-out (about 4 min)")
    bench.set_defaults(func=cmd_bench)
    add_check_commands(sub)  # tdxsim check, tdxsim fuzz
    for name, what in (("cflags", "C compiler flags for a C guest (with -I of tdx.h)"),
                       ("ldflags", "linker flags for a C guest: the linker script, the "
                                   "C runtime and the guest library"),
                       ("include", "the directory holding tdx.h")):
        sub.add_parser(name, help=what, description=f"Print {what}.").set_defaults(
            func=cmd_flags)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "prove", False):  # `tdxsim check --prove`: prove/, above check/
        from .prove.cli import cmd_prove
        args.func = cmd_prove
    try:
        return args.func(args)
    except TdxsimError as exc:
        print(f"tdxsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
