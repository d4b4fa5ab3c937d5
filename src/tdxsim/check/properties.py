"""The properties a hypercall stub must have, each judged on one run.

A judge returns a `Finding` (failed), True (held) or False (the run does
not exercise it: e.g. nothing is judged after a TDCALL that never reached
the host, so one defect is not reported again by every later property).
Data movement is judged against what the guest actually received at the
TDCALL, so each defect shows up under the one property that owns it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .. import abi
from ..events import InterruptDelivered
from ..module.vmcall import control_error
from ..layout import RETURN_TRAP
from ..vcpu.regs import RFLAGS_IF
from .contracts import Contract, reg_name
from .facts import (bits, callee_owned, copies, host_pointer_use, how_it_ended, listed, names,
                    origin, padding_bytes, picker, selected, stack_fault, struct_as_expected,
                    u64)
from .observation import Observation
from .quick import clean
from .values import GUARD

LEAF = abi.Leaf.VP_VMCALL


@dataclass(frozen=True)
class Finding:
    id: str
    message: str  # one sentence: what is wrong
    rip: int | None  # the offending instruction
    offenders: tuple[str, ...] = ()  # every register / value / field at fault


@dataclass(frozen=True)
class Property:
    id: str
    holds: str  # what passing means
    needs: str  # what a run must reach for the property to be judged
    judge: Callable[[Contract, Observation], "Finding | bool"]
    applies: Callable[[Contract], str | None] = lambda c: None  # why not, for this contract


# --- the judges ---
def leaf(c: Contract, o: Observation):
    if not o.tdcalls:
        return Finding("leaf", "The routine never executed a TDCALL "
                       f"({'it returned' if o.returned else how_it_ended(o)}).", o.last_pc)
    for t in o.tdcalls:
        rax = t.before[abi.RAX]
        if rax != LEAF:
            try:
                name = f"leaf {rax & 0xFFFF} (TDG.{abi.Leaf(rax).name.replace('_', '.')})"
            except ValueError:
                name = "an invalid leaf/version"
            return Finding("leaf", f"RAX = {rax:#x} at the TDCALL selects {name}, not "
                           "TDG.VP.VMCALL (RAX = 0).", t.rip)
    return True


def mask_problem(c: Contract, rcx: int) -> str | None:
    select, xmm = rcx & abi.GPR_SELECT_MASK, rcx >> abi.XMM_SELECT_SHIFT & abi.XMM_SELECT_MASK
    refused = "so the module fails every call with TDX_OPERAND_INVALID (spec 3.2)"
    rule = control_error(rcx, c.no_rbp_mod)  # the module's own rule
    if rule == "reserved":
        return f"RCX = {rcx:#x} at the TDCALL sets reserved bits 63:32, {refused}."
    if rule == "never":
        return (f"RCX = {rcx:#x} at the TDCALL selects {names(select & abi.NEVER_SELECTABLE)}, "
                f"which are never exchanged, {refused}.")
    if rule == "rbp":
        return (f"RCX = {rcx:#x} at the TDCALL selects RBP (bit 5), which the module refuses "
                f"under NO_RBP_MOD (KVM always sets it), {refused}.")
    if select == c.mask and xmm == c.xmm_mask:
        return None
    parts = []
    if c.mask & ~select:
        missing = c.mask & ~select
        parts.append(f"does not select {names(missing)}"
                     + (", so the guest reads back its own stale value instead of the VMM's "
                        "answer (spec 3.5)" if missing & sum(1 << r for r in c.outputs) else ""))
    if select & ~c.mask:
        parts.append(f"also exposes {names(select & ~c.mask)}")
    if xmm != c.xmm_mask:
        parts.append(f"selects XMM mask {xmm:#x} instead of {c.xmm_mask:#x}")
    return (f"RCX = {rcx:#x} at the TDCALL but the contract requires {c.mask:#x}: it "
            + " and ".join(parts) + ".")


def mask_valid(c: Contract, o: Observation):
    calls, good = o.vmcalls, c.rcx
    for t in calls:
        rcx = t.before[abi.RCX]
        problem = None if rcx == good else mask_problem(c, rcx)
        if problem:
            return Finding("mask-valid", problem, t.rip)
    return bool(calls)


def no_leak(c: Contract, o: Observation):
    if not o.exited:
        return False
    inputs = o.values.inputs
    for record in o.records:  # the common case, at once: the host saw the inputs, no XMM
        registers, pick = selected(record.gpr_select)
        if record.xmm_select or pick(record.exposed) != tuple(map(inputs.get, registers)):
            return _leaks(c, o)
    return True


def _leaks(c: Contract, o: Observation):
    """no-leak's verdict, value by value: what the host saw that is not the
    register's input and is a guest secret or address."""
    inputs, seen, rip = o.values.inputs, {}, None
    for i, record in enumerate(o.records):
        for r in bits(record.gpr_select):
            value = record.exposed[r]
            what = value != inputs.get(r) and origin(o, value)
            if what and reg_name(r) not in seen:
                role = ", instead of its input" if r in c.inputs or r in c.reg_args else ""
                seen[reg_name(r)] = f"{what} in {reg_name(r)} ({value:#x}{role})"
                rip = rip or record.rip
        if record.xmm_select:  # the host's view of XMMs is in the exit only
            exit = o.exits[i]
            for j in bits(exit.xmm_select):
                for half in (exit.xmms[j] & abi.MASK64, exit.xmms[j] >> 64):
                    what = origin(o, half)
                    if what and f"XMM{j}" not in seen:
                        seen[f"XMM{j}"] = f"{what} in XMM{j} ({half:#x})"
                        rip = rip or record.rip
    if not seen:
        return True
    return Finding("no-leak", f"The host saw {listed(list(seen.values()))}, which the "
                   "contract does not pass.", rip, tuple(seen))


