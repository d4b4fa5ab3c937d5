"""Guest sources as users have them (issue 12 item 8, issue 19): `.S` through
the C preprocessor with -I/-D/--include, `.s` straight to `as`, `.asm`/`.nasm`
through nasm, each build error with the tool's text and one hint line, tool
output decoded whatever its bytes, and mixed inputs refused with exit 2."""
from __future__ import annotations

import os
import shutil
import textwrap

import pytest

from tdxsim.cli import main

CORPUS = os.path.join(os.path.dirname(__file__), "check_corpus")


@pytest.fixture
def tdxsim(capsys):
    """tdxsim(*argv) -> (exit code, stdout, stderr); never a traceback."""
    def invoke(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err
    return invoke


@pytest.fixture
def write(tmp_path):
    def write(name: str, text: str | bytes):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text))
        return path
    return write


EXIT_WITH = """
        .text
        .globl  _start
_start:
        mov     $%s, %%edi
        call    tdx_debug_exit
"""


def test_capital_s_goes_through_the_preprocessor_with_include_dirs(tdxsim, write):
    """#include from an -I directory and #define: exit code 5 from the header."""
    write("inc/codes.h", "#define EXIT_CODE 5\n")
    src = write("guest.S", '#include "codes.h"\n' + EXIT_WITH % "EXIT_CODE")
    code, out, err = tdxsim("run", src, "-I", src.parent / "inc")
    assert code == 5, err


def test_defines_and_forced_includes(tdxsim, write):
    """-D NAME=VALUE and --include FILE reach the preprocessor."""
    src = write("guest.S", EXIT_WITH % "(CODE + EXTRA)")
    extra = write("extra.h", "#define EXTRA 3\n")
    code, out, err = tdxsim("run", src, "-D", "CODE=9", "--include", extra)
    assert code == 12, err


def test_missing_include_is_the_preprocessors_message(tdxsim, write):
    src = write("guest.S", '#include "nowhere.h"\n' + EXIT_WITH % "1")
    code, out, err = tdxsim("run", src)
    assert code == 2
    assert "preprocessing" in err and "nowhere.h" in err


def test_lower_s_is_not_preprocessed(tdxsim, write):
    """`# if ...` is a comment to as: a .s file with one assembles; the same
    text as .S is a preprocessor error (as with every toolchain)."""
    text = "# if the host answers, we exit with 4\n" + EXIT_WITH % "4"
    code, out, err = tdxsim("run", write("guest.s", text))
    assert code == 4, err
    code, out, err = tdxsim("run", write("guest.S", text))
    assert code == 2 and "preprocessing" in err


NASM_GUEST = """
        bits 64
        section .text
        global _start
        extern tdx_debug_exit
_start:
        mov     rdi, %d
        call    tdx_debug_exit
"""


@pytest.mark.parametrize("suffix", [".asm", ".nasm"])
def test_nasm_sources(tdxsim, write, suffix):
    assert shutil.which("nasm"), ".ci/run installs nasm"
    code, out, err = tdxsim("run", write("guest" + suffix, NASM_GUEST % 6))
    assert code == 6, err


def test_nasm_error_keeps_its_text(tdxsim, write):
    code, out, err = tdxsim("run", write("bad.asm", "bits 64\nmov rax,\n"))
    assert code == 2 and "nasm" in err and "bad.asm:2" in err


@pytest.fixture
def path_without(tmp_path, monkeypatch):
    """PATH holding only the given tools (symlinks), e.g. no nasm."""
    def make(*tools):
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name in tools:
            os.symlink(shutil.which(name), bin_dir / name)
        monkeypatch.setenv("PATH", str(bin_dir))
    return make


def test_without_nasm_one_line_names_the_package(tdxsim, write, path_without):
    src = write("guest.asm", NASM_GUEST % 6)
    path_without("as", "ld", "objcopy", "cpp")
    code, out, err = tdxsim("run", src)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "'nasm' was not found" in err and "apt-get install nasm" in err


def test_intel_syntax_gets_a_hint(tdxsim, write):
    src = write("intel.S", """
        .globl  _start
_start:
        mov     rdi, 3
        call    tdx_debug_exit
""")
    code, out, err = tdxsim("run", src)
    assert code == 2
    assert "intel.S:4: Error" in err  # as's own text, with the source's line
    assert err.count("hint:") == 1 and ".intel_syntax noprefix" in err
    fixed = write("fixed.S", ".intel_syntax noprefix\n" + src.read_text())
    assert tdxsim("run", fixed)[0] == 3


