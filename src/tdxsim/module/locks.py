"""TD-scope locks a TDCALL may find held (spec 13.2; [M-api] tdg_mr_report.c,
tdg_mr_rtmr_extend.c).

TDG.MR.REPORT takes the TDCS RTMR lock shared and TDG.MR.RTMR.EXTEND takes
it exclusive; when another vCPU or the host (a SEAMCALL on the TD) holds it,
the leaf answers TDX_OPERAND_BUSY with operand id OPERAND_ID_RTMR and does
nothing else.  Linux maps that status to -EBUSY.  tdxsim has one vCPU, so the
lock is held only when someone says so: `held_for` counts the coming
acquisitions that find it held (a module option), and `contender`, when given,
is asked at every acquisition (the hostile host holding the TD's lock).
"""
from __future__ import annotations

from typing import Callable

from .. import abi


class TdLock:
    def __init__(self, operand: int, contender: Callable[[], bool] | None = None):
        self.operand = operand  # the operand id a BUSY status names
        self.held_for = 0
        self.contender = contender

    def busy_status(self) -> int:
        """OPERAND_BUSY | operand when the lock is held now, else 0."""
        if self.held_for:
            self.held_for -= 1
            return abi.Status.OPERAND_BUSY | self.operand
        if self.contender is not None and self.contender():
            return abi.Status.OPERAND_BUSY | self.operand
        return abi.Status.SUCCESS
