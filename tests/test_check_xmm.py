"""`tdxsim check` on stubs that exchange XMM registers with the host.

The corpus stubs select GPRs only, so the compiled path serves their
calls.  XMM exits go to Python, and the checker builds what the host saw
from those; these stubs make sure such runs are judged the same, whichever
observer watches them.
"""
from __future__ import annotations

import pytest

from conftest import compiled
from tdxsim.check import Harness, check, load
from tdxsim.check.fuzz import boundaries, scenario
from tdxsim.check.properties import judge_all
from tdxsim.check.runner import plan
from tdxsim.toolchain import build

CONTRACT = """\
name = "xmm-args"
mask = 0xFC00
xmm_mask = 0x3
args = "r9"
returns = "r10"
inputs = []
outputs = ["r11"]

[struct]
r11 = 0

[register_args]
r11 = "rdi"
r12 = "rsi"
r13 = "rdx"
r14 = "rcx"
r15 = "r8"
"""

# u64 tdvmcall_xmm(u64 subfn, u64 a1, u64 a2, u64 a3, u64 a4, u64 *result):
# GHCI with XMM0 and XMM1 exchanged (RCX = 0x3FC00).  {before} and {after}
# are what the stub does to the XMMs around the TDCALL.
STUB = """\
        .text
        .globl  tdvmcall_xmm
tdvmcall_xmm:
        push    %rbp
        mov     %rsp, %rbp
        push    %r15
        push    %r14
        push    %r13
        push    %r12
        xor     %r10d, %r10d
        mov     %rdi, %r11
        mov     %rsi, %r12
        mov     %rdx, %r13
        mov     %rcx, %r14
        mov     %r8, %r15
{before}
        mov     $0x3fc00, %ecx
        xor     %eax, %eax
        tdcall
        test    %rax, %rax
        jnz     1f
        mov     %r11, (%r9)
        mov     %r10, %rax
        xor     %r10d, %r10d
        xor     %r11d, %r11d
{after}
        pop     %r12
        pop     %r13
        pop     %r14
        pop     %r15
        pop     %rbp
        ret
1:      ud2
"""
CLEAR_BOTH = "        pxor    %xmm0, %xmm0\n        pxor    %xmm1, %xmm1"
CLEAR_XMM0 = "        pxor    %xmm0, %xmm0"

CASES = [  # (XMMs cleared before the TDCALL, after it, failing properties)
    (CLEAR_BOTH, CLEAR_BOTH, set()),
    ("", CLEAR_BOTH, {"no-leak"}),
    (CLEAR_BOTH, CLEAR_XMM0, {"scrub"}),
]


def _stub(tmp_path, before: str, after: str):
    source = tmp_path / "xmm.S"
    source.write_text(STUB.format(before=before, after=after))
    contract = tmp_path / "xmm.toml"
    contract.write_text(CONTRACT)
    return build([source], "tdvmcall_xmm", with_library=False), load(str(contract))


@pytest.mark.parametrize("before,after,expected", CASES)
def test_xmm_stub_fails_exactly_its_property(tmp_path, before, after, expected):
    image, contract = _stub(tmp_path, before, after)
    report = check(image, "tdvmcall_xmm", contract)
    assert {r.id for r in report.failed} == expected
    messages = {r.id: r.message for r in report.failed}
    if "no-leak" in expected:
        assert messages["no-leak"].startswith("The host saw the caller's XMM0 in XMM0")
    if "scrub" in expected:
        assert messages["scrub"].startswith("After return XMM1 holds the VMM's XMM1")


@compiled
@pytest.mark.parametrize("before,after,expected", CASES)
def test_xmm_runs_look_the_same_to_both_observers(tmp_path, before, after, expected):
    """What the host saw and answered, and every finding, run for run."""
    image, contract = _stub(tmp_path, before, after)
    native, python, planner = (Harness(image, "tdvmcall_xmm", contract, native=n)
                               for n in (True, False, None))
    scenarios = [o.scenario for o in plan(contract, planner)]
    scenarios += [scenario(contract, 5, i, boundaries(planner)) for i in range(30)]

    def observed(harness):
        return [(o.exits, o.resumes, o.host_written, judge_all(contract, o))
                for o in map(harness.run, scenarios)]

    seen = observed(native)
    assert seen == observed(python)
    assert seen[0][0][0].xmm_select == 0x3  # the host did see XMMs
