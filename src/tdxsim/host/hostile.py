"""The hostile host: a seeded adversary on top of the KVM rules.

Every exit is first served as KVM would serve it (devices, MSRs, conversions
and quotes really happen).  The adversary then lies, within what a real host
can do: it writes arbitrary values into every register the guest exposed
(the module copies back only those, spec 3.4), returns unexpected statuses,
answers MapGPA with RETRY storms, stalls without progress (as user space
refusing with EAGAIN may, spec 13.1) and resume GPAs outside the range, wakes a
halted vCPU at once, resumes a TD that reported a fatal error, scribbles over
the shared GetQuote buffer, holds the TD's RTMR lock (OPERAND_BUSY from
TDG.MR.REPORT/RTMR.EXTEND, spec 13.2), and injects interrupts at the worst
moments: the vectors the guest armed (timer, event notify), vector 0x80, any
other vector 32-255 and NMIs (_interrupt).  It never sees unexposed registers and
reaches memory only through HostMemory, which refuses private pages.

One random.Random(seed) drives every choice, so a seed names one run.
"""
from __future__ import annotations

import random
import struct

from .. import abi
from ..abi import SubFn, VmcallStatus
from ..devices.lapic import LVT_MASKED, LVT_VECTOR_MASK, NMI
from ..errors import HostError
from ..exits import FatalError, Halt, VmExit, VmResume

STATUSES = (VmcallStatus.SUCCESS, VmcallStatus.RETRY, VmcallStatus.INVALID_OPERAND,
            VmcallStatus.GPA_INUSE, VmcallStatus.ALIGN_ERROR, VmcallStatus.SUBFUNC_UNSUPPORTED)
DELAYS_NS = (0, 1, 2, 3, 10, 100, 10_000)
EDGES = (0, 1, abi.MASK64, 1 << 63, 1 << 63 | 1, 0xBAD0_0000_0000_0BAD)


class Adversary:
    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.stalls = 0  # MapGPA calls still to answer RETRY without progress

    def value(self, near: int = 0) -> int:
        """A register value chosen to hurt: edges, canaries, near misses."""
        bits = self.rng.getrandbits(64)
        pick = bits % 9
        if pick < len(EDGES):
            return EDGES[pick]
        if pick == 6:
            return self.rng.getrandbits(64)
        if pick == 7:
            return bits >> 52  # a small number
        return (near + (bits >> 8) % 5 * abi.PAGE_SIZE - 2 * abi.PAGE_SIZE) & abi.MASK64

    def holds_td_lock(self) -> bool:
        """The host runs a SEAMCALL on the TD just as the guest asks for a
        report or an RTMR extension: the module answers OPERAND_BUSY."""
        return self.rng.random() < 0.2

    def twist(self, host, exit: VmExit, resume: VmResume) -> VmResume:
        rng = self.rng
        gprs = dict(resume.gprs)
        exposed = exit.gpr_select & ~(1 << abi.R10)
        for i in range(abi.RDX, 16):
            if exposed >> i & 1 and (i not in gprs or rng.random() < 0.25):
                gprs[i] = self.value(exit.gprs[i])
        honest = gprs.get(abi.R10, exit.r10)
        ghci = exit.r10 == 0
        if ghci and exit.r11 == SubFn.MAP_GPA and (self.stalls or rng.random() < 0.1):
            # user space refusing every step with EAGAIN (spec 13.1): RETRY
            # with no progress, for several calls in a row
            self.stalls = self.stalls - 1 if self.stalls else rng.randrange(1, 6)
            gprs[abi.R10], gprs[abi.R11] = VmcallStatus.RETRY, exit.r12
        elif ghci and exit.r11 == SubFn.MAP_GPA and rng.random() < 0.35:
            gprs[abi.R10] = VmcallStatus.RETRY
            gprs[abi.R11] = self._resume_gpa(exit, gprs.get(abi.R11, exit.r12))
        elif rng.random() < 0.25:
            gprs[abi.R10] = rng.choice(STATUSES) if ghci else abi.kvm_error(rng.randrange(1, 100))
        else:
            gprs[abi.R10] = honest
        xmms = {j: rng.getrandbits(128) for j in range(16) if exit.xmm_select >> j & 1}
        action = self._action(resume.action)
        if ghci and exit.r11 == SubFn.GET_QUOTE and honest == VmcallStatus.SUCCESS:
            self._spoil_quote(host, exit)
        self._interrupt(host, exit.vcpu, halting=isinstance(action, Halt))
        return VmResume(gprs=gprs, xmms=xmms, action=action)

    def _resume_gpa(self, exit: VmExit, honest: int) -> int:
        start, end = exit.r12, exit.r12 + exit.r13
        return self.rng.choice((start, start, start - abi.PAGE_SIZE, end, end + abi.PAGE_SIZE,
                                honest, 0, self.value(start))) & abi.MASK64

    def _action(self, action):
        """A host may resume a vCPU whenever it likes: a halt ends at once,
        a fatal error is ignored."""
        if isinstance(action, (Halt, FatalError)) and self.rng.random() < 0.3:
            return None
        return action

    def _spoil_quote(self, host, exit: VmExit) -> None:
        """Overwrite the shared GetQuote header now or around completion."""
        rng = self.rng
        if rng.random() >= 0.3:
            return
        gpa = exit.r12 & ~abi.shared_bit(host.gpaw)
        header = struct.pack(abi.QUOTE_HEADER, rng.choice((1, 0, abi.MASK64)),
                             rng.choice((0, abi.QUOTE_STATUS_ERROR, self.value())),
                             rng.getrandbits(32), rng.choice((0, 64, 0xFFFF_FFFF,
                                                              rng.getrandbits(32))))
        delay = 0 if host.quote_service is None else host.quote_service.delay_ns
        host.at(host.clock.now() + rng.choice((0, delay, delay + 1)),
                lambda: _write(host, gpa, header))

    def _interrupt(self, host, vcpu: int, halting: bool) -> None:
        """Mostly while the vCPU halts (the host sees that; it cannot see IF),
        sometimes at a random later instruction boundary: a vector the guest
        armed (a wakeup, an extra tick), the syscall vector 0x80 (Heckler),
        any other vector 32-255, armed or not, or an NMI (spec 13.1, 13.4
        B14).  Never an exception 0-31: posted interrupts cannot carry one.
        With several vCPUs the target is any of them (the exiting one or
        another); with one, no draw is spent on it, so seeds keep their runs."""
        rng = self.rng
        if rng.random() >= (0.5 if halting else 0.02):
            return
        delay = rng.choice(DELAYS_NS) if rng.random() < 0.7 else rng.randrange(100_000)
        if len(host.vcpus) > 1:
            vcpu = rng.randrange(len(host.vcpus))
        lapic = host.vcpus[vcpu].lapic
        lapic.schedule(host.clock.now() + delay, self._vector(host, lapic))

    def _vector(self, host, lapic) -> int:
        rng = self.rng
        lvt = lapic.lvt_timer
        timer = None if lvt & LVT_MASKED else lvt & LVT_VECTOR_MASK
        armed = sorted({v for v in (host.notify_vector, timer) if v is not None})
        pick = rng.random()
        if armed and pick < 0.4:
            return rng.choice(armed)
        if pick < 0.6:
            return abi.INT80_VECTOR
        if pick < 0.85:
            return rng.choice(abi.EXTERNAL_VECTORS)
        return NMI


def _write(host, gpa: int, data: bytes) -> None:
    try:
        host.memory.write(gpa, data)
    except HostError:
        pass  # the guest made the page private again: out of the host's reach
