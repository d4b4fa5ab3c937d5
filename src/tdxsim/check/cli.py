"""`tdxsim check` and `tdxsim fuzz` on the command line.

Exit codes: 0 every property holds, 1 a property fails (or fuzzing found
something), 2 usage or input error (raised as TdxsimError, printed by
tdxsim.cli as one paragraph).
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path

from .. import image as image_mod, limits, signals
from ..errors import TdxsimError
from ..progress import Progress
from ..toolchain import load_guest
from ..toolchain.options import BuildOptions, add_arguments as add_build_arguments
from .builtin import BUILTIN
from .schema import load
from .fuzz import fuzz, save
from .properties import IDS
from .report import RENDERERS
from .runner import check
from .scenario import Scenario, reproducer


def load_stub(paths: list[str], symbol: str, library: bool,
              options: BuildOptions | None = None) -> image_mod.Image:
    """Sources (.S .s .asm .nasm .c), relocatable objects (linked here) or one ELF executable."""
    for p in paths:
        if not Path(p).is_file():
            raise TdxsimError(f"no such stub file: {p}")
    image = load_guest(paths, symbol, library, options)
    if symbol not in image.symbols:
        known = ", ".join(sorted(n for n in image.symbols if not n.startswith("."))[:12])
        raise TdxsimError(f"{', '.join(paths)} has no symbol '{symbol}' (it defines: "
                          f"{known or 'no symbols'}); pass the routine's name with --symbol")
    return image


MAX_REPLAY_BYTES = 1 << 20  # a reproducer is a few hundred bytes


def load_replay(path: str) -> Scenario:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_REPLAY_BYTES + 1)
        if len(raw) > MAX_REPLAY_BYTES:
            raise TdxsimError(f"the reproducer {path} is larger than {MAX_REPLAY_BYTES} bytes; "
                              "a reproducer is one small JSON object")
        data = json.loads(raw.decode())
    except OSError as exc:
        raise TdxsimError(f"cannot read the reproducer {path}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:  # JSON or UTF-8 errors; nesting too deep
        raise TdxsimError(f"the reproducer {path} is not JSON: {exc}") from None
    if isinstance(data, dict) and "scenario" in data:
        data = data["scenario"]
    return Scenario.from_json(data)


def _common(p) -> None:
    p.add_argument("stub", nargs="+", help="the stub: .S/.s source, .o objects or an ELF "
                   "executable")
    p.add_argument("--symbol", required=True, type=limits.symbol_name,
                   help="the routine to check")
    p.add_argument("--abi", required=True, metavar="ABI",
                   help=f"calling contract: {', '.join(BUILTIN)}, or a contract file (.toml)")
    p.add_argument("--library", action="store_true",
                   help="also link tdxsim's guest library (if the stub calls into it)")
    add_build_arguments(p)


def add_commands(sub) -> None:
    p = sub.add_parser("check", help="check a hypercall stub against a calling contract",
                       description="Run a TDG.VP.VMCALL stub under a marker host and judge "
                       "its properties: " + ", ".join(IDS) + ".")
    _common(p)
    p.add_argument("--format", choices=sorted(RENDERERS), default="text")
    p.add_argument("--replay", metavar="FILE", help="run only the scenario in FILE "
                   "(a reproducer from a report, --save or fuzz)")
    p.add_argument("--save", metavar="DIR", help="write one reproducer file per failure")
    p.add_argument("--prove", action="store_true", help="decide every property for all inputs "
                   "by symbolic execution (needs the extra: pip install 'tdxsim[prove]')")
    p.set_defaults(func=cmd_check)

    f = sub.add_parser("fuzz", help="fuzz a hypercall stub: random inputs, host answers, "
                       "module failures and interrupt timings")
    _common(f)
    f.add_argument("--runs", type=int, default=10_000, help="executions (default 10000)")
    f.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    f.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: one per CPU)")
    f.add_argument("--out", default="tdxsim-fuzz", metavar="DIR",
                   help="where reproducers are saved (default tdxsim-fuzz)")
    f.add_argument("--quiet", action="store_true", help="no progress line")
    f.set_defaults(func=cmd_fuzz)


@contextmanager
def _writing(directory: str):
    try:
        yield
    except OSError as exc:
        raise TdxsimError(f"cannot write reproducers to {directory}: {exc.strerror or exc}") \
            from None


def replay_hint(args) -> str:
    words = ["tdxsim", "check", *args.stub, "--symbol", args.symbol, "--abi", args.abi]
    words += ["--library"] if args.library else []
    words += BuildOptions.from_args(args).argv()
    return " ".join(shlex.quote(w) for w in words) + " --replay FILE"


def cmd_check(args) -> int:
    """`tdxsim check` without --prove (cli.py sends --prove to prove/cli.py)."""
    with signals.watch() as caught:
        contract = load(args.abi)
        image = load_stub(args.stub, args.symbol, args.library, BuildOptions.from_args(args))
        replay = load_replay(args.replay) if args.replay else None
        report = check(image, args.symbol, contract, " ".join(args.stub), replay,
                       stop=lambda: caught.number is not None)
    if args.save:
        with _writing(args.save):
            out = Path(args.save)
            out.mkdir(parents=True, exist_ok=True)
            for r in report.failed:
                data = reproducer(r.id, r.message, contract, args.symbol, r.observation.scenario)
                (out / f"{r.id}.json").write_text(json.dumps(data, indent=2) + "\n")
    sys.stdout.write(RENDERERS[args.format](report, replay_hint(args)))
    if caught.number:
        print(f"tdxsim check: stopped by {caught.name} after {report.runs} runs of the plan; "
              "the verdicts above cover only those runs", file=sys.stderr)
        return caught.exit_code
    return 1 if report.failed else 0


def cmd_fuzz(args) -> int:
    limits.count(args.runs, "--runs", 10 ** 12)
    limits.count(args.workers, "--workers", limits.MAX_WORKERS)
    bar = Progress(args.runs, "fuzz", "executions", quiet=args.quiet)

    def progress(campaign, executed: int) -> None:
        bar.update(executed, f"{len(campaign.failures)} failing properties, "
                             f"{len(campaign.crashes)} emulator crashes")

    with signals.watch() as caught:
        contract = load(args.abi)
        image = load_stub(args.stub, args.symbol, args.library, BuildOptions.from_args(args))
        campaign = fuzz(image, args.symbol, contract, args.runs, args.seed, args.workers,
                        progress, stop=lambda: caught.number is not None)
    bar.close()
    with _writing(args.out):
        save(campaign, contract, args.symbol, Path(args.out))
    stopped = f" (stopped by {caught.name})" if caught.number else ""
    print(f"tdxsim fuzz: {args.symbol} in {' '.join(args.stub)}, contract {contract.name}, "
          f"seed {args.seed}: {campaign.executed} of {args.runs} executions{stopped}")
    for f in sorted(campaign.failures.values(), key=lambda f: f.id):
        print(f"  FAIL  {f.id:<14} {f.message}\n        first at execution {f.index}; "
              f"minimised reproducer {Path(args.out) / (f.id + '.json')}")
    for index in campaign.crashes:
        print(f"  CRASH execution {index} killed its worker (emulator crash); "
              f"reproducer {Path(args.out) / f'crash-{index}.json'}")
    if not campaign.failures and not campaign.crashes:
        print("  no property failed")
    else:
        print(f"replay one with: {replay_hint(args)}")
    if caught.number:
        return caught.exit_code
    return 1 if campaign.failures or campaign.crashes else 0
