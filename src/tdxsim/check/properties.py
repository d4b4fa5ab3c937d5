"""The properties a hypercall stub must have, each judged on one run.

A judge returns a `Finding` (failed), True (held) or False (the run does
not exercise it: e.g. nothing is judged after a TDCALL that never reached
the host, so one defect is not reported again by every later property).
Data movement is judged against what the guest actually received at the
TDCALL, so each defect shows up under the one property that owns it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Callable, Sequence

from .. import abi
from ..events import InterruptDelivered
from ..td import PAGE, RETURN_TRAP
from ..vcpu.regs import RFLAGS_IF
from .contracts import Contract, reg_name
from .harness import GUARD, U64, Observation

LEAF = abi.Leaf.VP_VMCALL


@dataclass(frozen=True)
class Finding:
    id: str
    message: str  # one sentence: what is wrong
    rip: int | None  # the offending instruction


@dataclass(frozen=True)
class Property:
    id: str
    holds: str  # what passing means
    needs: str  # what a run must reach for the property to be judged
    judge: Callable[[Contract, Observation], "Finding | bool"]


# --- facts about a run ---
def u64(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset:offset + 8], "little")


@lru_cache(maxsize=None)
def bits(mask: int) -> tuple[int, ...]:
    return tuple(i for i in range(16) if mask >> i & 1)


@lru_cache(maxsize=None)
def picker(registers: tuple[int, ...]) -> Callable[[Sequence[int]], object]:
    """Picks these registers' values out of a GPR list in one call, to
    compare two lists on just these registers."""
    return itemgetter(*registers) if registers else lambda gprs: ()


def names(mask: int) -> str:
    return ", ".join(reg_name(i) for i in bits(mask))


def origin(o: Observation, value: int) -> str | None:
    """Which guest secret or pointer a value is, if any."""
    v = o.values
    what = v.secrets.get(value) or v.secret_lows.get(value & 0xFFFF_FFFF)
    if what is None:
        what = next((d for lo, hi, d in v.pointers if lo <= value < hi), None)
    return what


def near_host_value(o: Observation, address: int) -> tuple[int, int, str] | None:
    """The host-written value an address lies within a page of, as (full
    address, value, whose).  Unicorn reports fault addresses cut to 52
    bits, so distances are taken modulo 2**52."""
    wrap = 1 << 52
    hits = [((address - value + PAGE) % wrap - PAGE, value, what)
            for value, what in o.host_written]
    hits = [hit for hit in hits if abs(hit[0]) < PAGE]
    if not hits:
        return None
    offset, value, what = min(hits, key=lambda hit: abs(hit[0]))
    return (value + offset) & abi.MASK64, value, what


def host_pointer_use(o: Observation) -> tuple[int, int, int, str] | None:
    """A crash, or a store outside the stack and args struct, at an address
    derived from a host-written value: (rip, address, value, whose)."""
    crash = o.result.crash
    uses = [(crash.rip, a) for a in (crash.address, crash.rip) if a is not None] if crash else []
    for rip, address in uses + o.writes:
        hit = near_host_value(o, address)
        if hit:
            return (rip, *hit)
    return None


def return_slot_lost(o: Observation) -> bool:
    return not o.returned and u64(o.frame_after, 0) != RETURN_TRAP


def how_it_ended(o: Observation) -> str:
    first = o.result.describe().splitlines()
    return first[0] if first else o.result.reason


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
    if rcx & abi.RCX_RESERVED_MASK:
        return f"RCX = {rcx:#x} at the TDCALL sets reserved bits 63:32, {refused}."
    if select & abi.NEVER_SELECTABLE:
        return (f"RCX = {rcx:#x} at the TDCALL selects {names(select & abi.NEVER_SELECTABLE)}, "
                f"which are never exchanged, {refused}.")
    if c.no_rbp_mod and select & abi.RBP_SELECT:
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
    calls = o.vmcalls
    for t in calls:
        problem = mask_problem(c, t.before[abi.RCX])
        if problem:
            return Finding("mask-valid", problem, t.rip)
    return bool(calls)


def no_leak(c: Contract, o: Observation):
    if not o.exited:
        return False
    inputs = o.values.inputs
    for i, record in enumerate(o.records):
        for r in bits(record.gpr_select):
            value = record.exposed[r]
            what = value != inputs.get(r) and origin(o, value)
            if what:
                role = (f"where the contract passes the input {reg_name(r)}" if r in c.inputs
                        or r in c.reg_args else "which the contract does not name as an input")
                return Finding("no-leak", f"The host saw {what} in {reg_name(r)} (value "
                               f"{value:#x}), {role}.", record.rip)
        if record.xmm_select:  # the host's view of XMMs is in the exit only
            exit = o.exits[i]
            for j in bits(exit.xmm_select):
                for half in (exit.xmms[j] & abi.MASK64, exit.xmms[j] >> 64):
                    what = origin(o, half)
                    if what:
                        return Finding("no-leak", f"The host saw {what} in XMM{j} (value "
                                       f"{half:#x}).", record.rip)
    return True


def scrub(c: Contract, o: Observation):
    if not (o.returned and o.exchange):
        return False
    for r in c.scrubbed:
        what = o.host_value(o.after[r])
        if what:
            ret = "the return value in RAX" if c.returns is not None else "no register"
            return Finding("scrub", f"After return {reg_name(r)} still holds {what} "
                           f"({o.after[r]:#x}), but only {ret} may carry a host-written value: "
                           "zero or restore it before RET (spec 3.5 rule 5).", o.last_pc)
    for j in range(16 if o.xmm_exchanged else 0):
        for half in (u64(o.xmm_after, 16 * j), u64(o.xmm_after, 16 * j + 8)):
            what = o.host_value(half)
            if what:
                return Finding("scrub", f"After return XMM{j} still holds {what} "
                               f"({half:#x}).", o.last_pc)
    return True


def callee_saved(c: Contract, o: Observation):
    if not (o.returned and o.exchange):
        return False
    pick = picker(c.unchanged)
    if pick(o.after) == pick(o.values.entry):
        return True
    for r in c.unchanged:
        was, now = o.values.entry[r], o.after[r]
        if now != was:
            kind = "callee-saved" if r in c.callee_saved else "preserved by the contract"
            source = o.host_value(now)
            extra = f", now {source}" if source else ""
            return Finding("callee-saved", f"{reg_name(r)} = {now:#x} after return but the "
                           f"caller had {was:#x} ({reg_name(r)} is {kind}{extra}).", o.last_pc)
    return True


def stack(c: Contract, o: Observation):
    if not o.tdcalls:
        return False
    lay = o.layout
    for t in o.tdcalls:
        if t.ret_slot != RETURN_TRAP:
            return Finding("stack", f"At the TDCALL the return address at entry RSP "
                           f"({lay.entry_rsp:#x}) has been overwritten with {t.ret_slot:#x}.",
                           t.rip)
    if return_slot_lost(o):
        return Finding("stack", f"The return address at entry RSP ({lay.entry_rsp:#x}) was "
                       f"overwritten with {u64(o.frame_after, 0):#x}, so the routine could not "
                       f"return ({how_it_ended(o)}).", o.last_pc)
    if not o.returned:
        return True
    rsp = o.after[abi.RSP]
    if rsp != lay.entry_rsp + 8:
        return Finding("stack", f"RSP = {rsp:#x} after return, {rsp - lay.entry_rsp - 8:+#x} "
                       f"bytes off the balanced value {lay.entry_rsp + 8:#x}.", o.last_pc)
    start = lay.entry_rsp - lay.stack_low
    if o.frame_after[8:] == o.values.stack[start + 8:]:
        return True
    for offset in range(8, len(o.frame_after), 8):
        was, now = u64(o.values.stack, start + offset), u64(o.frame_after, offset)
        if was != now:
            return Finding("stack", f"The routine wrote {now:#x} into its caller's stack frame at "
                           f"{lay.entry_rsp + offset:#x} (entry RSP+{offset:#x}).", o.last_pc)
    return True


def frame_pointer(c: Contract, o: Observation):
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
    if o.returned:
        return Finding("failure-traps", f"The module failed the TDCALL with RAX = "
                       f"{t.after[abi.RAX]:#x}, yet the routine returned normally (RAX = "
                       f"{o.after[abi.RAX]:#x}); it must stop (ud2 or a panic that never "
                       "returns), since no VMM answer exists (spec 10 B9).", t.rip)
    return True


def output_copy(c: Contract, o: Observation):
    t = o.exchange
    if t is None or not o.returned or not c.fields:
        return False
    copy = c.copy_outputs.holds(o.scenario.flags)
    if o.struct_after == expected_struct(c, o, t, copy):
        return True
    if host_pointer_use(o):
        return True  # copied through a host pointer: judged by host-pointer
    when = f"flags = {c.flag_names(o.scenario.flags)}"
    for r, offset in sorted(c.fields.items(), key=lambda item: item[1]):
        now = u64(o.struct_after, GUARD + offset)
        field = f"args->{abi.GPR_NAMES[r]} (offset {offset})"
        if copy and r in c.outputs and now != t.after[r]:
            return Finding("output-copy", f"With {when} the contract copies {reg_name(r)} back, "
                           f"but {field} holds {now:#x} instead of the {t.after[r]:#x} the TDCALL "
                           "returned.", o.last_pc)
        if not (copy and r in c.outputs) and now != o.values.inputs[r]:
            return Finding("output-copy", f"{field} changed from {o.values.inputs[r]:#x} to "
                           f"{now:#x}, but the contract does not copy it back "
                           f"({'with ' + when if r in c.outputs else 'not an output'}).",
                           o.last_pc)
    before, after, end = o.values.struct, o.struct_after, GUARD + c.struct_size
    if after[:GUARD] == before[:GUARD] and after[end:] == before[end:]:
        return True
    for offset in [*range(0, GUARD, 8), *range(end, len(after), 8)]:
        if u64(after, offset) != u64(before, offset):
            return Finding("output-copy", f"The routine wrote {u64(after, offset):#x} at offset "
                           f"{offset - GUARD} from the args struct, outside its "
                           f"{c.struct_size} bytes.", o.last_pc)
    return True


def expected_struct(c: Contract, o: Observation, t, copy: bool) -> bytes:
    """The guarded struct as a correct stub leaves it: the inputs, with the
    outputs the TDCALL returned copied in when the contract copies."""
    if not copy:
        return o.values.struct
    struct = bytearray(o.values.struct)
    for r, offset in c.output_fields:
        U64.pack_into(struct, GUARD + offset, t.after[r])
    return struct


def return_value(c: Contract, o: Observation):
    t = o.exchange
    if t is None:
        return False
    if not o.returned:
        if host_pointer_use(o) or return_slot_lost(o):
            return True  # judged by host-pointer / stack
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
             frame_pointer),
    Property("sti-shadow", "IF as the contract asks, and no interrupt taken between STI and "
             "TDCALL", "a TDCALL", sti_shadow),
    Property("failure-traps", "a failed TDCALL (RAX != 0) never returns normally",
             "a TDG.VP.VMCALL the module fails", failure_traps),
    Property("output-copy", "outputs are copied back exactly when the contract says",
             "a successful TDG.VP.VMCALL and a normal return", output_copy),
    Property("return-value", "the routine returns, with the value the contract names",
             "a successful TDG.VP.VMCALL", return_value),
    Property("host-pointer", "no host-written register is used as a pointer",
             "a successful TDG.VP.VMCALL", host_pointer),
)
IDS = tuple(p.id for p in PROPERTIES)


def judge_all(c: Contract, o: Observation) -> list[Finding]:
    """Every property's finding on one run (the fuzzer's hot path)."""
    return [v for p in PROPERTIES if isinstance(v := p.judge(c, o), Finding)]
