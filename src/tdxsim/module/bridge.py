"""The host bridge: one Python call per exit for a handler the compiled
rules do not serve (a handler the user replaced or added, a device written
in Python, the hostile host).

module/vmcall.c applies the module's rules in C (RCX checks, the host's
view, charging the exit), and for an exit the host's C rules decline it
calls `VmcallBridge.serve` once with the view in `struct tdxsim_module`;
this asks the host, as vmcall.handle does, and writes the reply back for C
to copy into the selected registers and record.  Outcomes C cannot finish
alone go back to the TD through `outcome(action, error)`: a host action
(halt, exit, fatal error; recorded here, since the record carries it) or an
exception, either of which stops the vCPU at the TDCALL as the Python path
does, except a halt that ends at once (one vCPU, R12 = 0, a deliverable
vector pending): C records that one as it records host/halt.c's (the exit,
`Halted`, `Woke`), and the vCPU goes on when nothing else needs the run
loop (vcpu/tdcall.c decides).  The one difference from
vmcall.handle, which moves RIP first: while
the handler runs, the vCPU's RIP still points at the TDCALL (handlers see
only the VmExit and the host, not the vCPU).
"""
from __future__ import annotations

import ctypes
from struct import Struct
from typing import Callable

from .. import abi, native
from ..events import VmcallRecord
from ..exits import VmExit

_EXIT = Struct("<18Q")  # bridge_time_ns, bridge_rip, bridge_view[16]
_EXIT_OFFSET = native.Module.bridge_time_ns.offset
_NO_XMMS = (0,) * 16
_SERVED = native.VMCALL_COMPLETE | native.VMCALL_RECORD
_WOKE_WORD = 17  # bridge_reply.woke
_new_exit = object.__new__


class VmcallBridge:
    def __init__(self, module,
                 outcome: Callable[[object, Exception | None], int | None] | None = None,
                 stale: Callable[[], bool] = lambda: False):
        """outcome(action, error): a host action or an exception, for the
        run loop (None: no run loop, no bridge), which answers the vector
        that ends a halt at once, else None; stale(): the vCPU must stop
        after this TDCALL for what only Python sees (translated code went
        stale); vcpu/tdcall.c ends the slice itself for a timer now due
        inside it, as after the calls C serves."""
        self.module = module
        # bridge_reply (mask, 16 GPRs, woke) as 18 words of module.fast's memory
        reply = ctypes.addressof(module.fast) + native.Module.bridge_reply.offset
        self._reply = memoryview((ctypes.c_uint64 * 18).from_address(reply)).cast("B").cast("Q")
        self.function = native.BRIDGE(self.serve)  # kept alive while C may call it
        self.address = ctypes.cast(self.function, native.ptr).value
        self.outcome, self.stale = outcome, stale

    def serve(self) -> int:
        fields = _EXIT.unpack_from(self.module.fast, _EXIT_OFFSET)
        time_ns, rip, view = fields[0], fields[1], fields[2:]
        select = view[abi.RCX] & abi.GPR_SELECT_MASK
        exit = _new_exit(VmExit)  # VmExit(select, 0, view, _NO_XMMS, time_ns, vCPU), less its cost
        exit.__dict__.update(gpr_select=select, xmm_select=0, gprs=view, xmms=_NO_XMMS,
                             time_ns=time_ns, vcpu=self.module.vp.index)
        reply, mask = self._reply, 0
        try:
            resume = self.module.host.handle(exit)
            for i, value in resume.gprs.items():  # the selected ones, as vmcall.handle takes
                if select >> i & 1:
                    reply[i + 1] = value & abi.MASK64
                    mask |= 1 << i
            action = resume.action
        except Exception as exc:  # as TD._on_tdcall: reported by the run loop
            self.outcome(None, exc)
            return native.VMCALL_STOP_TDCALL
        reply[0] = mask
        if action is not None:
            woke = self.outcome(action, None)
            if woke is None:  # the run loop takes it at the TDCALL
                taken = {i: v & abi.MASK64 for i, v in resume.gprs.items() if select >> i & 1}
                self.module.record(VmcallRecord(time_ns, rip, select, 0, view, taken, action))
                return native.VMCALL_COMPLETE | native.VMCALL_STOP_TDCALL
            reply[_WOKE_WORD] = native.WOKE | woke  # a halt that ended at once
        return _SERVED | native.VMCALL_STOP if self.stale() else _SERVED