def scrub(c: Contract, o: Observation):
    if not (o.returned and o.exchange):
        return False
    if not o.xmm_exchanged and o.values.none_held(c.scrubbed_of(o.after)):
        return True  # no register holds a value that could be the host's
    live = {}
    for r, what in o.host_held(c.scrubbed, o.after):
        live[reg_name(r)] = f"{reg_name(r)} holds {what} ({o.after[r]:#x})"
    for j in range(16 if o.xmm_exchanged else 0):
        for half in (u64(o.xmm_after, 16 * j), u64(o.xmm_after, 16 * j + 8)):
            what = o.host_value(half)
            if what and f"XMM{j}" not in live:
                live[f"XMM{j}"] = f"XMM{j} holds {what} ({half:#x})"
    if not live:
        return True
    ret = "the return value in RAX" if c.returns is not None else "no register"
    return Finding("scrub", f"After return {listed(list(live.values()))}, but only {ret} may "
                   "carry a host-written value: zero or restore "
                   f"{'it' if len(live) == 1 else 'them'} before RET (spec 3.5 rule 5).",
                   o.last_pc, tuple(live))


def callee_saved(c: Contract, o: Observation):
    if not (o.returned and o.exchange):
        return False
    pick = picker(c.unchanged)
    xmm = [j for j in c.xmm_saved
           if o.xmm_after[16 * j:16 * j + 16] != o.values.xmm[16 * j:16 * j + 16]] \
        if c.xmm_saved else ()
    if pick(o.after) == pick(o.values.entry) and not xmm:
        return True
    wrong = {}
    for r in c.unchanged:
        was, now = o.values.entry[r], o.after[r]
        if now != was:
            source = o.host_value(now)
            extra = f", {source}" if source else ""
            wrong[reg_name(r)] = f"{reg_name(r)} = {now:#x} (the caller had {was:#x}{extra})"
    wrong.update({f"XMM{j}": f"XMM{j} changed" for j in xmm})
    kind = (f"{c.convention.upper() if c.convention == 'ms' else 'SysV'} callee-saved"
            + (" or preserved by the contract" if c.preserved else ""))
    return Finding("callee-saved", f"After return {listed(list(wrong.values()))}, but "
                   f"{'it is' if len(wrong) == 1 else 'they are'} {kind}.", o.last_pc,
                   tuple(wrong))


def stack(c: Contract, o: Observation):
    if not o.tdcalls:
        return False
    lay = o.layout
    for t in o.tdcalls:
        if t.ret_slot != RETURN_TRAP:
            return Finding("stack", f"At the TDCALL the return address at entry RSP "
                           f"({lay.entry_rsp:#x}) has been overwritten with {t.ret_slot:#x}.",
                           t.rip)
    fault = stack_fault(o)
    if fault:
        value, slot = fault
        what = origin(o, value)
        popped = f"{value:#x}" + (f" ({what})" if what else "")
        if slot == lay.entry_rsp:
            return Finding("stack", f"RET popped {popped} from the return-address slot "
                           f"({lay.entry_rsp:#x}), which the routine overwrote.", o.last_pc)
        return Finding("stack", f"RET popped {popped} instead of the return address: RSP was "
                       f"{slot - lay.entry_rsp:+#x} bytes off the entry RSP {lay.entry_rsp:#x} "
                       "(unbalanced pushes and pops).", o.last_pc)
    if not o.returned:
        return True
    rsp = o.after[abi.RSP]
    if rsp != lay.entry_rsp + 8:
        return Finding("stack", f"RSP = {rsp:#x} after return, {rsp - lay.entry_rsp - 8:+#x} "
                       f"bytes off the balanced value {lay.entry_rsp + 8:#x}.", o.last_pc)
    start = lay.entry_rsp - lay.stack_low
    if o.frame_after[8:] == o.values.stack[start + 8:]:
        return True
    owned = callee_owned(c)  # the shadow space and stack arguments belong to the callee
    for offset in range(8, len(o.frame_after), 8):
        was, now = u64(o.values.stack, start + offset), u64(o.frame_after, offset)
        if was != now and offset not in owned:
            return Finding("stack", f"The routine wrote {now:#x} into its caller's stack frame at "
                           f"{lay.entry_rsp + offset:#x} (entry RSP+{offset:#x}).", o.last_pc)
    return True


