"""C guests (issue 17 item 1): compiled freestanding, linked with the guest
library and the C runtime, run as any guest; tdx.h generated from abi.py;
`tdxsim cflags`/`ldflags` build the same guest by hand."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tdxsim.cli import main
from tdxsim.toolchain import sdk

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HERE = Path(__file__).resolve().parent / "c_guests"


@pytest.fixture
def tdxsim(capsys):
    def invoke(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err
    return invoke


def test_hello(tdxsim):
    code, out, err = tdxsim("run", EXAMPLES / "hello.c")
    assert code == 0, err
    assert "Hello from a C guest in a TD" in out
    assert "max leaf 0x000000000000001f" in out  # tdxsim's CPUID leaf 0 (README)


def test_hello_through_the_plugins_fixture(td_from):
    result = td_from(EXAMPLES / "hello.c").run()
    assert result.ok and result.exit_code == 0, result.describe()
    assert result.console.startswith("Hello from a C guest in a TD\n")


def test_mapgpa_and_accept(tdxsim):
    """MapGPA to shared and back, then TDG.MEM.PAGE.ACCEPT: the page reads
    as zeros after accept (spec 1.3)."""
    code, out, err = tdxsim("run", "--trace", EXAMPLES / "mapgpa.c")
    assert code == 0, out + err
    assert "private again, accepted and zeroed" in out
    calls = [line.split("tdvmcall", 1)[1].split()[0] for line in out.splitlines()
             if "tdvmcall" in line]
    assert calls.count("MAP_GPA") == 2


def test_quote_woken_by_the_notify_interrupt(tdxsim):
    code, out, err = tdxsim("run", "--trace", EXAMPLES / "quote.c")
    assert code == 0, out + err
    assert "woken by the notify interrupt" in out and "REPORTDATA matches" in out
    assert re.search(r"SETUP_EVENT_NOTIFY_INTERRUPT vector=0x50 -> SUCCESS", out)
    assert re.search(r"irq +vector 0x50 delivered", out)
    assert "halt     vCPU halted" in out


def test_main_return_value_is_the_exit_code_and_ve_works(tdxsim, tmp_path):
    """A plain OUT in C raises #VE (spec 6): the runtime's IDT sends it to
    the library's handler, which issues the IO TDVMCALL; .bss reads as
    zeros; main's 7 is the exit code."""
    src = tmp_path / "ve.c"
    src.write_text("""
        #include <tdx.h>
        static uint64_t zeroed[512];
        int main(void) {
            for (int i = 0; i < 512; i++)
                if (zeroed[i]) return 1;
            __asm__ volatile("outb %0, %1" :: "a"((uint8_t)'!'), "Nd"((uint16_t)0x3f8));
            return 7;
        }
    """)
    code, out, err = tdxsim("run", "--trace", src)
    assert code == 7, out + err
    assert out.startswith("!")
    assert "#VE" in out and "<- #VE at" in out


def test_compile_error_is_the_compilers_text(tdxsim, tmp_path):
    src = tmp_path / "bad.c"
    src.write_text("int main(void) { return undeclared; }\n")
    code, out, err = tdxsim("run", src)
    assert code == 2
    assert "compiling" in err and "undeclared" in err and "bad.c:1" in err


def test_without_a_compiler_one_line_names_the_package(tdxsim, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("as", "ld", "objcopy", "cpp"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    code, out, err = tdxsim("run", EXAMPLES / "hello.c")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "C compiler" in err and "apt-get install gcc" in err


def test_cflags_and_ldflags_build_hello_by_hand(tmp_path):
    """The README's by-hand build: cc $(tdxsim cflags) ... $(tdxsim ldflags)."""
    tdxsim = [sys.executable, "-m", "tdxsim.cli"]
    cflags = subprocess.run(tdxsim + ["cflags"], capture_output=True, text=True, check=True)
    ldflags = subprocess.run(tdxsim + ["ldflags"], capture_output=True, text=True, check=True)
    elf = tmp_path / "hello.elf"
    subprocess.run(f"cc {cflags.stdout.strip()} -O2 -c {EXAMPLES / 'hello.c'} -o {tmp_path}/h.o"
                   f" && cc -o {elf} {tmp_path}/h.o {ldflags.stdout.strip()}",
                   shell=True, check=True)
    run = subprocess.run(tdxsim + ["run", str(elf)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Hello from a C guest in a TD" in run.stdout


def test_include_prints_the_directory_of_tdx_h(tdxsim):
    code, out, err = tdxsim("include")
    assert code == 0 and (Path(out.strip()) / "tdx.h").is_file()


def test_header_declares_every_library_routine_and_spec_values():
    """Every global routine of tdcall.S/ve_handler.S has a prototype; a few
    constants checked against the spec's tables."""
    text = (sdk.include_dir() / "tdx.h").read_text()
    for source in sdk.library_sources():
        for name in re.findall(r"^FUNC\s+(\w+)|^\s*\.globl\s+(\w+)", source.read_text(), re.M):
            name = name[0] or name[1]
            assert re.search(rf"\b{name}\(", text), name
    assert "#define TDVMCALL_GET_QUOTE 0x10002ull" in text  # spec 4.3
    assert "#define TDVMCALL_MAP_GPA 0x10001ull" in text  # spec 4.3
    assert "#define TDVMCALL_STATUS_RETRY 0x1ull" in text  # spec 4.2
    assert "#define TDG_VP_VMCALL 0x0ull" in text  # spec 1.3


def test_check_a_stub_written_in_c(tdxsim):
    """tdxsim check stub.c: compiled, linked (its __tdx_hypercall wins over
    the library's weak one) and judged; the SysV-relevant properties pass."""
    code, out, err = tdxsim("check", HERE / "seed_stub.c", "--symbol", "__tdx_hypercall",
                            "--abi", "seed", "--format", "json")
    assert code in (0, 1), err
    status = {p["id"]: p["status"] for p in json.loads(out)["properties"]}
    for prop in ("leaf", "mask-valid", "no-leak", "scrub", "stack", "frame-pointer",
                 "sti-shadow", "failure-traps", "output-copy", "return-value"):
        assert status[prop] == "pass", (prop, out)


def test_an_unwritable_cache_falls_back_to_the_temporary_directory(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    root = sdk.sdk_dir()
    assert root.parent.name == f"tdxsim-{os.getuid()}" and (root / "crt0.o").is_file()
