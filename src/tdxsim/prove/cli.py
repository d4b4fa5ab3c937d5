"""`tdxsim check --prove` on the command line (the check command's flag).

Exit codes: 0 every property proven, 1 a counterexample, 3 some property
unknown and none refuted, 2 usage or input error (one line naming the
extra when the engine is not installed).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..check import load
from ..check.cli import load_stub, replay_hint
from ..check.scenario import reproducer
from ..errors import TdxsimError
from ..toolchain.options import BuildOptions
from . import prove, require


def cmd_prove(args) -> int:
    require()
    from .report import RENDERERS, exit_code
    if args.replay:
        raise TdxsimError("--prove and --replay do not go together: --replay runs one "
                          "scenario concretely, for example a counterexample of --prove")
    if args.format not in RENDERERS:
        raise TdxsimError(f"--prove writes {', '.join(sorted(RENDERERS))}, not {args.format}")
    contract = load(args.abi)
    image = load_stub(args.stub, args.symbol, args.library, BuildOptions.from_args(args))
    proof = prove(image, args.symbol, contract, " ".join(args.stub))
    if args.save:
        try:
            out = Path(args.save)
            out.mkdir(parents=True, exist_ok=True)
            for v in proof.counterexamples:
                data = reproducer(v.id, v.message, contract, args.symbol,
                                  v.result.observation.scenario)
                (out / f"{v.id}.json").write_text(json.dumps(data, indent=2) + "\n")
        except OSError as exc:
            raise TdxsimError(f"cannot write reproducers to {args.save}: "
                              f"{exc.strerror or exc}") from None
    sys.stdout.write(RENDERERS[args.format](proof, replay_hint(args)))
    return exit_code(proof)
