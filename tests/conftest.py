"""Shared helpers for the tdxsim end-to-end tests.

Every test runs real x86-64 guest code: a GNU as (AT&T) snippet is written to
a file under pytest's tmp_path and built with `TD.from_source`.  Expected
values are literal numbers from shared/spec/tdx-interface.md (the oracle),
never taken from tdxsim's own abi module.

The standard probe guest (PROBE_SRC) has three functions:

  probe      records RSP in `probe_rsp`, executes one TDCALL with every
             register as td.call preset it, then stops on a UD2 marker at
             `probe_after`.  The vCPU state at the marker is exactly the
             state right after the TDCALL (RIP included).
  ghci       `tdcall; ret`: one raw TDCALL with preset registers that
             returns normally (reason 'return').
  probe_xmm  loads XMM0..15 from `xmm_in`, TDCALLs with preset registers,
             stores XMM0..15 to `xmm_out`, returns.
"""
from __future__ import annotations

import itertools
import os
import textwrap
from dataclasses import dataclass

import pytest

from tdxsim import TD, RunResult, VmResume

# A guest project of its own, run by test_plugin.py in a pytest of its own.
collect_ignore = ["external_project"]

# `make test` runs the suite twice: with tdxsim's compiled hooks, and with
# TDXSIM_NATIVE=0, where everything runs on the Python path.  Tests that hold
# the compiled path against the Python one (they build TD(native=True)) run
# in the first pass only.
PYTHON_ONLY = os.environ.get("TDXSIM_NATIVE") == "0"
compiled = pytest.mark.skipif(PYTHON_ONLY, reason="compares the compiled hooks with "
                              "Python: runs in the pass with them (TDXSIM_NATIVE unset)")

GPRS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")

# Distinct guest values for GPR i = 2..15 (RSP excluded: it is the stack).
GUEST = {name: 0x6000_0000_0000_0000 | i * 0x0101_0101 for i, name in enumerate(GPRS)
         if name not in ("rax", "rcx", "rsp")}
# Values a hostile host writes into every one of the 16 GPR slots.
HOST = {i: 0xBAD0_0000_0000_0000 | i * 0x1111 for i in range(16)}
# 128-bit XMM values: guest's and host's, byte-distinct per register.
GUEST_XMM = [int.from_bytes(bytes([0x10 + j]) * 16, "little") for j in range(16)]
HOST_XMM = [int.from_bytes(bytes([0xE0 + j]) * 16, "little") for j in range(16)]

PROBE_SRC = """
        .text
        .globl  probe, probe_tdcall, probe_after, ghci, probe_xmm
        .type   probe, @function
probe:
        mov     %rsp, probe_rsp(%rip)
probe_tdcall:
        tdcall
probe_after:
        ud2
        .size   probe, . - probe

        .type   ghci, @function
ghci:
        tdcall
        ret
        .size   ghci, . - ghci

        .type   probe_xmm, @function
probe_xmm:
""" + "".join(f"        movdqu  xmm_in+{16 * j}(%rip), %xmm{j}\n" for j in range(16)) + """
        tdcall
""" + "".join(f"        movdqu  %xmm{j}, xmm_out+{16 * j}(%rip)\n" for j in range(16)) + """
        ret
        .size   probe_xmm, . - probe_xmm

        .data
        .p2align 4
        .globl  probe_rsp, xmm_in, xmm_out
probe_rsp:      .quad 0, 0
xmm_in:         .fill 256, 1, 0
xmm_out:        .fill 256, 1, 0
"""


@pytest.fixture
def asm(tmp_path):
    """asm(source, **td_kwargs) -> TD built from the GNU as `source`."""
    counter = itertools.count()

    def build(source: str, **kw) -> TD:
        path = tmp_path / f"guest{next(counter)}.S"
        path.write_text(textwrap.dedent(source))
        return TD.from_source(path, **kw)

    return build


@dataclass
class After:
    """The vCPU state right after one TDCALL."""
    result: RunResult
    gprs: dict[str, int]
    rip: int
    rflags: int
    rsp_before: int | None = None


class Probe:
    """A TD built from PROBE_SRC, with helpers to run one raw TDCALL."""

    def __init__(self, td: TD):
        self.td = td
        self.tdcall_rip = td.symbol("probe_tdcall")

    def tdcall(self, **regs) -> After:
        """Run `probe`: GUEST values in RDX..R15 unless overridden, then one
        TDCALL; the state is captured at the UD2 marker after it."""
        result = self.td.call_result("probe", regs={**GUEST, **regs})
        assert result.reason == "crash" and "ud2" in result.message, result.message
        rsp = int.from_bytes(self.td.read(self.td.symbol("probe_rsp"), 8), "little")
        return After(result, self.td.gprs(), self.td.vcpu.regs.rip,
                     self.td.vcpu.regs.rflags, rsp)

    def vmcall(self, expect: str | None = "return", **regs) -> After:
        """TDG.VP.VMCALL through `ghci` (tdcall; ret).  Defaults: RAX = 0,
        RCX = 0xFC00 (R10-R15), R10..R15 = 0."""
        preset = dict(rax=0, rcx=0xFC00, r10=0, r11=0, r12=0, r13=0, r14=0, r15=0)
        result = self.td.call_result("ghci", regs={**preset, **regs})
        if expect is not None:
            assert result.reason == expect, result.describe()
        return After(result, self.td.gprs(), self.td.vcpu.regs.rip, self.td.vcpu.regs.rflags)

    def xmm_tdcall(self, xmms: list[int], **regs) -> tuple[RunResult, list[int]]:
        """Run `probe_xmm` with XMM0..15 = xmms; returns the XMMs after TDCALL."""
        base = self.td.symbol("xmm_in")
        self.td.write(base, b"".join(x.to_bytes(16, "little") for x in xmms))
        result = self.td.call_result("probe_xmm", regs={**GUEST, **regs})
        assert result.reason == "return", result.describe()
        raw = self.td.read(self.td.symbol("xmm_out"), 256)
        return result, [int.from_bytes(raw[16 * j:16 * j + 16], "little") for j in range(16)]

    def intercept(self, handler) -> None:
        """Route every exit the probe can produce to `handler`: a KVM
        hypercall numbered GUEST r10 (R10 selected), the sub-function GUEST
        r11 (R11 selected) or sub-function 0 (R10/R11 unselected)."""
        self.td.host.kvm_handlers[GUEST["r10"]] = handler
        self.td.host.handlers[GUEST["r11"]] = handler
        self.td.host.handlers[0] = handler


@pytest.fixture
def probe(asm):
    """probe(**td_kwargs) -> Probe over a fresh TD built from PROBE_SRC."""
    def make(**kw) -> Probe:
        return Probe(asm(PROBE_SRC, **kw))
    return make


@pytest.fixture
def recorder():
    """A host handler that records each VmExit and answers R10 = 0."""
    seen = []

    def handler(host, exit):
        seen.append(exit)
        return VmResume.status(0)

    handler.seen = seen
    return handler