def test_undefined_external_hint(tdxsim, write):
    src = write("guest.S", """
        .globl  _start
_start:
        call    panic
""")
    code, out, err = tdxsim("run", src)
    assert code == 2
    assert "undefined reference to `panic'" in err
    assert "hint: panic is defined in none of the inputs: pass an object" in err


def test_library_name_without_library_hint(tdxsim, write):
    src = write("guest.S", EXIT_WITH % "0")
    code, out, err = tdxsim("run", src, "--no-library")
    assert code == 2
    assert "hint: tdx_debug_exit is in tdxsim's guest library, which --no-library left out" in err


def test_users_definition_of_a_library_name_wins(tdxsim, write):
    """A guest that defines tdx_put_dec itself: its own runs, no link error."""
    src = write("guest.S", """
        .globl  _start, tdx_put_dec
_start:
        mov     $1, %edi
        call    tdx_put_dec
tdx_put_dec:
        mov     $42, %edi
        call    tdx_debug_exit
""")
    code, out, err = tdxsim("run", src)
    assert code == 42, err


def test_latin1_byte_in_a_source_is_a_message(tdxsim, write):
    """as echoes the byte back: decoded, not a UnicodeDecodeError (issue 19)."""
    src = write("latin1.S", b"\t.globl _start\n_start:\n\tmov $caf\xe9, %rax\n\tcaf\xe9\n")
    for command in (["run", src], ["check", src, "--symbol", "_start", "--abi", "seed"]):
        code, out, err = tdxsim(*command)
        assert code == 2 and "latin1.S" in err


@pytest.fixture
def elf(tmp_path):
    """A linked static executable (tdxsim builds only images, so link one by hand)."""
    src = tmp_path / "exe.s"
    src.write_text(".globl _start\n_start:\n ud2\n")
    obj, exe = tmp_path / "exe.o", tmp_path / "exe.elf"
    assert os.system(f"as --64 -o {obj} {src} && ld -o {exe} {obj}") == 0
    return exe


@pytest.mark.parametrize("command", ["run", "check"])
def test_two_elfs_or_an_elf_and_a_source_are_refused(tdxsim, write, elf, command):
    extra = ["--symbol", "_start", "--abi", "seed"] if command == "check" else []
    for second in (elf, write("more.S", EXIT_WITH % "0")):
        code, out, err = tdxsim(command, elf, second, *extra)
        assert code == 2
        assert "is a linked ELF executable, which tdxsim runs alone" in err
        assert str(second.name) in err


def test_check_passes_preprocessor_options(tdxsim, write):
    """tdxsim check: a .S stub whose mask comes from an -I header."""
    stub = open(os.path.join(CORPUS, "seed_good.S")).read().replace("$0xfc00", "$EXPOSE")
    write("inc/mask.h", "#define EXPOSE 0xfc00\n")
    src = write("stub.S", '#include "mask.h"\n' + stub)
    code, out, err = tdxsim("check", src, "-I", src.parent / "inc",
                            "--symbol", "__tdx_hypercall", "--abi", "seed")
    assert code == 0, out + err


def test_replay_hint_repeats_the_preprocessor_options(tdxsim, write):
    """A failing check's replay command builds the stub the same way."""
    stub = open(os.path.join(CORPUS, "seed_scrub_r10.S")).read()
    write("inc/empty.h", "\n")
    src = write("stub.S", stub)
    code, out, err = tdxsim("check", src, "-I", src.parent / "inc", "-D", "X=1",
                            "--symbol", "__tdx_hypercall", "--abi", "seed")
    assert code == 1
    assert f"-I {src.parent / 'inc'} -D X=1 --replay FILE" in out


def test_check_with_library_checks_the_users_definition(tdxsim):
    """--library links tdxsim's own (clean) __tdx_hypercall too: the stub's
    definition wins, so its defect is still found (issue 12 item 8)."""
    stub = os.path.join(CORPUS, "seed_scrub_r10.S")
    code, out, err = tdxsim("check", stub, "--library", "--symbol", "__tdx_hypercall",
                            "--abi", "seed")
    assert code == 1, err
    assert "FAIL  scrub" in out
