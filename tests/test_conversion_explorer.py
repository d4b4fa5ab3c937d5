"""The conversion explorer (spec 13.4 B16-B18, 4.4, 6.3, 13.1): MapGPA
answered with RETRY (with and without progress), mid-range failures and
out-of-range R11 at every step.  The library's tdx_map_gpa (plus
tdx_accept_memory for private) passes; a routine that resumes from the
original GPA after RETRY (Asterinas PRs #3339, #3845) and one that accepts
only [R11, end) are found.
"""
from __future__ import annotations

import pytest

from tdxsim.conversion_explorer import explore_conversion

MiB = 1 << 20
START, END = 0x400000, 0x400000 + 2 * MiB + 0x4000  # two steps: 2 MiB, then 16 KiB (spec 6.3)

GUEST = """
        .text
        .globl  to_shared, to_private, restarts_from_start, accepts_from_r11
to_shared:
        mov     $1, %edx
        jmp     tdx_map_gpa

to_private:                             # MapGPA to private, then accept (spec 4.4)
        push    %rbx
        push    %r12
        push    %r13
        mov     %rdi, %r12
        mov     %rsi, %r13
        xor     %edx, %edx
        call    tdx_map_gpa
        test    %rax, %rax
        jnz     1f
        mov     %r12, %rdi
        mov     %r13, %rsi
        call    tdx_accept_memory
1:      pop     %r13
        pop     %r12
        pop     %rbx
        ret

# DEFECT: on RETRY it starts again from the original GPA, ignoring R11.
restarts_from_start:
        push    %rbx
        push    %r12
        push    %r13
        sub     $48, %rsp                       # struct tdx_hypercall_args
        mov     %rdi, %r12
        mov     %rsi, %r13
        call    tdx_shared_mask
        or      %rax, %r12
        or      %rax, %r13
2:      movq    $0, 0(%rsp)                     # r10
        movq    $0x10001, 8(%rsp)               # r11: MapGPA
        mov     %r12, 16(%rsp)                  # r12: start, always the original
        mov     %r13, %rax
        sub     %r12, %rax
        mov     %rax, 24(%rsp)                  # r13: size
        movq    $0, 32(%rsp)
        movq    $0, 40(%rsp)
        mov     %rsp, %rdi
        mov     $1, %esi                        # HAS_OUTPUT
        call    __tdx_hypercall
        cmp     $1, %rax                        # RETRY
        je      2b
        add     $48, %rsp
        pop     %r13
        pop     %r12
        pop     %rbx
        ret

# DEFECT: after a RETRY it accepts only [R11, end), leaving [start, R11) pending.
accepts_from_r11:
        push    %rbx
        push    %r12
        push    %r13
        sub     $48, %rsp
        mov     %rdi, %r12
        mov     %rsi, %r13
3:      movq    $0, 0(%rsp)
        movq    $0x10001, 8(%rsp)
        mov     %r12, 16(%rsp)
        mov     %r13, %rax
        sub     %r12, %rax
        mov     %rax, 24(%rsp)
        movq    $0, 32(%rsp)
        movq    $0, 40(%rsp)
        mov     %rsp, %rdi
        mov     $1, %esi
        call    __tdx_hypercall
        cmp     $1, %rax
        jne     4f
        mov     8(%rsp), %r12                   # resume from R11 (checked: in range)
        cmp     %r13, %r12
        jb      3b
4:      test    %rax, %rax
        jnz     5f
        mov     %r12, %rdi                      # accepts from the last resume GPA only
        mov     %r13, %rsi
        call    tdx_accept_memory
5:      add     $48, %rsp
        pop     %r13
        pop     %r12
        pop     %rbx
        ret
"""


def make_shared(td):
    td.ram.convert(START, END - START, shared=True)


@pytest.fixture(scope="module")
def td(tmp_path_factory):
    from tdxsim import TD
    path = tmp_path_factory.mktemp("conv") / "conv.S"
    path.write_text(GUEST)
    return TD.from_source(path)


def test_library_to_shared_passes(td):
    report = explore_conversion(td, "to_shared", START, END, shared=True)
    assert report.steps == 1 and report.runs == 6
    assert report.findings == [], report.render()


def test_library_to_private_with_accept_passes(td):
    report = explore_conversion(td, "to_private", START, END, shared=False, setup=make_shared)
    assert report.findings == [], report.render()


def test_restart_from_the_original_gpa_is_found(td):
    report = explore_conversion(td, "restarts_from_start", START, END, shared=True,
                                max_insns=200_000)
    problems = {f.scenario: f.problem for f in report.findings}
    assert "did not return" in problems["retry at every step"], report.render()


def test_accepting_only_from_r11_is_found(td):
    report = explore_conversion(td, "accepts_from_r11", START, END, shared=False,
                                setup=make_shared)
    problems = {f.scenario: f.problem for f in report.findings}
    assert "not private" in problems["retry-progress at step 0"], report.render()
    assert "explored accepts_from_r11" in report.render()
