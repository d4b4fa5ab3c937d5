"""judge_all's fast path: one pass over a run that shows no property can
find a fault in it, which is what nearly every fuzzed run of a good stub is.

Each test below is a sufficient condition for its judge (properties.py)
to return something other than a Finding, read from that judge's own
early outs and checks.  When one of them fails, judge_all asks every judge,
so a run with a finding always gets the judges' own verdicts and messages;
this only spares the twelve calls, each reading the same facts again.
"""
from __future__ import annotations

from .. import abi
from ..eventlog import EventLog
from ..events import InterruptDelivered
from ..layout import RETURN_TRAP
from ..vcpu.regs import RFLAGS_IF
from .contracts import Contract
from .facts import copies, selected, struct_as_expected
from .observation import Observation

RAX, RCX, RBP, RSP = abi.RAX, abi.RCX, abi.RBP, abi.RSP
GPR_SELECT_MASK, XMM_SELECT_SHIFT, XMM_SELECT_MASK = (abi.GPR_SELECT_MASK, abi.XMM_SELECT_SHIFT,
                                                      abi.XMM_SELECT_MASK)
RETURN_SLOT = RETURN_TRAP.to_bytes(8, "little")  # the return address slot, untouched


def clean(c: Contract, o: Observation) -> bool:
    """True only if no property's judge returns a Finding for this run."""
    tdcalls = o.tdcalls
    if not tdcalls:  # leaf's finding
        return False
    if o.scenario.inject is not None:  # sti-shadow: the interrupt not taken before the TDCALL
        first, events = tdcalls[0].time_ns, o.result.events
        appended = events.appended() if type(events) is EventLog else None
        for e in events if appended is None else appended:  # (no record is an interrupt)
            if isinstance(e, InterruptDelivered) and e.time_ns < first:
                return False
    want_if, rcx, frames = c.interrupts.holds(o.scenario.flags), c.rcx, \
        c.frame_pointer == "required"
    for t in tdcalls:
        before = t.before
        if before[RAX] or before[RCX] != rcx or t.ret_slot != RETURN_TRAP \
                or bool(t.rflags & RFLAGS_IF) != want_if:  # leaf, mask-valid, stack, sti-shadow
            return False
        if frames and not (t.rbp_chain and t.after[RBP] == before[RBP]):  # frame-pointer
            return False
    returned, after, lay = o.returned, o.after, o.layout
    if o.escape is not None:  # stack (a RET popped the wrong slot)
        return False
    if returned:  # stack: balanced, the caller's frame intact; sti-shadow: IF after return
        if after[RSP] != lay.entry_rsp + 8 or bool(o.rflags & RFLAGS_IF) != want_if or \
                not o.frame_after.endswith(o.values.frame_tail) or \
                o.failure is not None:  # failure-traps: a failed TDCALL and a return
            return False
    elif not o.frame_after.startswith(RETURN_SLOT):  # stack: the slot lost
        return False
    if o.exited and not exposed_inputs(o):  # no-leak (which also sees no exit took XMMs)
        return False
    t = o.exchange
    if t is None:  # scrub, callee-saved, output-copy, return-value, host-pointer: not judged
        return True
    if not returned or o.writes:  # return-value; host-pointer (scrub's XMMs: none, see no-leak)
        return False
    v, unchanged = o.values, c.unchanged_of
    if not no_host_value(o, c.scrubbed_of(after)) or unchanged(after) != unchanged(v.entry):
        return False  # scrub, callee-saved
    for j in c.xmm_saved:  # callee-saved
        if o.xmm_after[16 * j:16 * j + 16] != v.xmm[16 * j:16 * j + 16]:
            return False
    if c.struct_size and not struct_as_expected(c, o, t, copies(c, o, t)):  # output-copy
        return False
    return c.returns is None or after[RAX] == t.after[c.returns]  # return-value


def exposed_inputs(o: Observation) -> bool:
    """no-leak holds: the host saw no XMM, and in each exposed register its
    input or a value below any guest secret or address (zero, say)."""
    inputs, floor = o.values.inputs, o.values.origin_floor
    words = o.exit_words
    exits = [(record.gpr_select, record.xmm_select, record.exposed) for record in o.records] \
        if words is None else [(w[2] & GPR_SELECT_MASK, w[2] >> XMM_SELECT_SHIFT & XMM_SELECT_MASK,
                                w[3:19]) for w in words]
    for gpr_select, xmm_select, exposed in exits:
        registers, pick = selected(gpr_select)
        seen, given = pick(exposed), tuple(map(inputs.get, registers))
        if xmm_select or seen != given and \
                max(x for x, want in zip(seen, given) if x != want) >= floor:
            return False
    return True


def no_host_value(o: Observation, values: tuple[int, ...]) -> bool:
    """None of these values is a host-written one (`Observation.host_values`,
    without building it): each is one the guest holds or small, or is
    neither a value the guest took back from the host nor its low half."""
    if o.values.none_held(values):
        return True
    taken = set()
    for record in o.records:
        taken.update(record.returned.values())
    taken.update([value & 0xFFFF_FFFF for value in taken])
    return taken.isdisjoint(values)
