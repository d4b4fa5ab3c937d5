"""`tdxsim check --prove`: every property proven for all inputs, or a
counterexample that fails when replayed concretely.

world     the symbols a proof starts from (secrets, pointers, inputs, flags)
engine    symbolic execution of one path on Triton, with the TDCALL modelled
          as the module does it (spec 3.2-3.4)
explore   every feasible path, by re-execution with solver-chosen values
queries   each property of check/properties.py as a question about one path
verdict   proven / counterexample (replayed concretely) / unknown
report    text, JSON, JUnit and SARIF output

Triton comes with the optional extra: pip install 'tdxsim[prove]'.
"""
from __future__ import annotations

from ..errors import TdxsimError

EXTRA = "pip install 'tdxsim[prove]'"


def require() -> None:
    """The engine, or a one-line error naming the extra (exit 2)."""
    try:
        from triton import TritonContext  # noqa: F401  (the library is named triton-library)
    except ImportError:
        raise TdxsimError(f"--prove needs the Triton symbolic engine: {EXTRA}") from None


def prove(*args, **kw):
    """`verdict.prove`, once the engine is known to be there."""
    require()
    from .verdict import prove as run
    return run(*args, **kw)
