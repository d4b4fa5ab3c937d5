"""What every leaf handler shares."""
from __future__ import annotations

from .. import abi


def complete(regs, status: int, outputs: dict[int, int] | None = None) -> None:
    """Finish a TDCALL with a status: RAX = status, RIP past the instruction."""
    writes = {abi.RAX: status}
    if outputs:
        writes.update(outputs)
    regs.set_gprs(writes)
    regs.rip = regs.rip + abi.TDCALL_LEN
    return None