def frame_pointer(c: Contract, o: Observation):
    if c.frame_pointer != "required":
        return False
    for t in o.tdcalls:
        rbp = t.before[abi.RBP]
        if not t.rbp_chain:
            return Finding("frame-pointer", f"RBP = {rbp:#x} at the TDCALL is neither the "
                           f"caller's frame pointer ({o.layout.caller_rbp:#x}) nor a frame of the "
                           "routine that links back to it, so an unwinder (NMI, #VE, perf) "
                           "sees a broken frame chain (spec 10 B2).", t.rip)
        if t.after[abi.RBP] != rbp:
            return Finding("frame-pointer", f"RBP changed across the TDCALL ({rbp:#x} -> "
                           f"{t.after[abi.RBP]:#x}).", t.rip)
    return bool(o.tdcalls)


def sti_shadow(c: Contract, o: Observation):
    if not o.tdcalls:
        return False
    sc = o.scenario
    want = c.interrupts.holds(sc.flags)
    if sc.inject is not None:
        first = o.tdcalls[0].time_ns  # its own instruction counted: earlier events precede it
        for e in o.result.events:
            if isinstance(e, InterruptDelivered) and e.time_ns < first:
                return Finding("sti-shadow", f"An interrupt pending from instruction boundary "
                               f"{sc.inject} was taken at {e.rip:#x}, after IF became 1 and before "
                               "the TDCALL, so the host can sleep with the wakeup already "
                               "consumed (spec 7.3): STI must be the instruction right before "
                               "TDCALL.", e.rip)
    for t in o.tdcalls:
        if bool(t.rflags & RFLAGS_IF) != want:
            asked = f"the contract enables interrupts for this call ({c.interrupts.text})"
            return Finding("sti-shadow", f"IF = 0 at the TDCALL although {asked}." if want else
                           "IF = 1 at the TDCALL although the contract does not enable "
                           "interrupts for this call.", t.rip)
    if o.returned and bool(o.rflags & RFLAGS_IF) != want:
        return Finding("sti-shadow", f"IF = {int(not want)} after return, but the contract "
                       f"{'enables' if want else 'does not enable'} interrupts for this call.",
                       o.last_pc)
    return True


def failure_traps(c: Contract, o: Observation):
    t = o.failure
    if t is None:
        return False
    status = t.after[abi.RAX]
    if not o.returned:
        return True
    if c.on_failure == "return-status":
        if o.after[abi.RAX] == status:
            return True
        return Finding("failure-traps", f"The module failed the TDCALL with RAX = {status:#x} "
                       f"and the routine returned RAX = {o.after[abi.RAX]:#x}, but the contract "
                       "returns the module's status when the TDCALL fails (on_failure = "
                       "\"return-status\").", t.rip)
    return Finding("failure-traps", f"The module failed the TDCALL with RAX = {status:#x}, yet "
                   f"the routine returned normally (RAX = {o.after[abi.RAX]:#x}); it must stop "
                   "(ud2 or a panic that never returns), since no VMM answer exists "
                   "(spec 10 B9).", t.rip)


