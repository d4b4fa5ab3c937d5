"""Packaging (issue 17 item 4), run by `make wheel-test` (and CI), not by the
fast suite: it builds a wheel and an sdist and installs each into a fresh
venv whose PATH has binutils and cpp but no C compiler.

- the wheel carries the compiled hooks: `tdxsim --version` says so and
  `tdxsim run demo` runs on the compiled path;
- the sdist, built where no compiler exists, installs with one notice and
  runs in pure Python.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTICE = "tdxsim: no C compiler found"


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "DeprecationWarning" not in build.stdout + build.stderr
    assert "SetuptoolsDeprecationWarning" not in build.stdout + build.stderr
    return out


@pytest.fixture
def no_compiler_path(tmp_path):
    """A PATH holding binutils and cpp but no cc, gcc or clang."""
    bin_dir = tmp_path / "tools"
    bin_dir.mkdir()
    for tool in ("as", "ld", "objcopy", "cpp"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    return str(bin_dir)


def venv(tmp_path, name: str, path: str) -> tuple[Path, dict]:
    target = tmp_path / name
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    env = {**os.environ, "PATH": f"{target / 'bin'}:{path}", "CC": "cc"}
    env.pop("PYTHONPATH", None)
    return target / "bin", env


def run(cmd, env, cwd):
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)


def test_wheel_installs_without_a_compiler_and_runs_compiled(dist, tmp_path, no_compiler_path):
    wheel = next(dist.glob("*.whl"))
    bin_dir, env = venv(tmp_path, "wheel-venv", no_compiler_path)
    install = run([str(bin_dir / "pip"), "install", "-q", str(wheel)], env, tmp_path)
    assert install.returncode == 0, install.stderr
    version = run([str(bin_dir / "tdxsim"), "--version"], env, tmp_path)
    assert version.stdout.strip() == "tdxsim 0.1.0 (compiled hooks)", version
    demo = run([str(bin_dir / "tdxsim"), "run", "demo"], env, tmp_path)
    assert demo.returncode == 0 and "Hello from a TD guest" in demo.stdout, demo.stderr
    c_guest = run([str(bin_dir / "tdxsim"), "run", str(ROOT / "examples" / "hello.c")],
                  env, tmp_path)
    assert c_guest.returncode == 2 and "apt-get install gcc" in c_guest.stderr


def test_sdist_without_a_compiler_falls_back_to_python(dist, tmp_path, no_compiler_path):
    sdist = next(dist.glob("*.tar.gz"))
    bin_dir, env = venv(tmp_path, "sdist-venv", no_compiler_path)
    install = run([str(bin_dir / "pip"), "install", "-v", str(sdist)], env, tmp_path)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert (install.stdout + install.stderr).count(NOTICE) == 1
    version = run([str(bin_dir / "tdxsim"), "--version"], env, tmp_path)
    assert "pure Python" in version.stdout
    demo = run([str(bin_dir / "tdxsim"), "run", "demo"], env, tmp_path)
    assert demo.returncode == 0 and "Hello from a TD guest" in demo.stdout, demo.stderr
