"""`tdxsim run` and how runs end: every failure is a clear diagnostic with an
exit code (0/guest code, 1 guest failure, 2 bad input), never a traceback."""
from __future__ import annotations

import subprocess
import textwrap

import pytest

from tdxsim.cli import main


@pytest.fixture
def run(capsys):
    """run(*argv) -> (exit code, stdout, stderr) of `tdxsim run ...`."""
    def invoke(*argv):
        code = main(["run", *map(str, argv)])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err
    return invoke


@pytest.fixture
def source(tmp_path):
    """source(text, name) -> path of a guest source file."""
    def write(text: str, name: str = "guest.S"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


def test_demo_runs_by_default(run):
    """No argument runs the bundled demo guest: greeting on COM1, exit 0."""
    code, out, err = run()
    assert code == 0
    assert "Hello from a TD guest" in out


def test_trace_prints_one_line_per_exit(run):
    """--trace: one line per TD exit, naming the sub-function.  The demo does
    one IO exit per console byte, one CPUID, one RDMSR and one debug-exit IO."""
    code, out, err = run("--trace")
    assert code == 0
    lines = out.splitlines()
    trace = [line for line in lines if "tdvmcall" in line]
    console = out[:out.index(trace[0])]
    assert "Hello from a TD guest" in console
    names = [line.split("tdvmcall", 1)[1].split()[0] for line in trace]
    assert names.count("CPUID") == 1
    assert names.count("RDMSR") == 1
    assert names.count("IO") == len(console) + 1
    assert len(trace) == len(console) + 3


def test_missing_file(run, tmp_path):
    """A guest file that does not exist -> exit 2 with its name."""
    missing = tmp_path / "nope.S"
    code, out, err = run(missing)
    assert code == 2
    assert "nope.S" in err and "no such" in err.lower()


def test_a_file_that_is_neither_source_nor_elf_is_refused(run, tmp_path):
    blob = tmp_path / "guest.bin"
    blob.write_bytes(bytes(range(256)))
    code, out, err = run(blob)
    assert code == 2 and "guest.bin is not a guest" in err
    code, out, err = run(tmp_path)  # a directory
    assert code == 2 and "is not a guest" in err


@pytest.mark.parametrize("option", [("--timeout", "0"), ("--max-insns", "0")])
def test_nonsense_limits_are_usage_errors(run, option):
    code, out, err = run(*option, "demo")
    assert code == 2 and option[0] in err


def test_assembler_error_shows_file_and_line(run, source):
    """An assembler error -> exit 2 with the assembler's message and file:line."""
    path = source("""\
        .globl _start
    _start:
        bogus_insn %rax
    """, "bad.S")
    code, out, err = run(path)
    assert code == 2
    assert f"{path}:3" in err
    assert "bogus_insn" in err


def test_32bit_elf_is_rejected(run, source, tmp_path):
    """A 32-bit (EM_386) ELF executable -> exit 2 naming the problem."""
    src = source(".globl _start\n_start: jmp _start\n", "t32.S")
    obj, elf = tmp_path / "t32.o", tmp_path / "t32"
    subprocess.run(["as", "--32", "-o", obj, src], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-o", elf, obj], check=True)
    code, out, err = run(elf)
    assert code == 2
    assert "x86-64" in err or "64" in err


def test_relocatable_object_is_linked(run, source, tmp_path):
    """A relocatable .o is linked with the library and run."""
    src = source("""\
        .globl _start
    _start:
        mov     $7, %edi
        call    tdx_debug_exit
    """, "exit7.S")
    obj = tmp_path / "exit7.o"
    subprocess.run(["as", "--64", "-o", obj, src], check=True)
    code, out, err = run(obj)
    assert code == 7


def test_guest_exit_code_is_the_process_exit_code(run, source):
    """A debug exit with code 3 -> `tdxsim run` exits 3."""
    path = source("""\
        .globl _start
    _start:
        mov     $3, %edi
        call    tdx_debug_exit
    """)
    code, out, err = run(path)
    assert code == 3


LOOP = """\
    .globl _start
_start:
1:  jmp 1b
"""


def test_runaway_loop_budget(run, source):
    """--max-insns 1000 on `1: jmp 1b` -> exit 1, budget message."""
    code, out, err = run(source(LOOP), "--max-insns", 1000)
    assert code == 1
    assert "budget" in err and "1000" in err


def test_runaway_loop_timeout(run, source):
    """--timeout 0.5 with a huge budget -> exit 1, timeout message."""
    code, out, err = run(source(LOOP), "--timeout", 0.5, "--max-insns", 10**15)
    assert code == 1
    assert "timeout" in err


def test_jump_to_unmapped_memory(run, source):
    """`jmp *%rax` to 0x40000000 (beyond 64 MiB RAM) -> crash report, exit 1."""
    code, out, err = run(source("""\
        .globl _start
    _start:
        mov     $0x40000000, %eax
        jmp     *%rax
    """))
    assert code == 1
    assert "crash" in err
    assert "0x40000000" in err
    assert "registers" in err


def test_ud2_crash_report_has_disassembly_and_backtrace(run, source):
    """ud2 two calls deep -> crash report: reason, disassembly with the ud2
    marked, registers, and a frame-pointer backtrace through the callers."""
    code, out, err = run(source("""\
        .globl _start
    _start:
        call    outer
    outer:
        push    %rbp
        mov     %rsp, %rbp
        call    inner
        leave
        ret
    inner:
        push    %rbp
        mov     %rsp, %rbp
        ud2
    """))
    assert code == 1
    assert "ud2" in err
    assert "=>" in err                     # the faulting instruction
    assert "rip=" in err and "rax=" in err  # registers
    assert "backtrace" in err
    assert "outer+" in err                 # inner's caller


def test_plain_hlt_explains_ve(run, source):
    """A plain HLT in a TD raises #VE (spec 8.1): clear message, exit 1."""
    code, out, err = run(source("""\
        .globl _start
    _start:
        hlt
    """))
    assert code == 1
    assert "HLT" in err.upper() and "#VE" in err


def test_out_instruction_explains_ve(run, source):
    """A plain OUT in a TD raises #VE (spec 8.1): clear message, exit 1."""
    code, out, err = run(source("""\
        .globl _start
    _start:
        mov     $0x3f8, %edx
        mov     $'A', %al
        out     %al, %dx
    """))
    assert code == 1
    assert "out" in err and "#VE" in err


def test_fatal_error_exit_1(run, source):
    """ReportFatalError -> exit 1 with the guest's message."""
    code, out, err = run(source("""\
        .globl _start
    _start:
        lea     msg(%rip), %rdi
        call    tdx_report_fatal_error
        .section .rodata
    msg: .asciz "cannot continue"
    """))
    assert code == 1
    assert "cannot continue" in err


def test_link_error_undefined_symbol(run, source):
    """A reference to an undefined symbol -> exit 2 with the linker's message."""
    code, out, err = run(source("""\
        .globl _start
    _start:
        call    no_such_function
    """))
    assert code == 2
    assert "no_such_function" in err


def test_missing_entry_symbol_is_an_error(run, source):
    """--entry naming a symbol the guest does not define -> exit 2 naming it,
    rather than silently starting somewhere else (ld only warns and falls
    back to the start of .text)."""
    path = source("""\
        .globl main
    main:
        mov     $5, %edi
        call    tdx_debug_exit
    """)
    code, out, err = run("--entry", "nosuch", path)
    assert code == 2
    assert "nosuch" in err


def test_backtrace_names_caller_of_a_call_at_function_end(run, source):
    """A `call` that is the last instruction of _start returns to the first
    byte of the next function; the backtrace must still attribute that frame
    to _start (symbolize return address - 1, as debuggers do), not to the
    function that happens to follow."""
    code, out, err = run(source("""\
        .globl _start
    _start:
        call    outer
    outer:
        push    %rbp
        mov     %rsp, %rbp
        ud2
    """))
    assert code == 1
    frames = err.split("backtrace", 1)[1]
    assert "_start" in frames