def output_copy(c: Contract, o: Observation):
    t = o.exchange
    if t is None or not o.returned or not c.struct_size:
        return False
    copy = copies(c, o, t)
    if struct_as_expected(c, o, t, copy):
        return True
    if host_pointer_use(o):
        return True  # copied through a host pointer: judged by host-pointer
    when = ("R10 = 0" if c.copy_outputs.on_success and copy else "R10 != 0"
            if c.copy_outputs.on_success else f"flags = {c.flag_names(o.scenario.flags)}")
    wrong = {}
    for r, offset in sorted(c.fields.items(), key=lambda item: item[1]):
        size, name = c.size(r), abi.GPR_NAMES[r]
        now = int.from_bytes(o.struct_after[GUARD + offset:GUARD + offset + size], "little")
        field = f"args->{name} (offset {offset})"
        if copy and r in c.outputs:
            want = t.after[r] & ((1 << 8 * size) - 1)
            if now != want:
                wrong[name] = f"{field} holds {now:#x}, not the {want:#x} the TDCALL returned"
        elif now != o.values.inputs[r]:
            wrong[name] = (f"{field} changed from {o.values.inputs[r]:#x} to {now:#x} "
                           f"({'not copied with ' + when if r in c.outputs else 'not an output'})")
    before, after = o.values.struct, o.struct_after
    for f in c.fixed:
        at = GUARD + f.offset
        if after[at:at + f.size] != before[at:at + f.size]:
            wrong[f.name] = f"the fixed field {f.name} (offset {f.offset}) was overwritten"
    end = GUARD + c.struct_size
    for offset in [*range(0, GUARD, 8), *range(end, len(after), 8)]:
        if u64(after, offset) != u64(before, offset):
            wrong[f"offset {offset - GUARD}"] = (f"{u64(after, offset):#x} was written at offset "
                                                 f"{offset - GUARD}, outside the struct")
    padding = [i for i in padding_bytes(c) if after[GUARD + i] != before[GUARD + i]]
    if padding:
        wrong[f"offset {padding[0]}"] = f"padding at offset {padding[0]} was overwritten"
    if not wrong:
        return True
    return Finding("output-copy", f"With {when}: {listed(list(wrong.values()))}.", o.last_pc,
                   tuple(wrong))


def return_value(c: Contract, o: Observation):
    t = o.exchange
    if t is None:
        return False
    if not o.returned:
        if host_pointer_use(o) or stack_fault(o):
            return False  # judged by host-pointer / stack
        crash = o.result.crash
        return Finding("return-value", "The routine did not return after a successful "
                       f"TDG.VP.VMCALL ({how_it_ended(o)}).", crash.rip if crash else o.last_pc)
    if c.returns is None:
        return True
    want, got = t.after[c.returns], o.after[abi.RAX]
    if got != want:
        source = o.host_value(got) or origin(o, got)
        extra = f" ({source})" if source else ""
        return Finding("return-value", f"The routine returned RAX = {got:#x}{extra}, but the "
                       f"contract returns {reg_name(c.returns)} as the TDCALL left it "
                       f"({want:#x}).", o.last_pc)
    return True


def host_pointer(c: Contract, o: Observation):
    if o.exchange is None:
        return False
    use = host_pointer_use(o)
    if use:
        rip, address, value, what = use
        return Finding("host-pointer", f"After the TDCALL the routine accessed {address:#x}, "
                       f"which derives from {what} ({value:#x}): a register the VMM controls was "
                       "used as a pointer; reload pointers from private memory (spec 10 B6).", rip)
    return True


PROPERTIES = (
    Property("leaf", "RAX = 0 (TDG.VP.VMCALL) at every TDCALL", "any run", leaf),
    Property("mask-valid", "RCX passes the module's rules and equals the contract's mask",
             "a TDG.VP.VMCALL", mask_valid),
    Property("no-leak", "the host saw no guest secret, pointer or uninitialised value",
             "a TDG.VP.VMCALL that reaches the host", no_leak),
    Property("scrub", "no host-written value is live after return except the return value",
             "a successful TDG.VP.VMCALL and a normal return", scrub),
    Property("callee-saved", "callee-saved and preserved registers are restored",
             "a successful TDG.VP.VMCALL and a normal return", callee_saved),
    Property("stack", "RSP balanced, return address and caller's frame intact",
             "a TDCALL", stack),
    Property("frame-pointer", "the RBP chain is intact across the TDCALL", "a TDCALL",
             frame_pointer, lambda c: None if c.frame_pointer == "required" else
             "the contract does not require a frame pointer (frame_pointer = \"not-required\")"),
    Property("sti-shadow", "IF as the contract asks, and no interrupt taken between STI and "
             "TDCALL", "a TDCALL", sti_shadow),
    Property("failure-traps", "a failed TDCALL (RAX != 0) never returns normally, or "
             "returns the module's status where the contract says so",
             "a TDG.VP.VMCALL the module fails", failure_traps),
    Property("output-copy", "outputs are copied back exactly when the contract says",
             "a successful TDG.VP.VMCALL and a normal return", output_copy,
             lambda c: None if c.struct_size else "the contract has no struct: nothing is "
             "copied"),
    Property("return-value", "the routine returns, with the value the contract names",
             "a successful TDG.VP.VMCALL", return_value),
    Property("host-pointer", "no host-written register is used as a pointer",
             "a successful TDG.VP.VMCALL", host_pointer),
)
IDS = tuple(p.id for p in PROPERTIES)
JUDGES = tuple(p.judge for p in PROPERTIES)


def judge_all(c: Contract, o: Observation) -> list[Finding]:
    """Every property's finding on one run (the fuzzer's hot path; most
    runs of a good stub are shown clean at once, quick.py)."""
    if clean(c, o):
        return []
    return [v for judge in JUDGES if type(v := judge(c, o)) is Finding]
