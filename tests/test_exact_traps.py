"""Exact traps (code_traps.block_traps, every vCPU): each block's
intercepted instructions are trapped before the block first runs, so code
the guest copies or decompresses at run time still raises #VE (spec 8.1:
RDMSR is intercepted, exit reason 31, SDM vol. 3, Appendix C)."""
from __future__ import annotations

from pathlib import Path

from tdxsim import TD
from tdxsim.events import VeRaised

GUEST = Path(__file__).parent / "guests" / "copied_code.S"
EXIT_REASON_RDMSR = 31


def _ves(td):
    result = td.run()
    assert result.reason == "exit", result.describe()
    return result, [(e.rip, e.exit_reason) for e in result.events if isinstance(e, VeRaised)]


def test_rdmsr_in_code_copied_at_run_time_raises_ve():
    td = TD.from_source(GUEST)
    result, ves = _ves(td)
    rdmsr = td.symbol("buffer") + 5  # after `mov $0x1B, %ecx` (5 bytes)
    assert (rdmsr, EXIT_REASON_RDMSR) in ves
    assert [x.name for x in result.exits][:1] == ["RDMSR"]
    assert result.exits[0].exposed[12] == 0x1B


def test_exact_traps_add_only_what_runs():
    """Traps on the intercepted instructions that ran: the copied RDMSR and
    the OUT to the debug-exit port; none on the snippet's RDMSR in the
    image, which never runs from there."""
    td = TD.from_source(GUEST)
    assert not td.vcpu.traps.addresses  # none before anything runs
    _ves(td)
    out = td.symbol("snippet") - 4  # `out %al, $0xF4` and `ud2`, 2 bytes each, precede it
    assert td.vcpu.traps.addresses == {td.symbol("buffer") + 5, out}
